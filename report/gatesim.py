"""Gate-level simulation of a Liberty-mapped netlist, counting toggles per net.

The Liberty file has no Verilog models, so Yosys's ``read_liberty`` builds
them from each cell's ``function`` attributes (combinational outputs) and
``ff`` / ``latch`` groups (state); :func:`netlist_verilog` instantiates them in
one flat module in which every net bit is a scalar wire ``n<bit>``, so a VCD
value change names the net directly.  Icarus Verilog simulates it, and ``vcdvcd`` counts the transitions in the VCD:

* *zero-delay* (the default): the counted transitions are the functional
  ones (one per net per changed settled value; glitches are not modelled);
* *glitch-aware* (``delays``, from :func:`output_delays`): every cell output
  drives its net through a continuous assignment with the cell's Liberty
  propagation delay (``cell_rise`` / ``cell_fall`` at the net's load), so
  unequal path delays produce the hazards real logic has, and each hazard's
  transitions are counted. Verilog's delays are inertial: a pulse shorter
  than the driving cell's delay is swallowed, as a real gate mostly
  swallows it (the Liberty/SDF default pulse rejection).
"""

import contextlib
import itertools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np
from vcdvcd import VCDVCD

from . import synth

__all__ = [
    "SimError",
    "models_liberty",
    "netlist_verilog",
    "Toggles",
    "simulate",
    "simulate_many",
    "count_vcd_toggles",
    "net_drivers_and_sinks",
]


class SimError(Exception):
    """Gate-level simulation could not be set up or failed."""


#: ``clock_gating_integrated_cell`` values whose behaviour the Liberty
#: standard fixes and :func:`models_liberty` restates as a ``latch`` group:
#: the enable (and, before the latch, the test enable) is latched while the
#: clock is low, and the gated clock is ``clock & latched enable``.
_LATCH_POSEDGE_ICG = ("latch_posedge", "latch_posedge_precontrol")


def _clock_gate_group(cell):
    """A ``cell`` group Yosys can read for an integrated clock-gating cell described by a ``statetable``.

    Yosys's ``read_liberty`` models ``function``, ``ff`` and ``latch`` but not
    ``statetable`` / ``state_function`` (SKY130's ``dlclkp``, ``sdlclkp``), so
    the cell's standard ICG behaviour is written as a latch plus a function.
    """
    if cell.clock_gating not in _LATCH_POSEDGE_ICG:
        raise SimError(
            f"cell {cell.name} is described by a statetable Yosys cannot model"
            + (f" (clock gating {cell.clock_gating!r})" if cell.clock_gating else "")
        )
    role = {r: [p.name for p in cell.pins.values() if p.clock_gate == r] for r in ("clock", "enable", "test", "out")}
    if len(role["clock"]) != 1 or len(role["enable"]) != 1 or len(role["out"]) != 1:
        raise SimError(f"clock-gating cell {cell.name} lacks a clock, enable or output pin")
    (clock,), (out,) = role["clock"], role["out"]
    lines = [f"  cell ({cell.name}) {{"]
    lines += [f"    pin ({p.name}) {{ direction : input; }}" for p in cell.inputs]
    lines.append(f'    pin ({out}) {{ direction : output; function : "({clock}) & IQ"; }}')
    lines.append(
        f'    latch (IQ, IQN) {{ enable : "!({clock})"; data_in : "{" | ".join(role["enable"] + role["test"])}"; }}'
    )
    lines.append("  }")
    return "\n".join(lines)


def models_liberty(library, cell_types):
    """A Liberty library of the cells ``cell_types``, for :func:`report.synth.cell_models`.

    Each cell is its own ``cell`` group from ``library``, except integrated
    clock-gating cells described by a ``statetable`` (see
    :func:`_clock_gate_group`).
    """
    groups = []
    for ctype in sorted(cell_types):
        if ctype not in library:
            raise SimError(f"mapped cell type {ctype} is not in the Liberty library")
        cell = library.cell(ctype)
        if cell.sequential is not None and cell.sequential.kind == "statetable":
            groups.append(_clock_gate_group(cell))
        else:
            groups.append(library.cell_source(ctype))
    return "library (fourbit_cell_models) {\n" + "\n".join(groups) + "\n}\n"


