"""Dynamic and leakage energy of a mapped netlist from counted toggles.

The model, per net bit ``n`` with ``r`` rising and ``f`` falling transitions
in the measurement window, at the library's nominal voltage ``V``:

* load ``C(n)`` = sum of the input-pin ``capacitance`` of the cell pins it
  drives + the default wire-load model's capacitance for its fanout
  (primary outputs add nothing);
* switching energy ``0.5 * C(n) * V^2 * (r + f)``;
* internal energy of the driving cell output: ``r * rise_power + f * fall_power``
  looked up in the pin's ``internal_power`` tables at (input transition
  ``slew``, load ``C(n)``), averaged over the pin's ``internal_power`` groups
  (related pins / ``when`` conditions: which input caused a transition is not
  tracked);
* internal energy of every input pin with its own ``internal_power`` tables
  (flip-flop ``CLK`` and ``D``), per transition of the net feeding it;
* leakage: ``cell_leakage_power`` of every cell times the window's duration.

Energy is attributed to *registers* (flip-flops, latches and clock gates:
their internal and leakage energy, the switching of the nets they drive, the
clock net and the primary-input nets, which only charge the boundary
registers) or to *logic* (combinational cells and the nets they drive), and
logic is split again into *arithmetic* and *control* by :func:`cell_classes`:
a combinational cell is arithmetic when it is in the arithmetic cone, i.e.
its transitive fan-in reaches a data input and its transitive fan-out reaches
the data pin of a register that holds data (or a primary output); every
other combinational cell (enable and clock-gate conditions, counters, the
FSM, mode decoding) is control.  With SKY130's
``switching_power_split_model`` tables, ``rise_power`` + ``fall_power`` is the
short-circuit part and the ``0.5 C V^2`` terms give the charging energy, so a
rise/fall pair costs ``C V^2`` + short-circuit energy, as it should.
"""

import re
from dataclasses import asdict, dataclass

from .gatesim import net_drivers_and_sinks

__all__ = [
    "DEFAULT_SLEW_NS",
    "CLASSES",
    "EnergyBreakdown",
    "is_control_port",
    "cell_classes",
    "net_loads",
    "netlist_energy",
    "area_split",
]

#: The three classes a cell's energy and area go to.
CLASSES = ("registers", "arithmetic", "control")

#: Input ports that carry control, not operands: the SPEC's ``valid``/``clear``/``last``,
#: the mode and signedness bits, the weight-stationary schedule's strobes, clock and reset.
_CONTROL_PORT = re.compile(r"(?:clk|rst|valid|clear|last|mode|swap|first|w_load|w_valid|relu|\w+_signed)\Z")


def is_control_port(name):
    """A unit input that carries control (see :data:`_CONTROL_PORT`); every other input is data."""
    return bool(_CONTROL_PORT.match(name))


def _variables(expr):
    return set(re.findall(r"[A-Za-z_]\w*", expr or ""))


def _sequential_pins(lib_cell):
    """``(data_pins, state_passes)`` of a sequential cell.

    Data pins are the inputs its stored value is computed from: the
    ``next_state`` (``ff``) or ``data_in`` (``latch``) variables, without the
    clock, clear and preset pins and without the enable of an enable flip-flop
    (a pin that selects, negated, between itself and the held state, like
    ``DE`` in ``(D&DE) | (IQ&!DE)``). An integrated clock gate has none (its
    output is a clock) and passes no data.
    """
    seq = lib_cell.sequential
    if seq.kind == "statetable" or lib_cell.clock_gating:
        return set(), False
    expr = seq.next_state if seq.kind == "ff" else seq.data_in
    names = _variables(expr) - {seq.state, seq.state_n}
    names -= _variables(seq.clocked_on) | _variables(seq.enable) | _variables(seq.clear) | _variables(seq.preset)
    if seq.state in _variables(expr):
        names -= set(re.findall(r"!\s*([A-Za-z_]\w*)", expr))
    return names & set(lib_cell.pins), True


