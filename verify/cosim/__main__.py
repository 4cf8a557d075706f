"""``python -m verify.cosim``: hardware-in-the-loop training on the simulated datapath.

Example::

    python -m verify.cosim --preset digits            # make cosim: 64-32-10 on digits, one epoch
    python -m verify.cosim --preset mnist             # make cosim-mnist: 784-128-10 on MNIST, 2 steps
    python -m verify.cosim --preset mnist-epoch       # make cosim-mnist-epoch: 784-128-10, one MNIST epoch
    python -m verify.cosim --preset tiny --sim verilator-cocotb   # the cocotb path (one Python step per clock)
    python -m verify.cosim --preset digits --steps 30 --batch 32 --rows 4 --cols 4 --report out.json

Every GEMM, requantization and gradient quantization of the MLP runs on the
Verilator-simulated :class:`hw.datapath.TrainDatapath` (``--sim verilator``, the
default: the native harness of :mod:`verify.cosim.native`; ``--sim verilator-cocotb``:
the cocotb driver); the host does the loss and the optimizer. After every step
the master weights are compared bit for bit with the golden model trained from
the same state. Prints one line per step (or every ``--print-every`` steps), the
wall time (steps/s, and how much of it the golden twin took), the test accuracy
of both runs (presets digits and mnist-epoch, or ``--accuracy``: the host's with
every forward GEMM on the datapath), the performance model of the last step (MACs per cycle and array
utilization per GEMM, projected step time at the Fmax measured by
``python -m verify.cosim.fmax``, or ``--fmax-mhz``), and ends with
``bit-exact: N/N steps``. Exit status: 0 all steps bit-exact; 1 a difference
or a simulation failure; 2 bad input (e.g. a network the datapath cannot hold).
"""

import json
import pathlib
import sys
import time

from fourbit.util.cli import OneLineParser, check_output_file, positive_int, run_main
from fourbit.util.files import write_text_atomically

from .build import NATIVE, SIMULATORS
from .driver import Geometry
from .native import HOST_PORTS
from .run import PRESETS, performance, run_cosim


def measured_fmax(preset, geometry, build_root=None):
    """``(MHz, source)`` of the routed Fmax measured for ``preset`` (or for another preset of the
    same geometry: mnist-epoch uses mnist's), or ``(None, None)`` when none was measured for exactly
    this geometry (default widths included)."""
    from .fmax import BUILD_ROOT, fmax_path, load_fmax

    root = BUILD_ROOT if build_root is None else build_root
    for name in (preset, *(other for other in PRESETS if other != preset)):
        measured = load_fmax(name, root)
        if measured and Geometry(**measured["geometry"]) == Geometry(**geometry):
            return measured["fmax_mhz"], f"{measured['device']}, nextpnr ({fmax_path(name, root)})"
    return None, None