def _instance_line(k, cell, lib_cell, delayed=()):
    """One instance of the cell's Yosys model, its pins on the ``n<bit>`` wires
    (outputs in ``delayed`` on ``d<bit>``, which a delayed assignment drives onto ``n<bit>``)."""
    conns = []
    for pin in lib_cell.pins.values():
        conn = cell["connections"].get(pin.name)
        if pin.direction == "input":
            net = _bit(conn[0]) if conn else "1'b0"  # unconnected inputs read as 0
            conns.append(f".{pin.name}({net})")
        elif pin.direction == "output" and conn and isinstance(conn[0], int):
            conns.append(f".{pin.name}({'d' if conn[0] in delayed else 'n'}{conn[0]})")
    return f"  {lib_cell.name} c{k} ({', '.join(conns)});"


def output_delays(netlist, library, loads, slew_ns):
    """Propagation delay (ns, rise and fall) of every cell-driven net bit, from the Liberty timing arcs.

    Per driving output pin: the mean over its timing arcs of ``cell_rise``
    and ``cell_fall`` at input transition ``slew_ns`` and the net's load
    (``loads``, pF, as :func:`report.energy.net_loads` computes). A pin with
    no timing arcs gets no delay (it is absent from the result), and neither
    does an integrated clock gate's output: the clock is ideal, gated or not.

    Returns
    -------
    dict
        bit -> ``(rise_ns, fall_ns)``.
    """
    delays = {}
    for cell in netlist["cells"].values():
        lib_cell = library.cell(cell["type"])
        if lib_cell.clock_gating:
            # The clock is ideal (no clock tree): a gated clock too, so that a clock gate's
            # delay does not skew the flip-flops behind it against the others (which a
            # clock tree would balance) and race their data.
            continue
        for pin, conn in cell["connections"].items():
            b = conn[0]
            p = lib_cell.pins.get(pin)
            if p is None or p.direction != "output" or not isinstance(b, int) or not p.delays:
                continue
            point = {"transition": slew_ns, "load": loads.get(b, 0.0)}
            rise = [r.lookup(**point) for r, _ in p.delays if r is not None]
            fall = [f.lookup(**point) for _, f in p.delays if f is not None]
            if rise and fall:
                delays[b] = (sum(rise) / len(rise), sum(fall) / len(fall))
    return delays


def _port(name):
    """A port name as a Verilog escaped identifier (the same identifier as the plain name), so that a
    port called like a SystemVerilog keyword (the requantizer's ``inside``) still compiles under ``-g2012``."""
    return f"\\{name} "


def _bit(b):
    if isinstance(b, int):
        return f"n{b}"
    return {"0": "1'b0", "1": "1'b1"}.get(b, "1'bx")


