"""Zero-operand holding in the output-stationary arrays (``zero_hold``): bit-exact, and the registers hold.

A zero operand is not loaded into the operand register between PEs (it keeps
its stale bits) and a flag travels with it instead; every PE downstream must
then give the exact SPEC section 3 result from the flags. These arrays are
tiny (Amaranth simulator, a few seconds in all).
"""

import itertools

import numpy as np
import pytest
import torch
from amaranth.hdl import Signal

from golden.formats.fp16 import float_to_fp32_bits
from golden.reference import fp16_gemm, int_gemm, log_gemm
from hw.array import SystolicArray
from hw.kinds import KINDS
from hw.kinds.train import MODE_INT, MODE_LOG
from tests.hw.test_array import int_result, simulate


def _zero_heavy(rng, shape, lo, hi):
    """Codes with runs of zeros, alternating zero / nonzero stretches, and a zero first (right after reset)."""
    x = rng.integers(lo, hi, shape)
    x[rng.random(shape) < 0.45] = 0
    x[0, ::2] = 0  # alternating zero / nonzero along the first row
    x[1 % shape[0], :] = np.where(np.arange(shape[1]) % 2, x[1 % shape[0], :] | 1, 0)
    x.flat[0] = 0  # the very first operand after reset is a zero
    return x


def _held_with_stale_bits(watch):
    """Check every flagged register kept its bits; return how often it held nonzero (stale) bits."""
    stale = 0
    for before, after in itertools.pairwise(watch):
        for (data_before, _), (data_after, flag_after) in zip(before, after):
            if flag_after:
                assert data_after == data_before, "a zero operand was loaded into a holding register"
                stale += data_after != 0
    return stale


CASES = {
    "int4": ({"a_signed": 1, "b_signed": 1}, (-8, 8), (-8, 8)),
    "log": ({"b_signed": 1}, (0, 16), (-8, 8)),
    "train-forward": ({"mode": MODE_INT, "a_signed": 0, "b_signed": 1}, (0, 16), (-8, 8)),
    "train-backward": ({"mode": MODE_LOG, "a_signed": 1, "b_signed": 0}, (0, 16), (0, 16)),
}


def _golden(kind, a, b, modes):
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    if kind == "log" or modes.get("mode") == MODE_LOG:
        return log_gemm(ta, tb, x_signed=bool(modes["b_signed"])).numpy()
    return int_gemm(ta, tb, a_signed=bool(modes["a_signed"]), b_signed=bool(modes["b_signed"])).numpy()


@pytest.mark.parametrize("case", CASES)
def test_integer_kinds_exact_with_zero_hold(case):
    """Zero-heavy integer GEMMs: zero_hold, no hold and golden agree; registers hold stale nonzero codes."""
    modes, a_range, b_range = CASES[case]
    kind = case.split("-")[0]
    rng = np.random.default_rng(sum(map(ord, case)))
    a = _zero_heavy(rng, (4, 11), *a_range)
    b = _zero_heavy(rng, (11, 5), *b_range).T.copy().T  # zeros in B's rows as well as columns
    if kind == "log" or modes.get("mode") == MODE_LOG:
        a[a == 8] = 0x8  # FP4 -0 (exponent field 0) is a zero operand too
    watch = []
    held, width = simulate(kind, a & 15, b & 15, rows=3, cols=3, modes=modes, watch=watch)
    plain, plain_width = simulate(kind, a & 15, b & 15, rows=3, cols=3, modes=modes, zero_hold=False)
    assert width == plain_width and np.array_equal(held, plain)
    assert np.array_equal(int_result(held, width), _golden(kind, a, b, modes))
    assert _held_with_stale_bits(watch) > 0, "no register held stale nonzero bits: the test misses its case"


def _fp16(values):
    return np.array(values, dtype=np.float16)


