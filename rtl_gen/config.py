"""TOML design configs with command-line overrides.

A config is a TOML file whose top-level tables are designs::

    [int4_mac]            # module name
    kind = "int4_mac"     # unit kind (default: the table name)
    acc_width = 24        # unit parameters

Overrides ``NAME.PARAM=VALUE`` (VALUE in TOML syntax) replace or add one
parameter of one design.
"""

import pathlib
import re
import tomllib

__all__ = ["DEFAULT_CONFIG", "Design", "load_config", "parse_override", "apply_overrides"]


#: The config `make rtl` uses: the three SPEC section 3 tops.
DEFAULT_CONFIG = pathlib.Path(__file__).resolve().parent.parent / "configs" / "default.toml"

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Design:
    """One module to generate.

    Parameters
    ----------
    name : str
        Verilog module name (a plain identifier).
    kind : str
        Unit kind (see :data:`hw.units.UNITS`).
    params : dict
        Unit parameters given explicitly.
    """

    def __init__(self, *, name, kind, params):
        if not isinstance(name, str) or not _MODULE_NAME.match(name):
            raise ValueError(f"design name {name!r} is not a Verilog identifier")
        if not isinstance(kind, str):
            raise ValueError(f"{name}: kind must be a string, not {kind!r}")
        self.name, self.kind, self.params = name, kind, dict(params)

    def __repr__(self):
        return f"Design({self.name!r}, kind={self.kind!r}, params={self.params!r})"


def _designs_from_tables(tables, source):
    designs = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ValueError(f"{source}: top-level key {name!r} must be a table [{name}]")
        params = dict(table)
        kind = params.pop("kind", name)
        designs.append(Design(name=name, kind=kind, params=params))
    if not designs:
        raise ValueError(f"{source}: no designs (expected tables like [int4_mac])")
    return designs


def load_config(path):
    """Designs of a TOML config file, in file order.

    Raises
    ------
    ValueError
        Unreadable file, TOML syntax error, or a malformed design.
    """
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"cannot read config {path}: {error.strerror}") from None
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: invalid TOML: {error}") from None
    return _designs_from_tables(tables, path)


def parse_override(text):
    """``"NAME.PARAM=VALUE"`` -> ``(NAME, PARAM, value)``, VALUE parsed as TOML."""
    key, sep, raw = text.partition("=")
    name, dot, param = key.strip().partition(".")
    if not sep or not dot or not name or not param:
        raise ValueError(f"override {text!r} is not NAME.PARAM=VALUE")
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        raise ValueError(f"override {text!r}: value {raw.strip()!r} is not a TOML value") from None
    return name, param.strip(), value


def apply_overrides(designs, overrides):
    """Designs with ``(name, param, value)`` overrides applied (``kind`` too)."""
    by_name = {design.name: design for design in designs}
    for name, param, value in overrides:
        if name not in by_name:
            raise ValueError(f"override for unknown design {name!r} (designs: {', '.join(by_name)})")
        design = by_name[name]
        if param == "kind":
            design.kind = value
        else:
            design.params[param] = value
    return designs