def netlist_verilog(netlist, module, library, delays=None):
    """The mapped Yosys JSON module as flat Verilog with one scalar wire ``n<bit>`` per net bit.

    Ports keep their names (vectors as in the source); every port bit is
    assigned to or from its ``n<bit>`` wire.  Cells are instances of the
    modules of :func:`report.synth.cell_models` (their ``n<bit>`` wires are
    what the VCD records: a value change names the net directly). With
    ``delays`` (:func:`output_delays`), a cell output drives ``d<bit>`` and
    ``assign #(rise, fall) n<bit> = d<bit>;`` carries it to the net.
    """
    delays = delays or {}
    bits = set()
    for cell in netlist["cells"].values():
        for conn in cell["connections"].values():
            bits.update(b for b in conn if isinstance(b, int))
    for port in netlist["ports"].values():
        bits.update(b for b in port["bits"] if isinstance(b, int))
    lines = [f"module {module}({', '.join(_port(n) for n in netlist['ports'])});"]
    for name, port in netlist["ports"].items():
        width = len(port["bits"])
        rng = f" [{width - 1}:0]" if width > 1 else ""
        lines.append(f"  {port['direction']}{rng} {_port(name)};")
    lines += [f"  wire n{b};" for b in sorted(bits)]
    lines += [f"  wire d{b};" for b in sorted(delays) if b in bits]
    # picoseconds: the testbench's timescale is 1ns/1ps
    lines += [f"  assign #({r:.3f}, {f:.3f}) n{b} = d{b};" for b, (r, f) in sorted(delays.items()) if b in bits]
    for name, port in netlist["ports"].items():
        for k, b in enumerate(port["bits"]):
            ref = f"{_port(name)}[{k}]" if len(port["bits"]) > 1 else _port(name)
            if port["direction"] == "input":
                if isinstance(b, int):
                    lines.append(f"  assign n{b} = {ref};")
            else:
                lines.append(f"  assign {ref} = {_bit(b)};")
    for k, (_inst, cell) in enumerate(sorted(netlist["cells"].items())):
        ctype = cell["type"]
        if ctype not in library:
            raise SimError(f"mapped cell type {ctype} is not in the Liberty library")
        lines.append(_instance_line(k, cell, library.cell(ctype), delays))
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def net_drivers_and_sinks(netlist, library):
    """Per net bit: its driver and its sinks.

    Returns
    -------
    drivers : dict
        bit -> ``(instance, cell_type, pin)``, or ``("<port>", None, port_name)``
        for primary inputs.
    sinks : dict
        bit -> list of ``(instance, cell_type, pin)``.
    """
    drivers, sinks = {}, {}
    for name, port in netlist["ports"].items():
        if port["direction"] == "input":
            for b in port["bits"]:
                if isinstance(b, int):
                    drivers[b] = ("<port>", None, name)
    for inst, cell in netlist["cells"].items():
        lib_cell = library.cell(cell["type"])
        for pin, conn in cell["connections"].items():
            b = conn[0]
            if not isinstance(b, int):
                continue
            direction = lib_cell.pins[pin].direction
            if direction == "output":
                drivers[b] = (inst, cell["type"], pin)
            elif direction == "input":
                sinks.setdefault(b, []).append((inst, cell["type"], pin))
    return drivers, sinks


@dataclass
class Toggles:
    """Transitions counted over the measurement window.

    Attributes
    ----------
    rises, falls : dict
        Net bit -> number of 0->1 (1->0) transitions.
    cycles : int
        Clock cycles in the window.
    period_ns : float
        Clock period.
    outputs : dict
        Output port -> list (one per stimulus row) of the value sampled just
        before that row is applied (None where it has x/z bits).
    """

    rises: dict
    falls: dict
    cycles: int
    period_ns: float
    outputs: dict


def count_vcd_toggles(path, scope):
    """Count 0->1 and 1->0 transitions of the scalar wires ``n<bit>`` in ``scope``, read with ``vcdvcd``.

    Returns
    -------
    (rises, falls) : tuple of dict
        Keyed by net bit (int).  Transitions from or to x/z are not counted.
    """
    name = re.compile(rf"(?:.*\.)?{re.escape(scope)}\.n(\d+)")
    try:
        vcd = VCDVCD(path, signal_res=[name], store_tvs=True)
    except (OSError, ValueError, IndexError, KeyError) as e:
        raise SimError(f"cannot read VCD {path}: {e}") from None
    rises, falls = {}, {}
    for signal in vcd.data.values():
        bits = [int(m.group(1)) for ref in signal.references if (m := name.fullmatch(ref))]
        if not bits or int(signal.size) != 1:
            continue
        steps = list(itertools.pairwise(v for _, v in signal.tv))
        r, f = steps.count(("0", "1")), steps.count(("1", "0"))
        for bit in bits:  # nets Icarus merged share one identifier code
            rises[bit], falls[bit] = r, f
    return rises, falls