def _parser(prog=None):
    p = OneLineParser(
        prog=prog or "python -m verify.cosim",
        error_prefix=prog or "verify.cosim",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--preset", default="digits", help=f"one of: {', '.join(PRESETS)} (default digits)")
    for name in ("steps", "batch", "hidden", "depth", "rows", "cols", "k-depth", "grad-depth", "mask-depth"):
        p.add_argument(f"--{name}", type=positive_int, help="override the preset")
    p.add_argument("--seed", type=int, help="override the preset")
    p.add_argument("--lr", type=float, help="override the preset")
    p.add_argument(
        "--data-dir",
        help="MNIST directory (mnist preset; default: $FOURBIT_MNIST_DIR, else ../shared/data/mnist beside the "
        "repository)",
    )
    p.add_argument("--fmax-mhz", type=float, help="clock for the projected step time (default: measured)")
    p.add_argument(
        "--sim",
        default=NATIVE,
        choices=SIMULATORS,
        help="verilator: the native harness (default); verilator-cocotb: the cocotb driver",
    )
    p.add_argument(
        "--host-ports",
        default=HOST_PORTS[0],
        choices=HOST_PORTS,
        help="native harness: direct (default; operand words and read-backs move without clocking the idle "
        "model, each counted as a host-port cycle) or clocked (one clock per host word, as the cocotb driver)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="native harness: simulate the datapath on N threads (verilator --threads N, a separate cached "
        "build; the same results; default 1)",
    )
    p.add_argument(
        "--accuracy", action="store_true", help="also measure the test accuracy (presets digits, mnist-epoch do)"
    )
    p.add_argument("--print-every", type=positive_int, default=1, help="print every N-th step (default 1)")
    p.add_argument("--report", help="write the full report (JSON) here")
    return p


def main(argv=None, prog=None):
    """Entry point of ``python -m verify.cosim``; returns the exit status (see the module docstring)."""
    args = _parser(prog).parse_args(argv)
    prog = prog or "verify.cosim"
    if args.preset not in PRESETS:
        print(f"{prog}: error: unknown preset {args.preset!r}; valid: {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    if args.report:
        problem = check_output_file(args.report, "--report", make_parents=True)
        if problem:
            print(f"{prog}: error: {problem}", file=sys.stderr)
            return 2
    params = json.loads(json.dumps(PRESETS[args.preset]))
    for name in ("steps", "batch", "hidden", "depth", "seed", "lr"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    for name in ("rows", "cols", "k_depth", "grad_depth", "mask_depth"):
        if getattr(args, name) is not None:
            params["geometry"][name] = getattr(args, name)
    if args.data_dir:
        params["data_dir"] = args.data_dir
    params["sim"] = args.sim
    params["host_ports"] = args.host_ports
    params["threads"] = args.threads
    if args.accuracy:
        params["evaluate"] = True
    if params.get("data_dir") and not pathlib.Path(params["data_dir"]).is_dir():
        # Checked before the datapath build (minutes), not after it.
        print(
            f"{prog}: error: {params['dataset']} directory {params['data_dir']} does not exist "
            "(pass --data-dir or set FOURBIT_MNIST_DIR)",
            file=sys.stderr,
        )
        return 2
    fmax_mhz, fmax_source = args.fmax_mhz, "--fmax-mhz"
    if fmax_mhz is None:
        fmax_mhz, fmax_source = measured_fmax(args.preset, params["geometry"])
    g = params["geometry"]
    print(
        f"co-simulation: {params['dataset']} MLP {params.get('hidden')} hidden x {params.get('depth', 1)}, "
        f"batch {params['batch']}, {'one epoch' if params['steps'] is None else str(params['steps']) + ' steps'} "
        f"on a {g['rows']}x{g['cols']} datapath ({args.sim}"
        f"{', host ports ' + args.host_ports if args.sim == NATIVE else ''}"
        f"{f', {args.threads} model threads' if args.threads > 1 else ''})",
        flush=True,
    )

    started, cpu_started = time.perf_counter(), time.process_time()

    def on_step(r):
        if r["match"] and r["step"] % args.print_every:
            return
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        print(
            f"step {r['step']:3d}  loss {r['loss']:.6f}  golden {r['loss_golden']:.6f}  "
            f"cycles {r['compute_cycles']:8d}  host-io {r['io_cycles']:8d}  "
            f"match {'yes' if r['match'] else 'NO'}  {1000 * r['seconds']:.0f} ms  "
            f"(after {wall:.0f} s wall, {cpu:.0f} s CPU)",
            flush=True,
        )

    import torch

    # One thread: the golden twin's tensors are small, and idle OpenMP workers spin on the
    # cores the simulation needs (a fifth of the CPU time of an MNIST run went to libgomp).
    torch.set_num_threads(1)
    try:
        report = run_cosim(**params, on_step=on_step)
    except (ValueError, TypeError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"{prog}: simulation failed: {e}", file=sys.stderr)
        return 1
    rows, summary = performance(report, fmax_mhz)
    print(
        f"\nperformance model (last step, {g['rows']}x{g['cols']} = {g['rows'] * g['cols']} PEs; "
        "cycles = datapath busy cycles incl. drain and post-operations):"
    )
    print(f"  {'GEMM':<12} {'M x K x N':>14} {'tiles':>6} {'MACs':>9} {'cycles':>8} {'MAC/cyc':>8} {'util':>7}")
    for r in rows:
        print(
            f"  {r['name']:<12} {r['shape']:>14} {r['tiles']:>6} {r['macs']:>9} {r['cycles']:>8} "
            f"{r['macs_per_cycle']:>8.2f} {100 * r['utilization']:>6.1f}%"
        )
    print(
        f"  FP4 encode: {summary['encode_cycles']} cycles; step total {summary['compute_cycles']} cycles "
        f"({summary['macs']} MACs, {summary['macs'] / summary['compute_cycles']:.2f} MAC/cycle); "
        f"host port transfers {summary['io_cycles']} cycles"
    )
    if fmax_mhz:
        print(
            f"  projected training step at {fmax_mhz:.1f} MHz ({fmax_source}): "
            f"{summary['step_us_compute']:.1f} us compute, {summary['step_us_with_io']:.1f} us with host transfers"
        )
    else:
        print(
            "  projected step time: no Fmax measured for this geometry (run `python -m verify.cosim.fmax "
            f"--preset {args.preset}` or pass --fmax-mhz)"
        )
    steps = report["steps"]
    train_seconds = sum(r["seconds"] for r in steps)
    golden_seconds = sum(r["golden_seconds"] for r in steps)
    busy, io = sum(r["compute_cycles"] for r in steps), sum(r["io_cycles"] for r in steps)
    print(
        f"  wall time: {len(steps)} steps in {train_seconds:.1f} s = {len(steps) / train_seconds:.1f} steps/s "
        f"(golden twin {golden_seconds:.1f} s of it); datapath {busy / len(steps):.0f} busy + "
        f"{io / len(steps):.0f} host-port cycles per step; "
        f"build {report['build_seconds']:.1f} s ({'compiled' if report['built'] else 'cached'}); "
        f"total {report['seconds']:.1f} s"
    )
    cpu = report["cpu_seconds"]
    if "harness" in cpu:
        clocks = report["simulated_clocks"]
        print(
            f"  CPU time of the steps: {cpu['host'] + cpu['golden'] + cpu['compare']:.1f} s: native simulation "
            f"{cpu['harness']:.1f} s ({clocks / len(steps):.0f} clocks simulated per step, "
            f"{1e6 * cpu['harness'] / max(clocks, 1):.2f} us/clock; "
            f"{1e6 * cpu['harness'] / max(busy + io, 1):.2f} us per busy + host-port cycle), host Python "
            f"{cpu['host'] - cpu['harness']:.1f} s, golden twin {cpu['golden']:.1f} s, "
            f"comparison {cpu['compare']:.1f} s"
        )
    accuracy = report.get("accuracy")
    if accuracy:
        print(
            f"  test accuracy: hardware {100 * accuracy['hardware']:.2f}% "
            f"({accuracy['correct']['hardware']}/{accuracy['samples']}), "
            f"golden {100 * accuracy['golden']:.2f}% ({accuracy['correct']['golden']}/{accuracy['samples']}): "
            f"{'equal' if accuracy['correct']['hardware'] == accuracy['correct']['golden'] else 'DIFFERENT'}"
        )
    losses = [r["loss"] for r in report["steps"]]
    k = max(1, len(losses) // 4)
    print(f"  loss: first {k} steps mean {sum(losses[:k]) / k:.4f} -> last {k} steps mean {sum(losses[-k:]) / k:.4f}")
    if args.report:
        write_text_atomically(
            args.report,
            json.dumps({**report, "performance": {"gemms": rows, "summary": summary}}, indent=1) + "\n",
            make_parents=True,
        )
    good = sum(r["match"] for r in report["steps"])
    print(f"bit-exact: {good}/{len(report['steps'])} steps")
    same_accuracy = not accuracy or accuracy["correct"]["hardware"] == accuracy["correct"]["golden"]
    return 0 if good == len(report["steps"]) and same_accuracy else 1


if __name__ == "__main__":
    sys.exit(run_main(main, "verify.cosim"))
