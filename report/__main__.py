"""``python -m report``: area, delay and energy of the fourbit units against FP16.

Examples::

    python -m report                                   # technology-independent only
    python -m report --liberty ../shared/pdk/sky130_fd_sc_hd/sky130_fd_sc_hd__tt_025C_1v80.lib.gz
    python -m report --liberty LIB --capture build/report/capture.npz --macs 5000

Writes ``<out>/report.json``, ``report.md``, ``report.html`` and PNG plots.
Exit status: 0 when everything asked for was measured; 1 when Yosys or a
unit's measurement failed (the rest of the report is still written); 2 on
bad input (arguments, a missing, unreadable or incomplete Liberty, a bad
capture), refused before anything is written, so an earlier report stays.
"""

import contextlib
import multiprocessing
import os
import shlex
import sys
import tempfile
import time

from fourbit.util.cli import OneLineParser, run_main
from hw.kinds import KINDS, TOPS

from . import flow, render, step, stimulus, synth
from . import units as units_mod
from .energy import DEFAULT_SLEW_NS
from .liberty import DONT_USE_PATTERN, LibertyError, Library


def _parser(prog=None):
    p = OneLineParser(
        prog=prog or "python -m report",
        error_prefix=prog or "report",
        description="Area (Yosys cmos transistors; Liberty um^2), delay and energy per MAC "
        "(gate-level switching activity) of the fourbit PEs against FP16.",
    )
    p.add_argument(
        "--liberty",
        metavar="PATH",
        default=os.environ.get("LIBERTY") or None,
        help="Liberty file (.lib or .lib.gz) for mapped area, delay and energy "
        "(default: $LIBERTY; none: technology-independent estimates only)",
    )
    p.add_argument(
        "--rtl-dir",
        default="build/rtl",
        metavar="DIR",
        help="where `make rtl` wrote the Verilog and manifest.json (default: %(default)s)",
    )
    p.add_argument("--out", default="build/report", metavar="DIR", help="output directory (default: %(default)s)")
    p.add_argument(
        "--capture",
        metavar="NPZ",
        help="tensor capture of golden training (python -m golden.train ... --capture "
        "FILE.npz); default: synthetic tensors, labelled as such",
    )
    p.add_argument("--macs", type=int, default=3000, help="MACs simulated per unit and workload (default: %(default)s)")
    p.add_argument(
        "--clock-ns",
        type=float,
        default=10.0,
        help="clock period of the simulation; sets the leakage window (default: %(default)s)",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="UNIT",
        help="measure only this unit (repeatable; calibration units are cal_add8, cal_mul8)",
    )
    p.add_argument(
        "--max-transistors",
        type=int,
        default=450_000,
        metavar="N",
        help="skip arrays whose estimate (PEs x the standalone PE's transistor count) "
        "exceeds N, to bound the run time (default: %(default)s, which keeps the "
        "4x4/8x8 4-bit arrays and the 4x4 FP16, MXFP4 and NVFP4 arrays; 0: no limit)",
    )
    p.add_argument(
        "--jobs", "-j", type=int, default=2, metavar="N", help="units measured in parallel (default: %(default)s)"
    )
    p.add_argument(
        "--clock-gating",
        choices=("both", "on", "off"),
        default="both",
        help="with a Liberty: measure with flip-flop enables mapped to the library's integrated clock "
        "gates (on), without (off: every flip-flop is clocked every cycle), or both, the gated "
        "figures being the headline (default: %(default)s)",
    )
    p.add_argument(
        "--glitch",
        choices=("on", "off"),
        default="on",
        help="with a Liberty: also simulate each unit with its cells' Liberty delays and report the "
        "glitch-aware energy beside the zero-delay one (default: %(default)s)",
    )
    p.add_argument(
        "--step",
        action="store_true",
        help="with a Liberty and a capture: also measure the energy of the captured training step, the "
        "4-bit datapath against an FP16 one (the train and FP16 arrays on each GEMM, the requantizer, "
        "mask + amax, FP4 encoder and FP16 rounding per element; report.step), adding those units to --only",
    )
    p.add_argument("--no-cache", action="store_true", help="recompute every step")
    return p


_CTX = None


def _measure_one(unit):
    return unit.name, flow.measure(unit, _CTX)


def _one_torch_thread():
    """Pool initializer: torch on one thread in a forked worker.

    A worker forked after the parent ran a multi-threaded torch operation
    inherits an OpenMP runtime whose threads did not survive the fork, and its
    first parallel region waits for them forever (the block-scaled streams
    quantize whole tensors). One thread never enters the pool; the workers
    are processes, so the run stays ``--jobs`` wide.
    """
    import torch

    torch.set_num_threads(1)