def _find_iverilog():
    iverilog, vvp = shutil.which("iverilog"), shutil.which("vvp")
    if not iverilog or not vvp:
        raise SimError("Icarus Verilog (iverilog, vvp) not found: install Debian's iverilog (`make setup`)")
    return iverilog, vvp


def _pack_words(ports, stimulus):
    """Hex words of the stimulus rows, first port in the most significant bits."""
    words = []
    for row in stimulus:
        v = 0
        for (_, w), x in zip(ports, row):
            v = (v << w) | (int(x) & ((1 << w) - 1))
        words.append(f"{v:x}")
    return words


def _testbench(netlist, module, ports, cycles, period_ns, warmup):
    width = sum(w for _, w in ports)
    conns, lsb = [], width
    for name, w in ports:
        lsb -= w
        conns.append(f".{_port(name)}(v[{lsb + w - 1}:{lsb}])")
    names = {n for n, _ in ports}
    if "clk" in netlist["ports"]:
        conns.append(".clk(clk)")
    if "rst" in netlist["ports"] and "rst" not in names:
        conns.append(".rst(rst)")
    outs = [(n, len(p["bits"])) for n, p in netlist["ports"].items() if p["direction"] == "output"]
    decl = "\n".join(f"  wire [{w - 1}:0] o_{n};" for n, w in outs)
    conns += [f".{_port(n)}(o_{n})" for n, _ in outs]
    tb = f"""`timescale 1ns/1ps
module tb;
  reg clk = 1'b0;
  reg rst = 1'b1;
  reg [{width - 1}:0] mem [0:{cycles - 1}];
  reg [{width - 1}:0] v = {width}'d0;
{decl}
  {module} dut({", ".join(conns)});
  always #{period_ns / 2} clk = ~clk;
  integer i, fo;
  // counting starts a quarter period before the inputs of cycle {warmup} change
  initial begin
    #{(2 + warmup) * period_ns - period_ns / 4};
    $dumpvars(1, dut);
  end
  initial begin
    $readmemh("stim.hex", mem);
    $dumpfile("toggles.vcd");
    @(negedge clk); @(negedge clk);
    rst = 1'b0;
    fo = $fopen("outputs.txt", "w");
    for (i = 0; i < {cycles}; i = i + 1) begin
      $fdisplay(fo, "{" ".join("%h" for _ in outs)}"{"".join(", o_" + n for n, _ in outs)});
      v = mem[i];
      // the window ends a quarter period after the last rising edge: exactly
      // {cycles - warmup} clock periods from its start
      if (i < {cycles - 1}) @(negedge clk);
      else begin @(posedge clk); #{period_ns / 4}; end
    end
    $finish;
  end
endmodule
"""
    return tb, outs


def simulate(
    netlist, module, library, ports, stimulus, *, period_ns=10.0, warmup=4, workdir=None, yosys=None, delays=None
):
    """Simulate a mapped netlist on a stimulus and count toggles per net.

    Parameters
    ----------
    netlist : dict
        Yosys JSON module (mapped).
    module : str
        Its name.
    library : report.liberty.Library
    ports : list of (str, int)
        The input ports driven from the stimulus, with widths (``clk`` is
        generated; ``rst`` is held high for two cycles unless listed here).
    stimulus : numpy.ndarray
        ``(cycles, len(ports))`` unsigned integers (or Python ints in an
        object array), one row per clock cycle.
    period_ns : float
        Clock period (leakage integrates over it).
    warmup : int
        Cycles simulated before counting starts (registers leave x).
    workdir : str or None
        Keep the generated files there (else a temporary directory).
    yosys : str or None
        Yosys that writes the cell models (default
        :func:`report.synth.model_yosys`).
    delays : dict or None
        Cell output delays (:func:`output_delays`) for a glitch-aware
        simulation; None: zero delay. The period must exceed the longest path.

    Returns
    -------
    Toggles
    """
    return simulate_many(
        netlist,
        module,
        library,
        ports,
        [stimulus],
        period_ns=period_ns,
        warmup=warmup,
        workdir=workdir,
        yosys=yosys,
        delays=delays,
    )[0]


