"""Bad input: non-finite values, wrong types and shapes, empty tensors."""

import numpy as np
import pytest
import torch

from golden.formats import (
    FP4_RADIX4,
    PactQuantize,
    fp4_decode,
    fp4_quantize,
    quantize_input,
    quantize_pact,
    quantize_weight,
    sawb_step,
)
from golden.formats.fp4 import lfsr16_states


@pytest.mark.parametrize(
    "call, arg",
    [
        (lambda t: quantize_input(t), "p"),
        (lambda t: sawb_step(t), "w"),
        (lambda t: quantize_weight(t, 0.1), "w"),
        (lambda t: quantize_pact(t, 1.0), "x"),
        (lambda t: fp4_quantize(t), "v"),
    ],
)
def test_non_finite_names_argument_and_count(call, arg):
    t = torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), 0.5])
    with pytest.raises(ValueError, match=rf"argument '{arg}' has 3 non-finite value"):
        call(t)


@pytest.mark.parametrize("call", [quantize_input, sawb_step, lambda t: fp4_quantize(t)])
def test_wrong_type(call):
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        call(np.zeros(3))
    with pytest.raises(TypeError, match="dtype"):
        call(torch.zeros(3, dtype=torch.complex64))


def test_integer_pixels_rejected():
    with pytest.raises(TypeError, match="floating-point"):
        quantize_input(torch.zeros(3, dtype=torch.int64))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_scalars(bad):
    with pytest.raises(ValueError, match="finite and > 0"):
        quantize_pact(torch.zeros(3), bad)
    with pytest.raises(ValueError, match="finite and > 0"):
        quantize_weight(torch.zeros(3), bad)
    with pytest.raises(ValueError, match="finite and > 0"):
        fp4_quantize(torch.zeros(3), unit=bad)


def test_bad_options():
    with pytest.raises(ValueError, match="'phase'"):
        fp4_quantize(torch.ones(3), phase=2)
    with pytest.raises(ValueError, match="'rounding'"):
        fp4_quantize(torch.ones(3), rounding="up")
    with pytest.raises(ValueError, match=r"codes must be in 0\.\.15"):
        fp4_decode(torch.tensor([16]), 1.0)
    with pytest.raises(TypeError, match="pair"):
        sawb_step(torch.ones(3), c=3)
    with pytest.raises(ValueError, match="scalar"):
        quantize_pact(torch.ones(3), torch.ones(2))


def test_empty_tensors():
    empty = torch.zeros(0, 5)
    assert quantize_input(empty).shape == (0, 5)
    assert quantize_weight(empty, 0.1).shape == (0, 5)
    assert quantize_pact(empty, 1.0).shape == (0, 5)
    codes, scale = fp4_quantize(empty)
    assert codes.shape == (0, 5) and codes.dtype == torch.uint8 and scale == 1.0
    assert fp4_decode(codes, scale).shape == (0, 5)
    assert sawb_step(empty) > 0


def test_all_zero_gradient():
    codes, scale = fp4_quantize(torch.zeros(4, 4), phase=1, unit=0.5)
    assert codes.eq(0).all() and scale == 0.5


def test_pact_autograd_gradients():
    x = torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0], requires_grad=True)
    alpha = torch.tensor(2.0, requires_grad=True)
    y = PactQuantize.apply(x, alpha)
    assert y.tolist() == [0.0, 0.0, float(np.float32(4 * 2 / 15)), float(np.float32(8 * 2 / 15)), 2.0, 2.0]
    grad = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    y.backward(grad)
    assert x.grad.tolist() == [0.0, 0.0, 3.0, 4.0, 0.0, 0.0]  # straight through inside (0, alpha)
    assert alpha.grad.item() == 11.0  # x >= alpha: 5 + 6


def test_rounding_options():
    v = torch.tensor([1.0, 2.0 * 4.0**-3, 2.5 * 4.0**-3], dtype=torch.float64)
    # nearest: 2 * 4^-3 < 2.5 * 4^-3 stays at e=4; log-midpoint (2 * 4^-3) goes up.
    assert fp4_quantize(v)[0].tolist() == [7, 4, 5]
    assert fp4_quantize(v, rounding="log")[0].tolist() == [7, 5, 5]
    # ties toward zero: exactly on the boundary stays down.
    assert fp4_quantize(v, ties="zero")[0].tolist() == [7, 4, 4]


def test_stochastic_rounding_is_deterministic_and_unbiased():
    v = torch.full((20000,), 0.1, dtype=torch.float64)
    v[0] = 1.0
    c1, s1 = fp4_quantize(v, rounding="stochastic", seed=0xACE1)
    c2, _ = fp4_quantize(v, rounding="stochastic", seed=0xACE1)
    assert torch.equal(c1, c2)
    mean = FP4_RADIX4.decode(c1, s1)[1:].mean().item()
    assert abs(mean - 0.1) < 0.002  # E[round(m)] = m
    assert set(c1[1:].tolist()) == {5, 6}
    assert len(set(lfsr16_states(65535).tolist())) == 65535  # maximal length