def test_fp16_zero_hold_specials():
    """+-0 operands held with stale bits: 0 x inf and 0 x NaN are NaN, -0 accumulators, signed zero products."""
    inf, nan = np.inf, np.nan
    a = _fp16(
        [
            [1.5, -0.0, -0.0, 0.0, 2.0, -0.0, 0.0],  # stale 1.5 held for the zeros after it
            [-0.0, -0.0, 0.0, -0.0, -0.0, -0.0, 3.0],  # zeros right after reset, -0 accumulators
            [0.0, 5.0, -0.0, 7.0, 0.0, -1.0, -0.0],  # alternating zero / nonzero
            [inf, 0.0, nan, -0.0, 65504.0, 0.0, -2.0],
            [0.0, 0.0, -0.0, 0.0, -0.0, 0.0, -0.0],  # x column 2: -0 products only, the result is -0
            [0.0, 0.0, -0.0, -0.0, -0.0, 0.0, -0.0],  # x column 2: a +0 product turns the -0 to +0
        ]
    )
    b = _fp16(
        [
            [2.0, -1.0, -0.0, 1.0, 0.0],
            [inf, 3.0, -0.0, 2.0, -inf],  # -0 x inf in row 0, behind a held 1.5: NaN
            [4.0, nan, 1.0, -0.0, 0.0],  # 0 x NaN
            [-1.0, 2.0, -0.0, -3.0, 5.0],
            [0.0, -0.0, 6.0, 0.0, 1.0],
            [-5.0, 1.0, -0.0, inf, -0.0],
            [0.0, -0.0, 2.0, 1.0, -0.0],
        ]
    )
    watch = []
    held, _ = simulate("fp16", a.view(np.uint16), b.view(np.uint16), rows=3, cols=3, modes={}, watch=watch)
    plain, _ = simulate("fp16", a.view(np.uint16), b.view(np.uint16), rows=3, cols=3, modes={}, zero_hold=False)
    expected = float_to_fp32_bits(fp16_gemm(torch.from_numpy(a), torch.from_numpy(b))).numpy()
    assert np.array_equal(held.astype(np.int64), expected)
    assert np.array_equal(plain.astype(np.int64), expected)
    # The case list above must really produce what it claims.
    result = held.astype(np.uint32)
    assert (result == 0x7FC0_0000).sum() >= 3  # NaNs from 0 x inf / 0 x NaN
    assert result[4, 2] == 0x8000_0000 and result[5, 2] == 0  # -0 accumulators, kept or turned +0
    # A held binary16 zero keeps exponent and mantissa but loads its sign.
    for before, after in itertools.pairwise(watch):
        for (data_before, _), (data_after, flag_after) in zip(before, after):
            if flag_after:
                assert data_after & 0x7FFF == data_before & 0x7FFF
    assert any(flag and data & 0x7FFF for sample in watch for data, flag in sample)


def test_fp16_random_zero_heavy():
    """Random binary16 GEMM with half its operands +-0 and a few inf/NaN: zero_hold is bit-exact."""
    rng = np.random.default_rng(21)
    a = (rng.standard_normal((5, 13)) * 4).astype(np.float16)
    b = (rng.standard_normal((13, 4)) * 4).astype(np.float16)
    for x in (a, b):
        x[rng.random(x.shape) < 0.5] = 0.0
        x[rng.random(x.shape) < 0.2] *= -1  # -0 too
    a[3, 4], b[7, 1], b[2, 3] = np.inf, -np.inf, np.nan
    held, _ = simulate("fp16", a.view(np.uint16), b.view(np.uint16), rows=2, cols=3, modes={})
    expected = float_to_fp32_bits(fp16_gemm(torch.from_numpy(a), torch.from_numpy(b))).numpy()
    assert np.array_equal(held.astype(np.int64), expected)


def _array(**params):
    array = SystolicArray(rows=2, cols=2, **params)
    array._MustUse__silence = True  # built for its parameters only, never elaborated
    return array


