"""``python -m verify.bench_arrays``: simulation speed of the systolic arrays (``make bench-sim``).

For each (PE kind, array size, simulator) it runs one M x K x N GEMM through
:func:`verify.gemm.run_gemm` (``verilator``: the native harness of
:mod:`verify.native`; ``icarus`` and ``verilator-cocotb``: cocotb, whole rows
per cycle), checks the result
bit for bit against :mod:`golden.reference`, and reports PE-MACs verified per
second: ``M * K * N`` divided by the wall time of the run without the one-off
compile (Python and simulator start-up, Verilog conversion, drive loop and
result assembly included). The compile time of the first, uncached build is
a separate column.

Example::

    python -m verify.bench_arrays --kinds int4,log,fp16 --sizes 2x2,4x4,8x8,16x16 \\
        --sims icarus,verilator-cocotb,verilator --mkn 64,64,64 --native-mkn 512,1024,512 \\
        --out build/bench/arrays.md

A 64^3 GEMM is a few thousand cycles, which the native path runs in
milliseconds (its time is Python's: the schedule and the assembly), so the
native rows run the larger ``--native-mkn`` GEMM as well, on the sizes where
it takes at most :data:`MAX_NATIVE_CYCLES` cycles (its packed operand rows
are held in memory whole: a few bytes per cycle per array row and column).
"""

import argparse
import sys
import time

import numpy as np

from fourbit.util.cli import OneLineParser, check_output_file, run_main
from fourbit.util.files import write_text_atomically
from hw.kinds import GEMMS
from verify.gemm import NATIVE, SIMULATORS

#: Largest schedule (cycles) of a ``--native-mkn`` row: 512x1024x512 on 16x16 is 2^20.
MAX_NATIVE_CYCLES = 1 << 20


def _cycles(rows, cols, m, k, n):
    return -(-m // rows) * -(-n // cols) * max(k, 2 * rows - 1)


def measure(kind, rows, cols, sim, m, k, n, *, seed=0):
    """One benchmark row (dict); the first run builds if needed, the second is timed."""
    from verify.gemm import run_gemm

    gemm = GEMMS[kind]
    rng = np.random.default_rng(seed)
    inputs = gemm.random_inputs(rng, m, k, n)
    started = time.perf_counter()
    first = run_gemm(kind, **inputs, rows=rows, cols=cols, sim=sim)
    build_seconds = time.perf_counter() - started - first.sim_seconds if first.built else 0.0
    result = run_gemm(kind, **inputs, rows=rows, cols=cols, sim=sim) if first.built else first
    expected = gemm.reference(**inputs)
    if not np.array_equal(gemm.result_bits(result.c), gemm.result_bits(expected)):
        raise AssertionError(f"{kind} {rows}x{cols} on {sim}: result differs from golden.reference")
    macs = m * k * n
    return {
        "kind": kind,
        "rows": rows,
        "cols": cols,
        "sim": sim,
        "gemm": f"{m}x{k}x{n}",
        "cycles": result.cycles,
        "build_s": build_seconds,
        "run_s": result.seconds,
        "drive_s": result.sim_seconds,
        "macs_per_s": macs / result.seconds,
        "cycles_per_s": result.cycles / result.sim_seconds if result.sim_seconds else float("inf"),
    }


def table(rows):
    """Markdown table of :func:`measure` rows."""
    lines = [
        "| PE | array | simulator | GEMM | cycles | first build (s) | run (s) | drive loop (s) "
        "| cycles/s (drive) | PE-MACs verified/s |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        build = f"{r['build_s']:.1f}" if r["build_s"] else "cached"
        lines.append(
            f"| {r['kind']} | {r['rows']}x{r['cols']} | {r['sim']} | {r['gemm']} | {r['cycles']} "
            f"| {build} | {r['run_s']:.2f} | {r['drive_s']:.3f} | {r['cycles_per_s']:,.0f} "
            f"| {r['macs_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def _list(text, convert):
    try:
        return [convert(item) for item in text.split(",") if item.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _size(text):
    r, sep, c = text.strip().partition("x")
    if not sep or not r.isdigit() or not c.isdigit() or int(r) < 1 or int(c) < 1:
        raise ValueError(f"array size {text!r} is not RxC")
    return int(r), int(c)


def _kind(text):
    if text.strip() not in GEMMS:
        raise ValueError(f"unknown PE kind {text!r} ({', '.join(GEMMS)})")
    return text.strip()


def _sim(text):
    if text.strip() not in SIMULATORS:
        raise ValueError(f"unknown simulator {text!r} ({', '.join(SIMULATORS)})")
    return text.strip()


def main(argv=None, prog=None):
    """Entry point of ``python -m verify.bench_arrays``; prints the table, returns the exit status."""
    parser = OneLineParser(
        prog=prog or "python -m verify.bench_arrays",
        error_prefix=prog or "verify.bench_arrays",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--kinds", default=",".join(GEMMS), type=lambda t: _list(t, _kind))
    parser.add_argument("--sizes", default="2x2,4x4,8x8,16x16", type=lambda t: _list(t, _size))
    parser.add_argument("--sims", default=",".join(SIMULATORS), type=lambda t: _list(t, _sim))
    parser.add_argument("--mkn", default="64,64,64", type=lambda t: _list(t, int))
    parser.add_argument(
        "--native-mkn",
        default="512,1024,512",
        type=lambda t: _list(t, int),
        help=f"a second GEMM for --sims {NATIVE}, on sizes where it is at most 2^20 cycles (empty: none)",
    )
    parser.add_argument("--out", metavar="FILE.md", help="also write the table here (atomically)")
    args = parser.parse_args(argv)
    for option, mkn in (("--mkn", args.mkn), ("--native-mkn", args.native_mkn)):
        if (len(mkn) != 3 or min(mkn) < 1) and not (option == "--native-mkn" and not mkn):
            parser.error(f"{option} needs three positive integers M,K,N")
    problem = args.out and check_output_file(args.out, "--out", make_parents=True)
    if problem:
        parser.error(problem)
    rows = []
    for kind in args.kinds:
        for sim in args.sims:
            for r, c in args.sizes:
                gemms = [args.mkn]
                if sim == NATIVE and args.native_mkn and _cycles(r, c, *args.native_mkn) <= MAX_NATIVE_CYCLES:
                    gemms.append(args.native_mkn)
                for m, k, n in gemms:
                    row = measure(kind, r, c, sim, m, k, n)
                    rows.append(row)
                    print(
                        f"{kind:5s} {r:>2d}x{c:<2d} {sim:16s} {m}x{k}x{n} {row['run_s']:7.2f} s  "
                        f"{row['macs_per_s']:>14,.0f} PE-MACs/s",
                        file=sys.stderr,
                        flush=True,
                    )
    text = table(rows)
    print(text)
    if args.out:
        write_text_atomically(args.out, text + "\n", make_parents=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "verify.bench_arrays"))
