"""``python -m verify.bench``: MAC steps checked per second, per unit and simulator.

Each unit runs a random step sequence (random operands, ``valid``/``clear``,
occasional resets) through the cocotb testbench (:mod:`verify.pe_tb`), which
drives one step per cycle, samples ``acc`` every cycle and compares every
sample with the golden model bit for bit. Reported: the simulation rate (the
testbench's drive-and-sample loop, measured inside the simulator process), and
the end-to-end rate that also counts computing the golden expectation.
Amaranth's own simulator (:mod:`verify.amaranth_sim`) is listed for comparison.
Builds are not timed.
"""

import sys
import time

import numpy as np

from fourbit.util.cli import OneLineParser, non_negative_int, positive_int, run_main

from . import stimulus as st
from .amaranth_sim import simulate_sequence
from .runner import REPO_ROOT, SIMULATORS, PESimulation

#: The standalone tops of the PE-kind registry.
KINDS = tuple(st.TOP_KINDS)


def _random_sequence(kind, steps, seed):
    rng = np.random.default_rng(seed)
    if st.TOP_KINDS[kind].is_float:
        return st.fp16_random(rng, steps)
    return st.int_random(kind, rng, steps)


def bench_cocotb(kind, sim, steps, seed=0):
    simulation = PESimulation(kind=kind, sim=sim, build_dir=REPO_ROOT / "build" / "bench" / sim / kind)
    simulation.build()
    report = simulation.run(_random_sequence(kind, steps, seed), name="bench")
    return report["steps"], report["seconds"], report["seconds"] + report["golden_seconds"]


def bench_amaranth(kind, steps, seed=0):
    from hw.units import build_unit

    _, _, component = build_unit(kind, {})
    sequence = _random_sequence(kind, steps, seed)
    started = time.perf_counter()
    observed = simulate_sequence(component, sequence)
    simulated = time.perf_counter() - started
    expected = st.expected(sequence, acc_width=len(component.acc))
    total = time.perf_counter() - started
    if not np.array_equal(observed, expected):
        raise AssertionError(f"{kind}: Amaranth simulation differs from golden")
    return len(sequence), simulated, total


def main(argv=None, prog=None):
    """Entry point of ``python -m verify.bench``; prints the table, returns the exit status."""
    parser = OneLineParser(
        prog=prog or "python -m verify.bench",
        error_prefix=prog or "verify.bench",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--steps", type=positive_int, default=100_000, help="steps per unit on Verilator (default %(default)s)"
    )
    parser.add_argument(
        "--icarus-steps", type=positive_int, default=20_000, help="steps per unit on Icarus (default %(default)s)"
    )
    parser.add_argument(
        "--amaranth-steps",
        type=non_negative_int,
        default=5_000,
        help="steps per unit in Amaranth's simulator, 0 to skip (default %(default)s)",
    )
    args = parser.parse_args(argv)
    rows = []
    for kind in KINDS:
        for sim in SIMULATORS:
            steps = args.steps if sim == "verilator" else args.icarus_steps
            rows.append((kind, sim, *bench_cocotb(kind, sim, steps)))
        if args.amaranth_steps:
            rows.append((kind, "amaranth (pysim)", *bench_amaranth(kind, args.amaranth_steps)))
    print("| unit | simulator | steps | simulated steps/s | checked steps/s (incl. golden) |")
    print("|---|---|---:|---:|---:|")
    for kind, sim, steps, simulated, total in rows:
        print(f"| {kind} | {sim} | {steps} | {steps / simulated:,.0f} | {steps / total:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "verify.bench"))