def _is_float(unit):
    """A floating-point unit (its gate-level simulation is the slowest)."""
    kind = KINDS.get(unit.array[0]) if unit.array else TOPS.get(unit.kind)
    return kind is not None and kind.is_float


def _measure_all(units, ctx, jobs):
    """Measure units, ``jobs`` at a time (forked workers share ``ctx``)."""
    global _CTX
    _CTX = ctx
    if jobs <= 1 or len(units) <= 1:
        return dict(_measure_one(u) for u in units)
    # largest first, so that the longest job does not start last
    ordered = sorted(units, key=lambda u: -u.pe_count * (16 if _is_float(u) else 1))
    with multiprocessing.get_context("fork").Pool(min(jobs, len(units)), initializer=_one_torch_thread) as pool:
        return dict(pool.imap_unordered(_measure_one, ordered))


@contextlib.contextmanager
def _scratch_root():
    """Make every temporary file of the run (ours, Yosys's, the workers') go under one directory, removed at the end.

    The measuring workers are forked and, on Ctrl-C, terminated by the pool
    before their own clean-up can finish; removing their scratch from here,
    after the pool is gone, leaves nothing in the temporary directory.
    """
    previous = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="fourbit-report-", ignore_cleanup_errors=True) as root:
        tempfile.tempdir = root
        try:
            yield root
        finally:
            tempfile.tempdir = previous


def _measure_variant(todo, ctx, args, skipped):
    """Measure every unit of ``todo`` with one flow context: standalone units, then arrays."""
    # standalone PEs first: their transistor counts size the arrays' estimates
    todo = sorted(todo, key=lambda u: (u.kind == "calibration", u.array is not None, u.pe_count, u.name))
    pe_of_array = {kind.name: module for module, kind in TOPS.items()}
    measured = {}
    with _scratch_root():
        # phase 1: standalone units; phase 2: arrays (their size estimate needs phase 1)
        measured.update(_measure_all([u for u in todo if not u.array], ctx, args.jobs))
        arrays = []
        for unit in (u for u in todo if u.array):
            pe = measured.get(pe_of_array.get(unit.array[0], ""), {})
            if args.max_transistors and pe.get("transistors"):
                estimate = unit.pe_count * pe["transistors"]
                if estimate > args.max_transistors:
                    skipped[unit.name] = (
                        f"estimated {estimate:,} transistors ({unit.pe_count} x "
                        f"{pe['transistors']:,}) > --max-transistors {args.max_transistors:,}"
                    )
                    print(f"[report] {unit.name}: skipped, {skipped[unit.name]}", file=sys.stderr)
                    continue
            arrays.append(unit)
        measured.update(_measure_all(arrays, ctx, args.jobs))
    return measured


