"""cocotb bit-exact checks of the generated PEs on Icarus and Verilator.

Each (design, simulator) pair has its own build directory under
``build/sim/``. The default suite runs a sample of a few thousand steps per
unit (every operand pair in both modes, random ``valid``/``clear`` with resets
mid-sequence, FP16 class crosses, cancellations, ties) plus wrap-around; the
``slow`` tests (``make verify-long``) run 10^6 random FP16 MAC steps.
"""

import os

import numpy as np
import pytest

from verify import stimulus as st
from verify.runner import REPO_ROOT, SIMULATORS, PESimulation

BUILD = REPO_ROOT / "build" / "sim"
KINDS = ("int4_mac", "log_mac", "fp16_mac")
#: Steps past the largest safe K at the default widths (int4: 69905, log: 34952),
#: in both directions.
FULL_WRAP_STEPS = {"int4_mac": 2 * 69906 + 2, "log_mac": 2 * 34953 + 2}


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("kind", KINDS)
def test_default_build(kind, sim):
    """Golden sequence bit for bit, then the SPEC-only testbench."""
    simulation = PESimulation(kind=kind, sim=sim, build_dir=BUILD / sim / kind)
    sequence = st.default_sequence(kind, seed=1, random_steps=3000)
    if kind in FULL_WRAP_STEPS and sim == "verilator":
        # Icarus runs the full-width wrap in `make verify-long`.
        sequence = st.concat(sequence, st.int_wrap(kind, FULL_WRAP_STEPS[kind]))
    report = simulation.run(sequence)
    assert report["steps"] == len(sequence)
    # Same build (one build directory per design and simulator): the independent
    # SPEC-section-3 testbench (tests/verify/spec_tb.py), which knows nothing of golden.
    simulation.run_module(
        "tests.verify.spec_tb", name="spec", env={"FOURBIT_SPEC_STEPS": "1500", "FOURBIT_SPEC_SEED": "3"}
    )


@pytest.mark.parametrize(
    "sim",
    [
        "icarus",
        # One more Verilator C++ build per unit: `make verify-long` only.
        pytest.param("verilator", marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("kind,acc_width", [("int4_mac", 9), ("log_mac", 18)])
def test_narrow_accumulator_wraps(kind, acc_width, sim):
    """A narrow accumulator wraps within a few steps: random sequences wrap constantly."""
    simulation = PESimulation(
        kind=kind, sim=sim, build_dir=BUILD / sim / f"{kind}-w{acc_width}", params={"acc_width": acc_width}
    )
    rng = np.random.default_rng(7)
    sequence = st.concat(st.int_wrap(kind, 40), st.int_random(kind, rng, 1500, p_clear=0.01))
    expected = st.expected(sequence, acc_width=acc_width)
    assert len(np.unique(expected)) > 100, "the stimulus should sweep the accumulator range"
    simulation.run(sequence)


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("kind", ["mxfp4_mac", "nvfp4_mac"])
def test_block_default_build(kind, sim):
    """The block-scaled tops (SPEC section 7 arithmetic; SPEC section 3 defines no top for them,
    so the SPEC-3 testbench does not apply): the golden sequence bit for bit."""
    simulation = PESimulation(kind=kind, sim=sim, build_dir=BUILD / sim / kind)
    sequence = st.default_sequence(kind, seed=2, random_steps=2000)
    assert simulation.run(sequence)["steps"] == len(sequence)


@pytest.mark.parametrize("kind", KINDS)
def test_pipelined_variant(kind):
    """``pipeline=1`` (latency 2) on Icarus; only the initial reset, since a reset
    also cancels the products in flight (tested in tests/hw/test_pe.py)."""
    simulation = PESimulation(
        kind=kind, sim="icarus", build_dir=BUILD / "icarus" / f"{kind}-p1", params={"pipeline": 1}
    )
    assert simulation.entry["latency"] == 2
    sequence = st.default_sequence(kind, seed=4, random_steps=1000)
    inputs = dict(sequence.inputs, rst=np.r_[1, np.zeros(len(sequence) - 1, dtype=np.int64)])
    simulation.run(st.Sequence(kind=kind, inputs=inputs, families=sequence.families))


def test_mismatch_is_reported(monkeypatch):
    """The checker fails on a wrong expectation (the testbench can fail)."""
    simulation = PESimulation(kind="int4_mac", sim="icarus", build_dir=BUILD / "icarus" / "int4_mac-neg")
    sequence = st.int_random("int4_mac", np.random.default_rng(0), 50)
    real_expected = st.expected

    def off_by_one(seq, *, acc_width=None):
        values = real_expected(seq, acc_width=acc_width)
        values[25] ^= np.uint64(1)
        return values

    monkeypatch.setattr(st, "expected", off_by_one)
    with pytest.raises(AssertionError, match="1 of 50 steps differ"):
        simulation.run(sequence)


LONG_FP16_STEPS = int(os.environ.get("FOURBIT_FP16_STEPS", "1000000"))


@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMULATORS)
def test_fp16_long_random(sim):
    """At least 10^6 random FP16 MAC steps (``FOURBIT_FP16_STEPS``), bit-exact."""
    simulation = PESimulation(kind="fp16_mac", sim=sim, build_dir=BUILD / "long" / sim / "fp16_mac")
    rng = np.random.default_rng(2024)
    sequence = st.concat(
        st.fp16_classes(rng),
        st.fp16_cancellation(rng, 5000),
        st.fp16_ties(rng, 500),
        st.fp16_random(rng, LONG_FP16_STEPS),
    )
    report = simulation.run(sequence, name="long")
    assert report["steps"] >= LONG_FP16_STEPS


@pytest.mark.slow
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("kind", ["int4_mac", "log_mac"])
def test_integer_long(kind, sim):
    """Full-width wrap-around both ways plus 2 * 10^5 random steps."""
    simulation = PESimulation(kind=kind, sim=sim, build_dir=BUILD / "long" / sim / kind)
    rng = np.random.default_rng(99)
    sequence = st.concat(
        st.int_exhaustive(kind), st.int_wrap(kind, FULL_WRAP_STEPS[kind]), st.int_random(kind, rng, 200_000)
    )
    simulation.run(sequence, name="long")
