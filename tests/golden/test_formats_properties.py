"""Property tests (hypothesis): monotone quantizers, nearest-level rounding, GradScale placement."""

from fractions import Fraction

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from golden.formats import fp4_decode, fp4_quantize, quantize_input, quantize_pact, quantize_weight, sawb_step
from tests.golden.spec_model import fp4_quantize_scalar

finite = st.floats(
    min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=64
)
vectors = arrays(np.float64, st.integers(1, 64), elements=finite)
positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)


def is_monotone(x: torch.Tensor, y: torch.Tensor) -> bool:
    order = torch.argsort(x, stable=True)
    ys = y[order].to(torch.float64)
    return bool((ys[1:] >= ys[:-1]).all())


@given(vectors)
def test_input_quantizer_monotone(v):
    p = torch.from_numpy(v) / 1e6
    assert is_monotone(p, quantize_input(p))


@given(vectors, positive)
def test_weight_quantizer_monotone(v, step):
    w = torch.from_numpy(v)
    assert is_monotone(w, quantize_weight(w, step))


@given(vectors, positive)
def test_pact_monotone(v, alpha):
    x = torch.from_numpy(v)
    assert is_monotone(x, quantize_pact(x, alpha))


@given(vectors, st.sampled_from([0, 1]))
def test_fp4_monotone(v, phase):
    x = torch.from_numpy(v)
    codes, scale = fp4_quantize(x, phase=phase)
    assert is_monotone(x, fp4_decode(codes, scale, phase=phase))


@settings(max_examples=200)
@given(vectors, st.sampled_from([0, 1]))
def test_fp4_decode_encode_is_nearest_level(v, phase):
    x = torch.from_numpy(v)
    codes, scale = fp4_quantize(x, phase=phase)
    decoded = fp4_decode(codes, scale, phase=phase)
    levels = fp4_decode(torch.arange(16, dtype=torch.uint8), scale, phase=phase)
    distance = (x[:, None] - levels[None, :]).abs()
    chosen = (x - decoded).abs()
    # The chosen level is a nearest one (ties may go either way only at exact midpoints).
    assert bool((chosen <= distance.min(dim=1).values).all())
    # And the codes are exactly the SPEC's (fraction arithmetic, independent implementation).
    expected, expected_scale = fp4_quantize_scalar([Fraction(float(a)) for a in x.tolist()], phase)
    assert codes.tolist() == expected and Fraction(scale) == expected_scale


@given(vectors.filter(lambda a: np.abs(a).max() > 0))
def test_gradscale_places_amax_in_top_level(v):
    x = torch.from_numpy(v)
    amax = x.abs().max().item()
    top = int(x.abs().argmax())
    c1, scale = fp4_quantize(x, phase=1)
    c0, scale0 = fp4_quantize(x, phase=0)
    assert scale == scale0
    # S is the tightest power-of-two cover of amax: S/2 < amax <= S.
    assert scale / 2 < amax <= scale
    # Phase 1 (levels halved) always puts amax in the top level e = 7; phase 0 in one of the top two.
    assert int(c1[top]) & 7 == 7
    assert int(c0[top]) & 7 in (6, 7)
    # No value decodes above S.
    assert float(fp4_decode(c0, scale).abs().max()) <= scale


@given(vectors)
def test_sawb_step_positive_and_scale_equivariant(v):
    w = torch.from_numpy(v)
    step = sawb_step(w)
    assert step > 0
    if step > 1e-6:  # clip above eps: SAWB scales with the weights (exactly, for a power of two)
        assert sawb_step(w * 4) == step * 4