def cell_classes(netlist, library, data_ports=None):
    """The class (:data:`CLASSES`) of every cell of a mapped netlist.

    Parameters
    ----------
    netlist : dict
        Yosys JSON module.
    library : report.liberty.Library
    data_ports : collection of str, optional
        Input ports carrying data (default: every input for which
        :func:`is_control_port` is false).

    Returns
    -------
    dict
        Cell instance -> ``"registers"`` (flip-flops, latches, clock gates),
        ``"arithmetic"`` (combinational, in the cone from a data input to a
        data register or output) or ``"control"`` (the other combinational cells).
    """
    cells = netlist["cells"]
    if data_ports is None:
        data_ports = [n for n, p in netlist["ports"].items() if p["direction"] == "input" and not is_control_port(n)]
    pins = {inst: library.cell(c["type"]) for inst, c in cells.items()}

    def bits(inst, direction):
        lib_cell = pins[inst]
        return [
            (pin, conn[0])
            for pin, conn in cells[inst]["connections"].items()
            if conn and isinstance(conn[0], int) and pin in lib_cell.pins and lib_cell.pins[pin].direction == direction
        ]

    readers = {}  # bit -> [(instance, pin)]
    for inst in cells:
        for pin, b in bits(inst, "input"):
            readers.setdefault(b, []).append((inst, pin))
    seq_pins = {inst: _sequential_pins(c) for inst, c in pins.items() if c.is_sequential}
    # Forward: which cells carry data (combinational: any input does; sequential: a data pin does).
    carries = set()
    frontier = [b for n in data_ports for b in netlist["ports"][n]["bits"] if isinstance(b, int)]
    seen = set(frontier)
    while frontier:
        nxt = []
        for b in frontier:
            for inst, pin in readers.get(b, ()):
                if inst in carries:
                    continue
                if inst in seq_pins:
                    data_pins, passes = seq_pins[inst]
                    if not passes or pin not in data_pins:
                        continue
                carries.add(inst)
                for _, out in bits(inst, "output"):
                    if out not in seen:
                        seen.add(out)
                        nxt.append(out)
        frontier = nxt
    # Backward from the data pins of data registers and the primary outputs, through combinational cells.
    drivers = {}
    for inst in cells:
        for _, b in bits(inst, "output"):
            drivers[b] = inst
    frontier = [
        b for p in netlist["ports"].values() if p["direction"] == "output" for b in p["bits"] if isinstance(b, int)
    ]
    for inst, (data_pins, _) in seq_pins.items():
        if inst in carries:
            frontier += [b for pin, b in bits(inst, "input") if pin in data_pins]
    reaches, seen = set(), set(frontier)
    while frontier:
        nxt = []
        for b in frontier:
            inst = drivers.get(b)
            if inst is None or inst in seq_pins or inst in reaches:
                continue
            reaches.add(inst)
            for _, inp in bits(inst, "input"):
                if inp not in seen:
                    seen.add(inp)
                    nxt.append(inp)
        frontier = nxt
    return {
        inst: "registers" if inst in seq_pins else "arithmetic" if inst in carries and inst in reaches else "control"
        for inst in cells
    }


#: Input transition (ns) used for every internal-power lookup.  The SKY130 HD
#: tables change by a few percent between 0.01 and 0.12 ns, so one documented
#: value stands in for per-net slew propagation.
DEFAULT_SLEW_NS = 0.05


@dataclass
class EnergyBreakdown:
    """Energy over a simulated window, in pJ.

    Attributes
    ----------
    switching_pj, internal_pj, leakage_pj : float
        By mechanism.
    registers_pj, logic_pj : float
        By cell class (the two sum to ``total_pj``).
    arithmetic_pj, control_pj : float
        ``logic_pj`` split by :func:`cell_classes` (the two sum to ``logic_pj``).
    total_pj : float
    cycles : int
        Clock cycles in the window.
    """

    switching_pj: float
    internal_pj: float
    leakage_pj: float
    registers_pj: float
    logic_pj: float
    total_pj: float
    cycles: int
    arithmetic_pj: float = 0.0
    control_pj: float = 0.0

    def per_cycle(self):
        """The same breakdown divided by the window's cycle count (pJ per cycle)."""
        d = {k: v / self.cycles for k, v in asdict(self).items() if k.endswith("_pj")}
        return d

    def as_dict(self):
        return asdict(self)