def simulate_many(
    netlist, module, library, ports, stimuli, *, period_ns=10.0, warmup=4, workdir=None, yosys=None, delays=None
):
    """:func:`simulate` on several stimuli of one length, compiling the netlist once."""
    iverilog, vvp = _find_iverilog()
    stimuli = [np.asarray(st) for st in stimuli]
    cycles = stimuli[0].shape[0] if stimuli else 0
    for st in stimuli:
        if st.ndim != 2 or st.shape[1] != len(ports):
            raise SimError(f"stimulus must be (cycles, {len(ports)}), got {st.shape}")
        if st.shape[0] != cycles:
            raise SimError("stimuli of one simulation must have the same number of cycles")
    if cycles <= warmup:
        raise SimError(f"stimulus has {cycles} cycles; need more than the {warmup} warm-up cycles")
    tb, outs = _testbench(netlist, module, ports, cycles, period_ns, warmup)
    own = workdir is None
    results = []
    # A temporary directory of our own goes on any exit, Ctrl-C included.
    if own:
        scratch = tempfile.TemporaryDirectory(prefix="fourbit-gatesim-", ignore_cleanup_errors=True)
    else:
        scratch = contextlib.nullcontext(workdir)
    with scratch as workdir:
        os.makedirs(workdir, exist_ok=True)
        types = {cell["type"] for cell in netlist.get("cells", {}).values()}
        try:
            models = synth.cell_models(models_liberty(library, types), yosys=yosys, log_dir=None if own else workdir)
        except synth.YosysError as e:
            raise SimError(f"cell models: {e}") from None
        for fname, text in (
            ("models.v", models),
            ("netlist.v", netlist_verilog(netlist, module, library, delays)),
            ("tb.v", tb),
        ):
            with open(os.path.join(workdir, fname), "w") as f:
                f.write(text)
        comp = subprocess.run(
            [iverilog, "-g2012", "-o", "sim.vvp", "-s", "tb", "tb.v", "netlist.v", "models.v"],
            capture_output=True,
            text=True,
            cwd=workdir,
        )
        if comp.returncode != 0:
            raise SimError("iverilog failed: " + comp.stderr.strip()[-500:])
        for k, st in enumerate(stimuli):
            run_dir = os.path.join(workdir, f"run{k}")
            os.makedirs(run_dir, exist_ok=True)
            with open(os.path.join(run_dir, "stim.hex"), "w") as f:
                f.write("\n".join(_pack_words(ports, st)) + "\n")
            run = subprocess.run(
                [vvp, "-n", os.path.join(workdir, "sim.vvp")], capture_output=True, text=True, cwd=run_dir
            )
            if run.returncode != 0:
                raise SimError("vvp failed: " + (run.stderr or run.stdout).strip()[-500:])
            rises, falls = count_vcd_toggles(os.path.join(run_dir, "toggles.vcd"), "dut")
            outputs = {n: [] for n, _ in outs}
            with open(os.path.join(run_dir, "outputs.txt")) as f:
                for line in f:
                    for (n, _), word in zip(outs, line.split()):
                        outputs[n].append(int(word, 16) if re.fullmatch(r"[0-9a-fA-F]+", word) else None)
            if own:
                shutil.rmtree(run_dir, ignore_errors=True)  # VCDs are large
            results.append(Toggles(rises, falls, cycles - warmup, period_ns, outputs))
    return results
