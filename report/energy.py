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

Energy is attributed to *registers* (flip-flops and latches: their internal
and leakage energy, the switching of the nets they drive, the clock net and
the primary-input nets, which only charge the boundary registers) or to
*logic* (combinational cells and the nets they drive).  With SKY130's
``switching_power_split_model`` tables, ``rise_power`` + ``fall_power`` is the
short-circuit part and the ``0.5 C V^2`` terms give the charging energy, so a
rise/fall pair costs ``C V^2`` + short-circuit energy, as it should.
"""

from dataclasses import asdict, dataclass

from .gatesim import net_drivers_and_sinks

__all__ = ["DEFAULT_SLEW_NS", "EnergyBreakdown", "net_loads", "netlist_energy", "area_split"]

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


def netlist_energy(netlist, library, toggles, *, slew_ns=DEFAULT_SLEW_NS, wire_load=True):
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

    Returns
    -------
    EnergyBreakdown
    """
    v2 = library.voltage**2
    drivers, sinks = net_drivers_and_sinks(netlist, library)
    loads = net_loads(netlist, library, wire_load=wire_load)
    out = dict(switching=0.0, internal=0.0, leakage=0.0, registers=0.0, logic=0.0)

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
        _inst, ctype, pin = driver
        if ctype is None:
            cls = "registers"  # primary inputs and clock feed the boundary registers
        else:
            cell = library.cell(ctype)
            cls = "registers" if cell.is_sequential else "logic"
            add("internal", cls, _arc_energy(cell.pins[pin].power, r, f, slew_ns, load))
        add("switching", cls, 0.5 * load * v2 * (r + f))
        for _, stype, spin in sinks.get(bit, []):
            scell = library.cell(stype)
            arcs = scell.pins[spin].power
            if arcs:
                add("internal", "registers" if scell.is_sequential else "logic", _arc_energy(arcs, r, f, slew_ns, 0.0))
    window_ns = toggles.cycles * toggles.period_ns
    for cell in netlist["cells"].values():
        lib_cell = library.cell(cell["type"])
        # nW * ns = 1e-18 J = 1e-6 pJ
        add("leakage", "registers" if lib_cell.is_sequential else "logic", lib_cell.leakage * window_ns * 1e-6)
    total = out["switching"] + out["internal"] + out["leakage"]
    return EnergyBreakdown(
        switching_pj=out["switching"],
        internal_pj=out["internal"],
        leakage_pj=out["leakage"],
        registers_pj=out["registers"],
        logic_pj=out["logic"],
        total_pj=total,
        cycles=toggles.cycles,
    )


def area_split(netlist, library):
    """``(register_area, logic_area)`` in um^2 of a mapped netlist."""
    reg = logic = 0.0
    for cell in netlist["cells"].values():
        c = library.cell(cell["type"])
        if c.is_sequential:
            reg += c.area
        else:
            logic += c.area
    return reg, logic
