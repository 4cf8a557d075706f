"""Register stages: the ones pipelined PE variants insert between product and accumulator, and the
hops between the PEs of an array."""

from amaranth.hdl import Signal, Value

__all__ = ["delay", "register_all", "skewed_edge"]


def delay(m, value, stages, *, name):
    """``value`` delayed by ``stages`` registers of the ``sync`` domain.

    Parameters
    ----------
    m : Module
        Module the registers are added to.
    value : Value
        Value to delay.
    stages : int
        Number of registers (0 returns ``value`` itself).
    name : str
        Base name of the registers (``<name>_p1``, ``<name>_p2``, ...).

    Returns
    -------
    Value
        The delayed value. The registers reset to 0 with the domain, so a
        reset also cancels the operations in flight.
    """
    value = Value.cast(value)
    for stage in range(1, stages + 1):
        register = Signal(value.shape(), name=f"{name}_p{stage}")
        m.d.sync += register.eq(value)
        value = register
    return value


def register_all(m, values, *, name):
    """Registered copies (one ``sync`` register each) of a dict of values: the hop to the next PE.

    Parameters
    ----------
    m : Module
        Module the registers are added to.
    values : dict of str -> Value
        Values to register, by key.
    name : str
        Base name of the registers (``<name>_<key>``).

    Returns
    -------
    dict of str -> Signal
        The registers, by the same keys (reset to 0 with the domain).
    """
    out = {}
    for key, value in values.items():
        value = Value.cast(value)
        register = Signal(value.shape(), name=f"{name}_{key}")
        m.d.sync += register.eq(value)
        out[key] = register
    return out


def skewed_edge(m, bus, width, controls, count, *, operand, name):
    """The inputs of the ``count`` PEs along one edge of an array, skewed.

    Element ``i`` of the packed ``bus`` is delayed by ``i`` registers, and the
    ``controls`` reach PE ``i`` through a chain of ``i`` registers (one per
    hop, not a fan-out), so PE ``i`` sees what the driver presented ``i``
    cycles earlier.

    Parameters
    ----------
    m : Module
        Module the registers are added to.
    bus : Value
        ``count`` packed operands of ``width`` bits, element ``i`` at bits ``[i*width, (i+1)*width)``.
    controls : dict of str -> Value
        1-bit controls (and mode bits) travelling with the operands.
    operand : str
        Key of the operand in the returned dicts (and name of its skew registers, ``<operand>_skew<i>``).
    name : str
        Base name of the control chain's registers (``<name><i>_<key>``).

    Returns
    -------
    list of dict of str -> Value
        Per PE ``i``: its operand under ``operand`` and its controls under their keys.
    """
    edge = []
    for i in range(count):
        if i > 0:
            controls = register_all(m, controls, name=f"{name}{i}")
        edge.append({operand: delay(m, bus.word_select(i, width), i, name=f"{operand}_skew{i}"), **controls})
    return edge
