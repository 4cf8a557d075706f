"""``python -m verify.exhaustive``: hw.fp.fp16_product over all 2^32 operand pairs.

The combinational product datapath alone is wrapped in a module
``fp16_product(a, b) -> p``, compiled with Verilator into a C++ harness
(``verify/cpp/fp16_product_exhaustive.cpp``) whose reference is the C float
product with canonical NaN. The 65536 values of ``a`` are split over worker
processes.
"""

import concurrent.futures
import itertools
import os
import pathlib
import re
import subprocess
import sys

from amaranth.back import verilog
from amaranth.hdl import Module, Signal

from fourbit.util.cli import OneLineParser, run_main
from fourbit.util.tools import tool_env
from hw.fp import fp16_product

from .simulator import VERILATOR_WAIVERS

__all__ = ["build_harness", "check_range", "main"]

HARNESS = pathlib.Path(__file__).resolve().parent / "cpp" / "fp16_product_exhaustive.cpp"


def _product_module():
    m = Module()
    a, b, p = Signal(16, name="a"), Signal(16, name="b"), Signal(32, name="p")
    m.d.comb += p.eq(fp16_product(m, a, b))
    return verilog.convert(m, name="fp16_product", ports=[a, b, p], emit_src=False)


def build_harness(build_dir):
    """Compile the harness; returns the executable's path."""
    build_dir = pathlib.Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / "fp16_product.v"
    source.write_text(_product_module())
    command = [
        "verilator",
        "--cc",
        "--exe",
        "--build",
        "-O3",
        "--top-module",
        "fp16_product",
        "-Mdir",
        str(build_dir / "obj"),
        "-o",
        "fp16_product_exhaustive",
        "-CFLAGS",
        "-O2",
        str(VERILATOR_WAIVERS),
        str(source),
        str(HARNESS),
    ]
    subprocess.run(command, env=tool_env(), check=True, capture_output=True, text=True)
    return build_dir / "obj" / "fp16_product_exhaustive"


def check_range(executable, begin, end):
    """(pairs checked, mismatches, first mismatch lines) for ``a`` in [begin, end)."""
    result = subprocess.run([str(executable), str(begin), str(end)], capture_output=True, text=True)
    match = re.search(r"checked (\d+) mismatches (\d+)", result.stdout)
    if not match:
        raise RuntimeError(f"harness failed (exit {result.returncode}): {result.stderr.strip()}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("a=")]
    return int(match.group(1)), int(match.group(2)), lines


def main(argv=None, prog=None):
    """Entry point of ``python -m verify.exhaustive``; returns 0 when no product mismatches."""
    parser = OneLineParser(
        prog=prog or "python -m verify.exhaustive",
        error_prefix=prog or "verify.exhaustive",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--a-begin", type=lambda s: int(s, 0), default=0)
    parser.add_argument("--a-end", type=lambda s: int(s, 0), default=0x10000)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--build-dir", default="build/exhaustive")
    args = parser.parse_args(argv)
    if not 0 <= args.a_begin <= args.a_end <= 0x10000 or args.jobs < 1:
        print("verify.exhaustive: error: need 0 <= --a-begin <= --a-end <= 0x10000 and --jobs >= 1", file=sys.stderr)
        return 2
    executable = build_harness(args.build_dir)
    bounds = [args.a_begin + (args.a_end - args.a_begin) * i // args.jobs for i in range(args.jobs + 1)]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda r: check_range(executable, *r), itertools.pairwise(bounds)))
    checked = sum(r[0] for r in results)
    mismatches = sum(r[1] for r in results)
    for line in [line for r in results for line in r[2]][:5]:
        print(line)
    print(f"fp16_product: {checked} operand pairs checked, {mismatches} mismatches")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(run_main(main, "verify.exhaustive"))
