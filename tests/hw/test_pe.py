"""The standalone PEs in Amaranth's simulator, against the golden model.

Same step sequences (verify.stimulus) as the cocotb testbenches; the
pipelined variants are checked with the output delayed by their latency.
"""

import numpy as np
import pytest
from amaranth.hdl import Shape

from hw.pe import ProcessingElement
from verify import stimulus as st
from verify.amaranth_sim import simulate_sequence


def Int4MAC(**params):
    return ProcessingElement(kind="int4", **params)


def LogMAC(**params):
    return ProcessingElement(kind="log", **params)


def FP16MAC(**params):
    return ProcessingElement(kind="fp16", **params)


def TrainMAC(**params):
    return ProcessingElement(kind="train", **params)


def _check(component, sequence):
    observed = simulate_sequence(component, sequence)
    expected = st.expected(sequence, acc_width=len(component.acc))
    bad = np.flatnonzero(observed != expected)
    assert not len(bad), (
        f"{len(bad)} mismatches, first at step {bad[0]} "
        f"({sequence.family_of(bad[0])}): {int(observed[bad[0]]):#x} != {int(expected[bad[0]]):#x}"
    )


def _without_resets(sequence):
    """Only the initial reset: in a pipelined PE a reset also cancels the products in flight."""
    inputs = dict(sequence.inputs)
    inputs["rst"] = np.zeros_like(inputs["rst"])
    inputs["rst"][0] = 1
    return st.Sequence(kind=sequence.kind, inputs=inputs, families=sequence.families)


def _inspected(component):
    """A component built only to read its attributes (not elaborated)."""
    component._MustUse__silence = True
    return component


def _ports(component):
    _inspected(component)
    return {
        name: (member.flow.name, Shape.cast(member.shape).width, Shape.cast(member.shape).signed)
        for name, member in component.signature.members.items()
    }


def test_spec_ports():
    assert _ports(Int4MAC()) == {
        "a": ("In", 4, False),
        "b": ("In", 4, False),
        "a_signed": ("In", 1, False),
        "valid": ("In", 1, False),
        "clear": ("In", 1, False),
        "acc": ("Out", 24, True),
    }
    assert _ports(LogMAC()) == {
        "x": ("In", 4, False),
        "x_signed": ("In", 1, False),
        "g": ("In", 4, False),
        "valid": ("In", 1, False),
        "clear": ("In", 1, False),
        "acc": ("Out", 32, True),
    }
    assert _ports(FP16MAC()) == {
        "a": ("In", 16, False),
        "b": ("In", 16, False),
        "valid": ("In", 1, False),
        "clear": ("In", 1, False),
        "acc": ("Out", 32, False),
    }


@pytest.mark.parametrize("cls,kind", [(Int4MAC, "int4_mac"), (LogMAC, "log_mac"), (TrainMAC, "train_mac")])
def test_integer_default(cls, kind):
    _check(cls(), st.default_sequence(kind, seed=3, random_steps=3000))


@pytest.mark.parametrize("cls,kind,width", [(Int4MAC, "int4_mac", 9), (LogMAC, "log_mac", 18)])
def test_integer_wraps(cls, kind, width):
    rng = np.random.default_rng(4)
    _check(cls(acc_width=width), st.concat(st.int_wrap(kind, 50), st.int_random(kind, rng, 2000, p_clear=0.01)))


@pytest.mark.parametrize("cls,kind", [(Int4MAC, "int4_mac"), (LogMAC, "log_mac")])
@pytest.mark.parametrize("pipeline", [1, 2])
def test_integer_pipelined(cls, kind, pipeline):
    rng = np.random.default_rng(pipeline)
    component = cls(pipeline=pipeline)
    assert component.latency == 1 + pipeline
    _check(component, _without_resets(st.concat(st.int_exhaustive(kind), st.int_random(kind, rng, 1000))))


def test_fp16_default():
    _check(FP16MAC(), st.default_sequence("fp16_mac", seed=5, random_steps=2000))


def test_fp16_pipelined():
    component = FP16MAC(pipeline=1)
    assert component.latency == 2
    rng = np.random.default_rng(8)
    _check(component, _without_resets(st.concat(st.fp16_cancellation(rng, 100), st.fp16_random(rng, 1000))))


@pytest.mark.parametrize("kind", ["mxfp4", "nvfp4"])
def test_block_default(kind):
    component = ProcessingElement(kind=kind)
    assert _ports(component) == {
        "a": ("In", 12, False),
        "b": ("In", 12, False),
        "valid": ("In", 1, False),
        "clear": ("In", 1, False),
        "acc": ("Out", 32, False),
    }
    _check(ProcessingElement(kind=kind), st.default_sequence(f"{kind}_mac", seed=6, random_steps=2000))


@pytest.mark.parametrize("kind", ["mxfp4", "nvfp4"])
def test_block_pipelined(kind):
    """The block state sits after the pipeline registers: a pipelined top is the same MAC, later."""
    rng = np.random.default_rng(9)
    component = ProcessingElement(kind=kind, pipeline=1)
    assert component.latency == 2
    sequence = st.concat(st.block_runs(f"{kind}_mac", rng, 8), st.block_random(f"{kind}_mac", rng, 800))
    _check(component, _without_resets(sequence))


def test_max_k():
    assert _inspected(Int4MAC()).max_k == 69905  # 2^23 // 120 (UINT4 15 x INT4 -8)
    assert _inspected(LogMAC()).max_k == 34952  # 2^31 // 61440 (15 x 4^6)
    assert _inspected(Int4MAC(acc_width=32)).max_k == 2**31 // 120
    assert _inspected(LogMAC(acc_width=17)).max_k == 1
    assert _inspected(LogMAC(acc_width=18)).max_k == 2


@pytest.mark.parametrize("cls", [Int4MAC, LogMAC])
@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_parameter_errors(cls):
    with pytest.raises(ValueError, match="acc_width must be >= 1"):
        cls(acc_width=0)
    with pytest.raises(TypeError, match="acc_width must be an integer"):
        cls(acc_width="24")
    with pytest.raises(ValueError, match="pipeline must be >= 0"):
        cls(pipeline=-1)
    with pytest.raises(ValueError, match="fewer than min_k"):
        cls(min_k=10**9)
    with pytest.raises(ValueError, match="fewer than min_k"):
        cls(acc_width=4)


def test_reset_cancels_products_in_flight():
    """Pipelined variant: a reset clears the accumulator and the pipeline registers."""
    n = 8
    inputs = {
        "a": np.full(n, 3),
        "b": np.full(n, 2),
        "a_signed": np.ones(n),
        "valid": np.ones(n),
        "clear": np.zeros(n),
        "rst": np.zeros(n),
    }
    inputs["rst"][[0, 4]] = 1
    sequence = st.Sequence(kind="int4_mac", inputs=inputs, families=[("manual", 0)])
    # Steps 1..3 add 6 each; the reset at step 4 also drops step 3's product (in flight).
    observed = simulate_sequence(Int4MAC(pipeline=1), sequence)
    assert observed.tolist() == [0, 6, 12, 0, 0, 6, 12, 18]


def test_fp16_parameter_errors():
    with pytest.raises(TypeError, match="pipeline must be an integer"):
        FP16MAC(pipeline=True)
    with pytest.raises(ValueError, match="pipeline must be >= 0"):
        FP16MAC(pipeline=-2)


def test_unknown_parameter_and_kind_without_top():
    with pytest.raises(TypeError, match="unknown parameter"):
        FP16MAC(acc_width=32)
    with pytest.raises(ValueError, match="unknown PE kind"):
        ProcessingElement(kind="int8")
