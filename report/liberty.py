"""Reading a Liberty (.lib / .lib.gz) standard-cell library.

The Liberty syntax is read by PyPI's ``liberty-parser``; this module keeps
what the area, timing and energy flow needs: library units and nominal
voltage, and per cell its area, leakage, pin capacitances, logic functions,
flip-flop/latch behaviour and internal-power tables.  Cells are parsed lazily,
one ``cell`` group at a time (a 13 MB library holds hundreds of cells, a
design uses a few dozen, and liberty-parser takes tens of seconds for the
whole file), so loading a library costs one decompression, one regex scan for
the cell positions and the parse of the library header.

The module also writes the *working copy* that Yosys reads: decompressed
(Yosys 0.23 cannot read gzip) and with ``dont_use : true;`` added to the cell
families a logic-synthesis comparison excludes (power-gating, probe, delay
and scan cells), because Yosys 0.23's ``abc`` has no ``-dont_use`` option.
"""

import gzip
import hashlib
import os
import re
import zlib
from dataclasses import dataclass, field

import numpy as np
from liberty.parser import parse_liberty

from fourbit.util.files import write_text_atomically

__all__ = [
    "LibertyError",
    "Table",
    "PowerArc",
    "Pin",
    "Sequential",
    "Cell",
    "Library",
    "DONT_USE_PATTERN",
]

#: Cell families excluded from mapping (see the SKY130 README): power-gating
#: ``lpflow_*``, ``probe_*``, delay cells ``dly*``/``clkdly*``, scan flops ``sdf*``.
DONT_USE_PATTERN = r"(?:\w+__)?(?:lpflow_|probe_|dly|clkdly|sdf)\w*"


class LibertyError(Exception):
    """A Liberty file is missing, unreadable or lacks something the flow needs."""