def net_loads(netlist, library, *, wire_load=True):
    """Load capacitance (pF) of every net bit (see module docstring)."""
    drivers, sinks = net_drivers_and_sinks(netlist, library)
    loads = {}
    for bit in set(drivers) | set(sinks):
        pins = sinks.get(bit, [])
        c = sum(library.cell(ctype).pins[pin].capacitance for _, ctype, pin in pins)
        if wire_load:
            c += library.wire_cap(len(pins))
        loads[bit] = c
    return loads


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else 0.0


def _arc_energy(arcs, rises, falls, slew, load):
    if not arcs or (rises == 0 and falls == 0):
        return 0.0
    e_rise = _mean([a.rise.lookup(transition=slew, load=load) if a.rise else None for a in arcs])
    e_fall = _mean([a.fall.lookup(transition=slew, load=load) if a.fall else None for a in arcs])
    return rises * e_rise + falls * e_fall


def netlist_energy(netlist, library, toggles, *, slew_ns=DEFAULT_SLEW_NS, wire_load=True, data_ports=None):
    """Energy of a mapped netlist over a simulated window.

    Parameters
    ----------
    netlist : dict
        Yosys JSON module (mapped onto ``library``).
    library : report.liberty.Library
    toggles : report.gatesim.Toggles
        Counted rises/falls per net bit, window length.
    slew_ns : float
        Input transition for the internal-power tables.
    wire_load : bool
        Add the Liberty's default wire-load capacitance to every net.
    data_ports : collection of str, optional
        As :func:`cell_classes`.

    Returns
    -------
    EnergyBreakdown
    """
    v2 = library.voltage**2
    drivers, sinks = net_drivers_and_sinks(netlist, library)
    loads = net_loads(netlist, library, wire_load=wire_load)
    classes = cell_classes(netlist, library, data_ports)
    out = dict(switching=0.0, internal=0.0, leakage=0.0, registers=0.0, arithmetic=0.0, control=0.0)

    def add(mechanism, cls, e):
        out[mechanism] += e
        out[cls] += e

    for bit in set(toggles.rises) | set(toggles.falls):
        r, f = toggles.rises.get(bit, 0), toggles.falls.get(bit, 0)
        if r == 0 and f == 0:
            continue
        load = loads.get(bit, 0.0)
        driver = drivers.get(bit)
        if driver is None:
            continue  # undriven (constant) net
        inst, ctype, pin = driver
        if ctype is None:
            cls = "registers"  # primary inputs and clock feed the boundary registers
        else:
            cls = classes[inst]
            add("internal", cls, _arc_energy(library.cell(ctype).pins[pin].power, r, f, slew_ns, load))
        add("switching", cls, 0.5 * load * v2 * (r + f))
        for sinst, stype, spin in sinks.get(bit, []):
            arcs = library.cell(stype).pins[spin].power
            if arcs:
                add("internal", classes[sinst], _arc_energy(arcs, r, f, slew_ns, 0.0))
    window_ns = toggles.cycles * toggles.period_ns
    for inst, cell in netlist["cells"].items():
        # nW * ns = 1e-18 J = 1e-6 pJ
        add("leakage", classes[inst], library.cell(cell["type"]).leakage * window_ns * 1e-6)
    total = out["switching"] + out["internal"] + out["leakage"]
    return EnergyBreakdown(
        switching_pj=out["switching"],
        internal_pj=out["internal"],
        leakage_pj=out["leakage"],
        registers_pj=out["registers"],
        logic_pj=out["arithmetic"] + out["control"],
        total_pj=total,
        cycles=toggles.cycles,
        arithmetic_pj=out["arithmetic"],
        control_pj=out["control"],
    )


def area_split(netlist, library, data_ports=None):
    """Area in um^2 of a mapped netlist by class: ``{"registers": ..., "arithmetic": ..., "control": ...}``."""
    classes = cell_classes(netlist, library, data_ports)
    area = dict.fromkeys(CLASSES, 0.0)
    for inst, cell in netlist["cells"].items():
        area[classes[inst]] += library.cell(cell["type"]).area
    return area