def test_zero_hold_parameter():
    assert not _array(kind="int4").zero_hold  # off by default: the datapath and engines load zeros
    arr = _array(kind="int4", zero_hold=True)
    assert arr.zero_hold and arr.manifest()["zero_hold"] is True
    assert not _array(kind="int4", gated=False, zero_hold=True).zero_hold  # holding needs gating
    assert not _array(kind="fp16", zero_hold=False).zero_hold
    with pytest.raises(TypeError, match="zero_hold must be a bool"):
        SystolicArray(kind="int4", rows=2, cols=2, zero_hold=1)
    # Kinds without zero-operand rules (block-scaled) load every operand as before.
    holds = {}
    for kind in KINDS.values():
        rule = kind.operand_zero("a", Signal(kind.a_width), {name: Signal() for name in kind.a_modes})
        holds[kind.name] = _array(kind=kind, zero_hold=True).zero_hold
        assert holds[kind.name] == (rule is not None)
    assert any(holds.values()) and not all(holds.values())


# -- weight-stationary arrays: the A registers between PEs hold zero activations ------


WS_CASES = {
    "int4": ("int4", "int4", (-8, 8), (-8, 8), True),
    "log": ("log", "log", (0, 16), (-8, 8), True),
    "train-forward": ("train", "int4", (0, 16), (-8, 8), False),
    "train-backward": ("train", "log", (0, 16), (0, 16), False),
}


@pytest.mark.parametrize("case", WS_CASES)
def test_ws_integer_kinds_exact_with_zero_hold(case):
    """Zero-heavy GEMMs on weight-stationary arrays: zero_hold, no hold and golden agree bit for bit."""
    from tests.hw.test_ws_array import run

    kind_name, gemm_name, a_range, b_range, a_signed = WS_CASES[case]
    kind = KINDS[kind_name]
    gemm = next(g for g, _ in kind.gemms if g.name == gemm_name)
    rng = np.random.default_rng(sum(map(ord, case)) + 1)
    a = _zero_heavy(rng, (5, 7), *a_range)
    b = _zero_heavy(rng, (7, 4), *b_range)
    if gemm_name == "log":
        a = a.astype(np.uint8)
    b_signed = b_range[0] < 0
    watch = []
    held = run(kind, gemm, a, b, a_signed=a_signed, b_signed=b_signed, rows=3, cols=3, watch=watch)
    plain = run(kind, gemm, a, b, a_signed=a_signed, b_signed=b_signed, rows=3, cols=3, zero_hold=False)
    want = gemm.reference(a, b, a_signed=a_signed, b_signed=b_signed)
    assert np.array_equal(held, want) and np.array_equal(plain, want)
    assert _held_with_stale_bits(watch) > 0, "no register held stale nonzero bits: the test misses its case"


def test_ws_fp16_zero_hold_specials():
    """Weight-stationary FP16 with held +-0 activations: 0 x inf = NaN, signed zeros, -0 partial sums."""
    from tests.hw.test_ws_array import run

    kind = KINDS["fp16"]
    inf, nan = np.inf, np.nan
    a = _fp16(
        [
            [1.5, -0.0, -0.0, 0.0, 2.0],
            [-0.0, -0.0, 0.0, -0.0, -0.0],
            [0.0, 5.0, -0.0, 7.0, 0.0],
            [inf, 0.0, nan, -0.0, 0.0],
            [0.0, 0.0, -0.0, 0.0, -0.0],  # x column 2: -0 products only, a -0 partial sum throughout
        ]
    )
    b = _fp16(
        [
            [2.0, -1.0, -0.0, 1.0],
            [inf, 3.0, -0.0, -inf],  # behind a held 1.5 in row 0: -0 x inf
            [4.0, nan, 1.0, 0.0],
            [-1.0, 2.0, -0.0, 5.0],
            [0.0, -0.0, 6.0, 1.0],
        ]
    )
    watch = []
    got = run(kind, kind.gemm, a, b, rows=3, cols=2, watch=watch)
    want = kind.gemm.reference(a, b)
    assert np.array_equal(kind.gemm.result_bits(got), kind.gemm.result_bits(want))
    bits = kind.gemm.result_bits(want)
    assert (bits == 0x7FC0_0000).sum() >= 3 and bits[4, 2] == 0x8000_0000
    assert any(flag and data & 0x7FFF for sample in watch for data, flag in sample)
