"""Eager checks of generation parameters shared by the PE constructors."""


def check_int(owner, name, value, *, minimum):
    """Raise TypeError/ValueError unless ``value`` is an int ``>= minimum``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be an integer, not {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, not {value}")
    return value
