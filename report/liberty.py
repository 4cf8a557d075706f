"""Reading a Liberty (.lib / .lib.gz) standard-cell library.

Only what the area, timing and energy flow needs is modelled: library units
and nominal voltage, and per cell its area, leakage, pin capacitances, logic
functions, flip-flop/latch behaviour and internal-power tables.  Cells are
parsed lazily (a 13 MB library holds hundreds of cells; a design uses a few
dozen), so loading a library costs one decompression and one regex scan.

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
    "parse_groups",
]

#: Cell families excluded from mapping (see the SKY130 README): power-gating
#: ``lpflow_*``, ``probe_*``, delay cells ``dly*``/``clkdly*``, scan flops ``sdf*``.
DONT_USE_PATTERN = r"(?:\w+__)?(?:lpflow_|probe_|dly|clkdly|sdf)\w*"


class LibertyError(Exception):
    """A Liberty file is missing, unreadable or lacks something the flow needs."""


_TOKEN = re.compile(
    r'"((?:[^"\\]|\\.)*)"'  # 1: quoted string
    r"|([(){}:;,])"  # 2: punctuation
    r'|([^\s(){}:;,"\\]+)'  # 3: bare word / number
    r"|/\*.*?\*/|\\\s*\n|\s+|\\",  # comments, line continuations, blanks
    re.S,
)


@dataclass
class _Group:
    name: str
    args: list
    attrs: dict = field(default_factory=dict)  # name -> list of values (simple or complex)
    groups: list = field(default_factory=list)

    def attr(self, name, default=None):
        values = self.attrs.get(name)
        return values[-1] if values else default

    def subgroups(self, name):
        return [g for g in self.groups if g.name == name]


def _tokens(text):
    for m in _TOKEN.finditer(text):
        s, p, w = m.group(1), m.group(2), m.group(3)
        if s is not None:
            yield ("s", s)
        elif p is not None:
            yield ("p", p)
        elif w is not None:
            yield ("w", w)


def parse_groups(text, limit=None):
    """Parse Liberty text into top-level groups.

    Parameters
    ----------
    text : str
        Liberty source (a whole library or one ``cell`` group).
    limit : int or None
        Stop after this many complete top-level groups.

    Returns
    -------
    list of _Group
    """
    toks = _tokens(text)
    top = _Group("<top>", [])
    stack = [top]
    pending = []  # tokens of the statement being read
    done = 0
    for kind, val in toks:
        if kind == "p" and val == "{":
            name = pending[0][1] if pending else ""
            args = [v for k, v in pending[2:] if not (k == "p" and v in "(),")]
            group = _Group(name, args)
            stack[-1].groups.append(group)
            stack.append(group)
            pending = []
        elif kind == "p" and val == "}":
            if len(stack) == 1:
                raise LibertyError("unbalanced '}' in Liberty text")
            stack.pop()
            pending = []
            if len(stack) == 1:
                done += 1
                if limit is not None and done >= limit:
                    break
        elif kind == "p" and val == ";":
            if pending:
                name = pending[0][1]
                if len(pending) >= 2 and pending[1] == ("p", ":"):
                    value = " ".join(v for _, v in pending[2:])
                else:
                    value = [v for k, v in pending[1:] if not (k == "p" and v in "(),")]
                stack[-1].attrs.setdefault(name, []).append(value)
            pending = []
        else:
            pending.append((kind, val))
    if len(stack) != 1 and (limit is None or done < limit):
        raise LibertyError("unterminated group in Liberty text")
    return top.groups


def _floats(text):
    return [float(x) for x in re.split(r"[,\s]+", text.strip()) if x]


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


@dataclass
class Sequential:
    """An ``ff`` or ``latch`` group (state variables and their controls)."""

    kind: str  # "ff" or "latch"
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
        Nominal supply voltage (``nom_voltage``, else the default operating
        condition's ``voltage``), in volts.
    time_unit_ns, cap_unit_pf, leakage_unit_nw : float
        Library units converted to ns, pF and nW.

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
        m = re.search(r'^\s*library\s*\(\s*"?([^"\s)]+)"?\s*\)\s*\{', self.text, re.M)
        if not m:
            raise LibertyError(f"not a Liberty library (no 'library (...) {{'): {self.path}")
        self.name = m.group(1)
        # A truncated file (an interrupted copy or download) would otherwise
        # pass: Yosys then reads it for minutes and runs out of memory.
        _check_complete(self.text, self.path)
        self.sha256 = hashlib.sha256(raw).hexdigest()
        self._cell_pos = {c.group(1): c.start() for c in self._CELL.finditer(self.text)}
        if not self._cell_pos:
            raise LibertyError(f"Liberty library has no cells: {self.path}")
        first = min(self._cell_pos.values())
        header = self.text[:first]
        self.time_unit_ns = self._unit(header, "time_unit", {"ps": 1e-3, "ns": 1.0, "us": 1e3})
        self.leakage_unit_nw = self._unit(header, "leakage_power_unit", {"pw": 1e-3, "nw": 1.0, "uw": 1e3, "mw": 1e6})
        cm = re.search(r'capacitive_load_unit\s*\(\s*([\d.eE+-]+)\s*,\s*"?(\w+)"?\s*\)', header)
        if not cm:
            raise LibertyError(f"Liberty library lacks capacitive_load_unit: {self.path}")
        scale = {"ff": 1e-3, "pf": 1.0, "nf": 1e3}.get(cm.group(2).lower())
        if scale is None:
            raise LibertyError(f"unknown capacitance unit {cm.group(2)!r} in {self.path}")
        self.cap_unit_pf = float(cm.group(1)) * scale
        vm = re.search(r"nom_voltage\s*:\s*([\d.eE+-]+)", header) or re.search(r"\bvoltage\s*:\s*([\d.eE+-]+)", header)
        if not vm:
            raise LibertyError(f"Liberty library has no nom_voltage: {self.path}")
        self.voltage = float(vm.group(1))
        self._cells = {}
        self.wire_load = self._wire_load(header)

    def _wire_load(self, header):
        """The default wire-load model as ``(name, cap_per_length_pf, slope, {fanout: length})``."""
        groups = {
            g.args[0]: g
            for g in parse_groups(
                "\n".join(
                    m.group(0) for m in re.finditer(r'wire_load\s*\(\s*"?[^"\s)]+"?\s*\)\s*\{.*?\}', header, re.S)
                )
            )
            if g.name == "wire_load" and g.args
        }
        default = re.search(r'default_wire_load\s*:\s*"?([^";\s]+)"?', header)
        name = default.group(1) if default else None
        g = groups.get(name)
        if g is None:
            return None
        lengths = {int(float(v[0])): float(v[1]) for v in g.attrs.get("fanout_length", [])}
        return (name, float(g.attr("capacitance", 0.0)) * self.cap_unit_pf, float(g.attr("slope", 0.0)), lengths)

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

    @staticmethod
    def _unit(header, attr, table):
        m = re.search(attr + r'\s*:\s*"?\s*([\d.]+)\s*([a-zA-Z]+)"?', header)
        if not m:
            raise LibertyError(f"Liberty library lacks {attr}")
        scale = table.get(m.group(2).lower())
        if scale is None:
            raise LibertyError(f"unknown unit {m.group(2)!r} for {attr}")
        return float(m.group(1)) * scale

    @property
    def cell_names(self):
        return list(self._cell_pos)

    def __contains__(self, name):
        return name in self._cell_pos

    def cell(self, name):
        """The parsed :class:`Cell` called ``name`` (KeyError if absent)."""
        if name not in self._cells:
            if name not in self._cell_pos:
                raise KeyError(f"cell {name!r} not in Liberty library {self.name}")
            (group,) = parse_groups(self.text[self._cell_pos[name] :], limit=1)
            self._cells[name] = self._make_cell(group)
        return self._cells[name]

    def _table(self, group, scale):
        if group is None:
            return None
        values = group.attr("values")
        if values is None:
            return None
        rows = [_floats(r) for r in (values if isinstance(values, list) else [values])]
        if group.attr("index_2") is not None:
            vals = np.array(rows, dtype=float) * scale
        else:
            vals = np.array([x for r in rows for x in r], dtype=float) * scale
        index = []
        for key in ("index_1", "index_2"):
            v = group.attr(key)
            if v is not None:
                index.append(np.array(_floats(v[0] if isinstance(v, list) else v)))
        template = group.args[0] if group.args else None
        variables = self._template_vars(template)
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

    def _template_vars(self, template):
        if template is None or template == "scalar":
            return ()
        if not hasattr(self, "_templates"):
            self._templates = {}
            for m in re.finditer(
                r'(?:power_lut_template|lu_table_template)\s*\(\s*"?([^"\s)]+)"?\s*\)'
                r"\s*\{(.*?)\}",
                self.text[: min(self._cell_pos.values())],
                re.S,
            ):
                names = re.findall(r'variable_(\d)\s*:\s*"?(\w+)"?', m.group(2))
                self._templates[m.group(1)] = tuple(n for _, n in sorted(names))
        return self._templates.get(template, ())

    def _make_cell(self, g):
        # Liberty power tables are energies in cap_unit * V^2; express in pJ.
        energy = self.cap_unit_pf
        pins = {}
        for pg in g.subgroups("pin"):
            for pname in pg.args:
                arcs = []
                for ip in pg.subgroups("internal_power"):
                    both = ip.subgroups("power")
                    rise = ip.subgroups("rise_power") or both
                    fall = ip.subgroups("fall_power") or both
                    arcs.append(
                        PowerArc(
                            ip.attr("related_pin"),
                            self._table(rise[0], energy) if rise else None,
                            self._table(fall[0], energy) if fall else None,
                            ip.attr("when"),
                        )
                    )
                transitions = []
                for tg in pg.subgroups("timing"):
                    rt, ft = tg.subgroups("rise_transition"), tg.subgroups("fall_transition")
                    if rt or ft:
                        transitions.append(
                            (
                                self._table(rt[0], self.time_unit_ns) if rt else None,
                                self._table(ft[0], self.time_unit_ns) if ft else None,
                            )
                        )
                cap = pg.attr("capacitance")
                pins[pname] = Pin(
                    name=pname,
                    direction=pg.attr("direction", "internal"),
                    capacitance=float(cap) * self.cap_unit_pf if cap is not None else 0.0,
                    function=pg.attr("function"),
                    power=arcs,
                    transitions=transitions,
                )
        seq = None
        for kind in ("ff", "latch"):
            for sg in g.subgroups(kind):
                seq = Sequential(
                    kind=kind,
                    state=sg.args[0],
                    state_n=sg.args[1] if len(sg.args) > 1 else None,
                    clocked_on=sg.attr("clocked_on"),
                    next_state=sg.attr("next_state"),
                    enable=sg.attr("enable"),
                    data_in=sg.attr("data_in"),
                    clear=sg.attr("clear"),
                    preset=sg.attr("preset"),
                )
        if g.subgroups("statetable"):
            seq = seq or Sequential(kind="statetable", state="", state_n=None)
        area = g.attr("area")
        leak = g.attr("cell_leakage_power")
        return Cell(
            name=g.args[0] if g.args else "",
            area=float(area) if area is not None else 0.0,
            leakage=float(leak) * self.leakage_unit_nw if leak is not None else 0.0,
            pins=pins,
            sequential=seq,
            dont_use=str(g.attr("dont_use", "false")).lower() == "true",
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