def main(argv=None, prog=None):
    """Entry point of ``python -m report``; returns the exit status (see the module docstring)."""
    args = _parser(prog).parse_args(argv)
    prefix = prog or "report"
    if args.macs < 16:
        print(f"{prefix}: error: --macs must be at least 16", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"{prefix}: error: --jobs must be at least 1", file=sys.stderr)
        return 2
    if not args.clock_ns > 0:
        print(f"{prefix}: error: --clock-ns must be positive", file=sys.stderr)
        return 2
    # Checked before any synthesis: --out is the report's directory.
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        print(f"{prefix}: error: --out {args.out} is a file, not a directory", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    errors = []

    # Every input is checked before anything is written: a bad one leaves an earlier report as it was.
    library = None
    if args.liberty:
        try:
            library = Library(args.liberty)
        except LibertyError as e:
            print(f"report: error: {e}", file=sys.stderr)
            return 2

    yosys_map = yosys_cmos = None
    try:
        yosys_map = synth.find_yosys()
        yosys_cmos = yosys_map
    except synth.YosysError as e:
        errors.append(str(e))
        print(f"report: error: {e}", file=sys.stderr)
        try:
            yosys_cmos = synth.find_yosys(fallback=True)
            print(f"report: using {yosys_cmos} for the technology-independent count only", file=sys.stderr)
        except synth.YosysError:
            pass

    try:
        gemms = stimulus.capture_gemms(args.capture) if args.capture else stimulus.synthetic_gemms()
    except ValueError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    counts, elements = None, {}
    if args.step:
        if not args.capture or library is None:
            print(f"{prefix}: error: --step needs --liberty and --capture (a captured training step)", file=sys.stderr)
            return 2
        try:
            counts = step.step_counts(args.capture)
            elements = step.element_streams(args.capture, args.macs)
        except ValueError as e:
            print(f"report: error: --step: {e}", file=sys.stderr)
            return 2
    source = f"captured ({args.capture})" if args.capture else "synthetic (realistic distributions; no capture given)"
    source += f"; FP16 operands: {stimulus.fp16_source(gemms)}"

    found, problems = units_mod.discover(args.rtl_dir)
    errors += problems
    calibration = units_mod.calibration_units(os.path.join(args.out, "designs", "calibration"))
    todo = found + calibration
    if args.only:
        unknown = sorted(set(args.only) - {u.name for u in todo})
        if unknown:
            print(
                f"report: error: --only: unknown unit(s) {', '.join(unknown)} "
                f"(known: {', '.join(u.name for u in todo)})",
                file=sys.stderr,
            )
            return 2
        todo = [u for u in todo if u.name in args.only or (args.step and u.name in step.STEP_UNITS)]
    if args.step:
        absent = sorted(set(step.STEP_UNITS) - {u.name for u in todo})
        if absent:
            errors.append(f"--step: unit(s) {', '.join(absent)} not in {args.rtl_dir} (run `make rtl`)")

    liberty_work = None
    if library is not None:
        liberty_work = os.path.join(args.out, "liberty", f"{library.sha256[:16]}.lib")
        if not os.path.isfile(liberty_work):
            library.write_working_copy(liberty_work)

    variants = {"off": (False,), "on": (True,), "both": (True, False)}[args.clock_gating] if library else (False,)
    # Only MAC units and arrays have a per-MAC figure; other generated modules
    # (the training datapath with its buffers) are listed, not measured.
    skipped = {}
    # Arrays of a kind with no report workloads (PEKind.workloads empty: not in the report yet) likewise.
    step_units = step.STEP_UNITS if args.step else {}
    for unit in [u for u in todo if not u.workloads and u.kind != "calibration" and u.name not in step_units]:
        skipped[unit.name] = (
            "array of a kind without report workloads (not in the report yet)"
            if unit.array
            else "not a MAC unit or array (no per-MAC operand stream)"
        )
        todo.remove(unit)
    by_variant = {}
    for gating in variants:
        ctx = flow.Context(
            out_dir=args.out,
            library=library,
            liberty_work=liberty_work,
            gemms=gemms,
            stimulus_source=source,
            macs=args.macs,
            clock_ns=args.clock_ns,
            yosys_map=yosys_map,
            yosys_cmos=yosys_cmos,
            use_cache=not args.no_cache,
            clock_gating=gating,
            glitch=args.glitch == "on",
            step_workloads=step_units,
            elements=elements,
        )
        measured = _measure_variant(todo, ctx, args, skipped)
        by_variant[gating] = {u.name: measured[u.name] for u in todo if u.name in measured}
    measured = by_variant[variants[0]]
    step_report = None
    if args.step:
        step_report = {
            "counts": counts,
            "zero_delay": step.compose(measured, counts),
            "glitch": step.compose(measured, counts, glitch=True) if args.glitch == "on" else None,
            "clock_gating": bool(variants[0]),
            "units": {n: measured.pop(n) for n in step.ELEMENT_UNITS if n in measured},
        }
        for variant in by_variant.values():
            for n in step.ELEMENT_UNITS:
                variant.pop(n, None)
    pes = {n: e for n, e in measured.items() if e["kind"] != "calibration"}
    cal = {n: e for n, e in measured.items() if e["kind"] == "calibration"}

    kinds = {e["kind"] for e in pes.values()} | {u.kind for u in found}
    missing = [
        f"{k} ({d})"
        for k, d in units_mod.EXPECTED_KINDS.items()
        if k not in kinds and not (k == "arrays" and any(u.pe_count > 1 for u in found))
    ]
    method = [
        "Register boundary: every unit input goes through a flip-flop; outputs are registers "
        "(the accumulator, or an added register for combinational circuits); area and energy include them.",
        "Technology-independent: Yosys `synth -flatten; dffunmap; abc -g cmos2; stat -tech cmos` (flip-flops counted).",
        f"Liberty: decompressed working copy with `dont_use` on cells matching `{DONT_USE_PATTERN}`; "
        "`dfflibmap`, area-oriented `abc` (`&nf`), `stat -liberty`; delay = ABC `stime` critical path "
        "of the logic between registers (no clock-to-Q or setup).",
        "Energy: Icarus simulation of the mapped netlist with zero-delay cell models derived from the "
        "Liberty functions (glitches not counted); per net 0.5 C V^2 per toggle with C = sink pin "
        "capacitances + the Liberty default wire-load model; cell internal_power tables per output "
        f"transition (averaged over arcs, input transition {DEFAULT_SLEW_NS} ns) and per input-pin "
        "transition (flip-flop CLK/D); cell_leakage_power over the simulated time; ideal clock "
        "(no clock tree).",
        "Clock gating (the headline where measured; both sides alike): the PyPI Yosys's `clockgate -liberty` "
        f"puts every group of >= {synth.MIN_GATED_FLOPS} flip-flops that share an enable (an accumulator "
        "holding while `valid` and `clear` are low, a gated array's operand and drain registers) behind one "
        "integrated clock gate of the library, after `dfflegalize` lets the enable cover a synchronous reset; "
        "the gates' latches and their clock pins are simulated and counted like any cell. The boundary "
        "registers load every cycle. Without clock gating, every flip-flop is clocked every cycle and an "
        "enable is a multiplexer.",
        "Workloads: forward = the forward GEMMs (activation codes x SAWB INT4 weights), backward = the two "
        "backward GEMMs (INT4 W x FP4 dY phase 0; UINT4 X x FP4 dY phase 1); each unit runs its PE kind's "
        "workloads ("
        + ", ".join(f"{m}: {' + '.join(k.workloads)}" for m, k in stimulus.TOP_KINDS.items())
        + "), a floating-point kind on the same float tensors in binary16; every cycle is a MAC, dot "
        "products of full length K with `clear` at their start.",
        "Glitch-aware (beside the headline): the same mapped netlist and stimulus simulated with every cell "
        "output delayed by its Liberty `cell_rise`/`cell_fall` (mean over arcs, at the net's load and a "
        f"{DEFAULT_SLEW_NS} ns input transition), as inertial continuous-assignment delays, at a clock of "
        "1.5x the unit's critical path + 2 ns (at least the flow's clock); its sampled outputs must equal the "
        "zero-delay run's. Every hazard transition is counted and costs like any other. The zero-delay figures "
        "are the headline because they are the conservative ones for the 4-bit claim: the glitches they omit "
        "cost FP16's deep adders and normalizers more than the 4-bit units; the glitch-aware figures still "
        "rest on one slew and inertial pulse rejection at each cell's own delay.",
        "Ratios compare the baseline with each 4-bit unit on that unit's workload (both workloads: energy "
        "per MAC over all of them).",
    ]
    other = {}
    for gating in variants[1:]:
        units = {n: e for n, e in by_variant[gating].items() if e["kind"] != "calibration"}
        glitchy = render.glitch_view(units)
        other["gated" if gating else "ungated"] = {
            "units": units,
            "ratios": render.ratios(units),
            "array_ratios": render.array_ratios(units),
            "glitch": {"ratios": render.ratios(glitchy), "array_ratios": render.array_ratios(glitchy)},
        }
    glitchy = render.glitch_view(pes)
    report = {
        "clock_gating": bool(variants[0]),
        "variants": other,
        "units": pes,
        "ratios": render.ratios(pes),
        "liberty": args.liberty if library is not None else None,
        "liberty_name": library.name if library is not None else None,
        "voltage": library.voltage if library is not None else None,
        "paper_claim": render.PAPER_CLAIM,
        "stimulus": source,
        "macs": args.macs,
        "clock_ns": args.clock_ns,
        "calibration": render.calibration_rows(cal),
        "array_ratios": render.array_ratios(pes),
        "glitch": {"ratios": render.ratios(glitchy), "array_ratios": render.array_ratios(glitchy)},
        "missing": missing,
        "skipped": skipped,
        "step": step_report,
        "errors": errors,
        "yosys": {"map": yosys_map, "cmos": yosys_cmos},
        "flow": flow.FLOW_ID,
        "command": "python -m report " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "method": method,
    }
    paths = render.write_all(report, args.out)
    for p in paths:
        print(p)
    r = report["ratios"]
    print(
        f"report: {render.headline(r)} (paper: >7x); {time.monotonic() - t0:.0f} s",
        file=sys.stderr,
    )
    unit_errors = [
        e
        for results in by_variant.values()
        for u in results.values()
        for e in u["errors"]
        if "no operand-stream model" not in e
    ]
    if step_report:  # the element units left the per-MAC results; their failures still count
        unit_errors += [e for u in step_report["units"].values() for e in u["errors"]]
    failed = yosys_map is None or problems or unit_errors
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_main(main, "report"))