def _plain(value):
    """A liberty-parser attribute value as plain Python (quoted strings unquoted)."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return getattr(value, "value", value)


def _attr(group, name, default=None):
    """The last value of attribute ``name`` in ``group`` (a repeated simple attribute: the last one wins)."""
    values = group.get_attributes(name)
    return _plain(values[-1]) if values else default


def _parse(text, what):
    """Parse Liberty text with liberty-parser; its exceptions become :class:`LibertyError`."""
    try:
        return parse_liberty(text)
    except Exception as e:  # liberty-parser raises bare Exception subclasses and AssertionError alike
        raise LibertyError(f"cannot parse {what}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


@dataclass
class Table:
    """A 1-D or 2-D Liberty lookup table.

    Attributes
    ----------
    variables : tuple of str
        Template variable names, e.g. ``("input_transition_time",
        "total_output_net_capacitance")``.
    index : tuple of numpy.ndarray
        One index vector per variable.
    values : numpy.ndarray
        Shape ``(len(index[0]),)`` or ``(len(index[0]), len(index[1]))``.
    """

    variables: tuple
    index: tuple
    values: np.ndarray

    def lookup(self, **point):
        """Interpolate (bilinearly) at ``point``, clamped to the table's range.

        Keyword names are the short names ``transition`` and ``load``; a table
        whose variable is neither (or a scalar table) ignores them.
        """
        coords = []
        for var, idx in zip(self.variables, self.index):
            if "transition" in var:
                x = point.get("transition", idx[0])
            elif "capacitance" in var:
                x = point.get("load", idx[0])
            else:
                x = idx[0]
            coords.append(float(np.clip(x, idx[0], idx[-1])))
        v = self.values
        if v.size == 1 or not coords:
            return float(v.reshape(-1)[0])
        if v.ndim == 1:
            return float(np.interp(coords[0], self.index[0], v))
        rows = np.array([np.interp(coords[1], self.index[1], row) for row in v])
        return float(np.interp(coords[0], self.index[0], rows))


@dataclass
class PowerArc:
    """One ``internal_power`` group of a pin: energy (library units) per transition."""

    related_pin: str | None
    rise: Table | None
    fall: Table | None
    when: str | None = None


@dataclass
class Pin:
    """A cell pin: direction, input capacitance, function, internal power."""

    name: str
    direction: str
    capacitance: float = 0.0
    function: str | None = None
    power: list = field(default_factory=list)
    transitions: list = field(default_factory=list)  # (rise_transition, fall_transition) tables
    delays: list = field(default_factory=list)  # (cell_rise, cell_fall) tables of the pin's timing arcs
    clock_gate: str | None = None  # "clock", "enable", "test" or "out" on an integrated clock-gating cell


@dataclass
class Sequential:
    """An ``ff`` or ``latch`` group (state variables and their controls)."""

    kind: str  # "ff", "latch" or "statetable"
    state: str  # e.g. "IQ"
    state_n: str | None  # e.g. "IQ_N"
    clocked_on: str | None = None
    next_state: str | None = None
    enable: str | None = None
    data_in: str | None = None
    clear: str | None = None
    preset: str | None = None


@dataclass
class Cell:
    """A standard cell with the data the flow uses."""

    name: str
    area: float
    leakage: float
    pins: dict
    sequential: Sequential | None
    dont_use: bool = False
    clock_gating: str | None = None  # clock_gating_integrated_cell, e.g. "latch_posedge"

    @property
    def inputs(self):
        return [p for p in self.pins.values() if p.direction == "input"]

    @property
    def outputs(self):
        return [p for p in self.pins.values() if p.direction == "output"]

    @property
    def is_sequential(self):
        return self.sequential is not None


_STRINGS_AND_COMMENTS = re.compile(r'"(?:[^"\\]|\\.)*"|/\*.*?\*/', re.S)


def _check_complete(text, path):
    """Raise :class:`LibertyError` unless ``text`` ends with the close of its balanced ``library`` group."""

    def complete(source):
        return source.count("{") == source.count("}") and source.rstrip().endswith("}")

    # Counting the raw text is quick and settles a whole file; braces inside
    # strings or comments could mislead it, so a doubt is settled without them.
    if complete(text):
        return
    code = _STRINGS_AND_COMMENTS.sub("", text)
    if not complete(code):
        opened, closed = code.count("{"), code.count("}")
        raise LibertyError(
            f"Liberty file {path} is incomplete (truncated?): {opened} groups opened, {closed} closed, "
            "and the library group does not end the file"
        )


class Library:
    """A Liberty library, loaded from a ``.lib`` or ``.lib.gz`` path.

    Parameters
    ----------
    path : str or os.PathLike
        The Liberty file.

    Attributes
    ----------
    path : str
    name : str
        The ``library(...)`` name.
    text : str
        The decompressed source.
    sha256 : str
        Hash of the decompressed source (cache key).
    voltage : float
        Nominal supply voltage (``nom_voltage``, else the first operating
        condition's ``voltage``), in volts.
    time_unit_ns, cap_unit_pf, leakage_unit_nw : float
        Library units converted to ns, pF and nW.
    wire_load : tuple or None
        The default wire-load model, see :meth:`wire_cap`.

    Raises
    ------
    LibertyError
        The file is missing, unreadable, not Liberty, incomplete (truncated),
        or lacks units/voltage.
    """

    _CELL = re.compile(r'^[ \t]*cell\s*\(\s*"?([^"\s)]+)"?\s*\)\s*\{', re.M)

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise LibertyError(f"Liberty file not found: {self.path}")
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            self.text = raw.decode("utf-8", errors="replace")
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise LibertyError(f"cannot read Liberty file {self.path}: {e}") from None
        if not re.search(r'^\s*library\s*\(\s*"?([^"\s)]+)"?\s*\)\s*\{', self.text, re.M):
            raise LibertyError(f"not a Liberty library (no 'library (...) {{'): {self.path}")
        # A truncated file (an interrupted copy or download) would otherwise
        # pass: Yosys then reads it for minutes and runs out of memory.
        _check_complete(self.text, self.path)
        self.sha256 = hashlib.sha256(raw).hexdigest()
        starts = [(c.group(1), c.start()) for c in self._CELL.finditer(self.text)]
        if not starts:
            raise LibertyError(f"Liberty library has no cells: {self.path}")
        # A cell group runs to the next cell (the last one to the library's
        # closing brace); liberty-parser then reads just that slice.
        ends = [s for _, s in starts[1:]] + [self.text.rstrip().rindex("}")]
        self._cell_span = {name: (start, end) for (name, start), end in zip(starts, ends)}
        header = _parse(self.text[: starts[0][1]] + "}", f"the header of Liberty library {self.path}")
        self.name = str(_plain(header.args[0])) if header.args else ""
        self.time_unit_ns = self._unit(header, "time_unit", {"ps": 1e-3, "ns": 1.0, "us": 1e3})
        self.leakage_unit_nw = self._unit(header, "leakage_power_unit", {"pw": 1e-3, "nw": 1.0, "uw": 1e3, "mw": 1e6})
        cap = _attr(header, "capacitive_load_unit")
        if not cap or len(cap) != 2:
            raise LibertyError(f"Liberty library lacks capacitive_load_unit: {self.path}")
        scale = {"ff": 1e-3, "pf": 1.0, "nf": 1e3}.get(str(cap[1]).lower())
        if scale is None:
            raise LibertyError(f"unknown capacitance unit {cap[1]!r} in {self.path}")
        self.cap_unit_pf = float(cap[0]) * scale
        voltage = _attr(header, "nom_voltage")
        if voltage is None:
            conditions = [_attr(g, "voltage") for g in header.get_groups("operating_conditions")]
            voltage = next((v for v in conditions if v is not None), None)
        if voltage is None:
            raise LibertyError(f"Liberty library has no nom_voltage: {self.path}")
        self.voltage = float(voltage)
        self._templates = {}
        for kind in ("power_lut_template", "lu_table_template"):
            for g in header.get_groups(kind):
                names = sorted((a.name, _plain(a.value)) for a in g.attributes if re.fullmatch(r"variable_\d", a.name))
                self._templates[str(_plain(g.args[0]))] = tuple(str(v) for _, v in names)
        self._cells = {}
        self.wire_load = self._wire_load(header)

    def _wire_load(self, header):
        """The default wire-load model as ``(name, cap_per_length_pf, slope, {fanout: length})``."""
        name = _attr(header, "default_wire_load")
        groups = {str(_plain(g.args[0])): g for g in header.get_groups("wire_load") if g.args}
        g = groups.get(name)
        if g is None:
            return None
        lengths = {int(float(v[0])): float(v[1]) for v in _plain(g.get_attributes("fanout_length"))}
        return (name, float(_attr(g, "capacitance", 0.0)) * self.cap_unit_pf, float(_attr(g, "slope", 0.0)), lengths)

    def wire_cap(self, fanout):
        """Wire capacitance (pF) of a net with ``fanout`` sinks from the default wire-load model.

        Beyond the table the length grows by ``slope`` per extra fanout (the
        Liberty wire-load rule); no model or no fanout gives 0.
        """
        if self.wire_load is None or fanout <= 0:
            return 0.0
        _, cap, slope, lengths = self.wire_load
        if fanout in lengths:
            length = lengths[fanout]
        else:
            top = max(lengths) if lengths else 0
            length = (lengths[top] if lengths else 0.0) + slope * (fanout - top)
        return cap * length

    def _unit(self, header, attr, table):
        m = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]+)\s*", str(_attr(header, attr, "")))
        if not m:
            raise LibertyError(f"Liberty library lacks {attr}: {self.path}")
        scale = table.get(m.group(2).lower())
        if scale is None:
            raise LibertyError(f"unknown unit {m.group(2)!r} for {attr}")
        return float(m.group(1)) * scale

    @property
    def cell_names(self):
        return list(self._cell_span)

    def __contains__(self, name):
        return name in self._cell_span

    def cell_source(self, name):
        """The Liberty text of the ``cell`` group called ``name`` (KeyError if absent)."""
        if name not in self._cell_span:
            raise KeyError(f"cell {name!r} not in Liberty library {self.name}")
        start, end = self._cell_span[name]
        return self.text[start:end]

    def cell(self, name):
        """The parsed :class:`Cell` called ``name`` (KeyError if absent)."""
        if name not in self._cells:
            groups = _parse(self.cell_source(name), f"cell {name} of Liberty library {self.path}")
            if groups.group_name != "cell":
                raise LibertyError(f"cell {name} of Liberty library {self.path} is not a cell group")
            self._cells[name] = self._make_cell(groups)
        return self._cells[name]

    def _table(self, group, scale):
        if group is None or not group.get_attributes("values"):
            return None
        rows = group.get_array("values")
        if group.get_attributes("index_2"):
            vals = np.asarray(rows, dtype=float) * scale
        else:
            vals = np.asarray(rows, dtype=float).reshape(-1) * scale
        index = [
            np.asarray(group.get_array(key), dtype=float).reshape(-1)
            for key in ("index_1", "index_2")
            if group.get_attributes(key)
        ]
        template = str(_plain(group.args[0])) if group.args else None
        variables = self._templates.get(template, ()) if template != "scalar" else ()
        if len(variables) < len(index):
            variables = variables + ("",) * (len(index) - len(variables))
        # convert index units: transitions in ns, loads in pF
        scaled = []
        for var, idx in zip(variables, index):
            if "transition" in var:
                scaled.append(idx * self.time_unit_ns)
            elif "capacitance" in var:
                scaled.append(idx * self.cap_unit_pf)
            else:
                scaled.append(idx)
        return Table(tuple(variables[: len(index)]), tuple(scaled), vals)

    def _make_cell(self, g):
        # Liberty power tables are energies in cap_unit * V^2; express in pJ.
        energy = self.cap_unit_pf
        pins = {}
        for pg in g.get_groups("pin"):
            for pname in pg.args:
                pname = str(_plain(pname))
                arcs = []
                for ip in pg.get_groups("internal_power"):
                    both = ip.get_groups("power")
                    rise = ip.get_groups("rise_power") or both
                    fall = ip.get_groups("fall_power") or both
                    arcs.append(
                        PowerArc(
                            _attr(ip, "related_pin"),
                            self._table(rise[0], energy) if rise else None,
                            self._table(fall[0], energy) if fall else None,
                            _attr(ip, "when"),
                        )
                    )
                transitions, delays = [], []
                for tg in pg.get_groups("timing"):
                    cr, cf = tg.get_groups("cell_rise"), tg.get_groups("cell_fall")
                    if cr or cf:
                        delays.append(
                            (
                                self._table(cr[0], self.time_unit_ns) if cr else None,
                                self._table(cf[0], self.time_unit_ns) if cf else None,
                            )
                        )
                    rt, ft = tg.get_groups("rise_transition"), tg.get_groups("fall_transition")
                    if rt or ft:
                        transitions.append(
                            (
                                self._table(rt[0], self.time_unit_ns) if rt else None,
                                self._table(ft[0], self.time_unit_ns) if ft else None,
                            )
                        )
                cap = _attr(pg, "capacitance")
                role = next(
                    (r for r in ("clock", "enable", "test", "out") if _is_true(_attr(pg, f"clock_gate_{r}_pin"))), None
                )
                pins[pname] = Pin(
                    name=pname,
                    direction=str(_attr(pg, "direction", "internal")),
                    capacitance=float(cap) * self.cap_unit_pf if cap is not None else 0.0,
                    function=_attr(pg, "function"),
                    power=arcs,
                    transitions=transitions,
                    delays=delays,
                    clock_gate=role,
                )
        seq = None
        for kind in ("ff", "latch"):
            for sg in g.get_groups(kind):
                args = [str(_plain(a)) for a in sg.args]
                seq = Sequential(
                    kind=kind,
                    state=args[0],
                    state_n=args[1] if len(args) > 1 else None,
                    clocked_on=_attr(sg, "clocked_on"),
                    next_state=_attr(sg, "next_state"),
                    enable=_attr(sg, "enable"),
                    data_in=_attr(sg, "data_in"),
                    clear=_attr(sg, "clear"),
                    preset=_attr(sg, "preset"),
                )
        if g.get_groups("statetable"):
            seq = seq or Sequential(kind="statetable", state="", state_n=None)
        area = _attr(g, "area")
        leak = _attr(g, "cell_leakage_power")
        return Cell(
            name=str(_plain(g.args[0])) if g.args else "",
            area=float(area) if area is not None else 0.0,
            leakage=float(leak) * self.leakage_unit_nw if leak is not None else 0.0,
            pins=pins,
            sequential=seq,
            dont_use=_is_true(_attr(g, "dont_use")),
            clock_gating=_attr(g, "clock_gating_integrated_cell"),
        )

    def write_working_copy(self, dest, dont_use=DONT_USE_PATTERN):
        """Write the decompressed library with ``dont_use : true;`` in excluded cells.

        Parameters
        ----------
        dest : str
            Target path (written to a temporary name, then renamed).
        dont_use : str
            Regex matched against whole cell names.

        Returns
        -------
        list of str
            The cells marked ``dont_use``.
        """
        marked = []
        rx = re.compile(dont_use)

        def mark(m):
            if rx.fullmatch(m.group(1)):
                marked.append(m.group(1))
                return m.group(0) + "\n        dont_use : true;"
            return m.group(0)

        out = self._CELL.sub(mark, self.text)
        write_text_atomically(os.path.abspath(dest), out, make_parents=True)
        return marked


def _is_true(value):
    """A Liberty boolean attribute (``true``, ``"true"``, or absent)."""
    return str(value).lower() == "true"
