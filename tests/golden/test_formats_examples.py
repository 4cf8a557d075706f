"""SPEC section 1's worked examples, verbatim."""

import torch

from golden.formats import fp4_quantize, quantize_input


def codes(t):
    return [int(c) for c in t.tolist()]


def test_input_quantizer_example():
    # 0.3 -> 15 * 0.3 - 8 = -3.5 -> -4 (half to even)
    assert codes(quantize_input(torch.tensor([0.3], dtype=torch.float64))) == [-4]


def test_fp4_phase0_examples():
    v = torch.tensor([1.0, 0.3, -0.3, 0.05, 0.0001, 0.6, 2.0**-13], dtype=torch.float64)
    c, scale = fp4_quantize(v, phase=0)
    assert scale == 1.0
    assert codes(c) == [0x7, 0x6, 0xE, 0x5, 0x0, 0x6, 0x1]


def test_fp4_phase1_examples():
    v = torch.tensor([1.0, 0.6, 0.0001], dtype=torch.float64)
    c, scale = fp4_quantize(v, phase=1)
    assert scale == 1.0
    assert codes(c) == [0x7, 0x7, 0x1]


def test_fp4_integer_tensor_example():
    c, scale = fp4_quantize(torch.tensor([3, -96, 7, 0, 1]), phase=0, unit=0.01)
    assert scale == 1.28
    assert codes(c) == [0x4, 0xF, 0x5, 0x0, 0x3]
    assert c.dtype == torch.uint8
