"""Exact GEMM references against brute-force Python on small random cases."""

import struct

import numpy as np
import pytest
import torch

from golden.formats.fp16 import (
    CANONICAL_NAN32,
    float_to_fp32_bits,
    fp16_bits_to_float,
    fp16_product_bits,
    fp32_add_bits,
)
from golden.reference import fp16_gemm, int_gemm, log_gemm


def brute_matmul(a, b, product):
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    a, b = a.tolist(), b.tolist()
    return [[sum(product(a[i][t], b[t][j]) for t in range(k)) for j in range(n)] for i in range(m)]


@pytest.mark.parametrize("a_signed", [True, False])
@pytest.mark.parametrize("b_signed", [True, False])
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 7, 2), (5, 33, 4), (2, 0, 3)])
def test_int_gemm(a_signed, b_signed, shape):
    m, k, n = shape
    g = torch.Generator().manual_seed(m * 100 + k)
    lo_a, hi_a = (-8, 8) if a_signed else (0, 16)
    lo_b, hi_b = (-8, 8) if b_signed else (0, 16)
    a = torch.randint(lo_a, hi_a, (m, k), generator=g, dtype=torch.int8)
    b = torch.randint(lo_b, hi_b, (k, n), generator=g, dtype=torch.int16)
    got = int_gemm(a, b, a_signed=a_signed, b_signed=b_signed)
    assert got.dtype == torch.int64
    assert got.tolist() == brute_matmul(a, b, lambda x, y: x * y)


def test_int_gemm_extremes():
    a = torch.full((2, 512), -8)
    b = torch.full((512, 2), -8)
    assert int_gemm(a, b).tolist() == [[512 * 64] * 2] * 2
    u = torch.full((2, 512), 15)
    assert int_gemm(u, b, a_signed=False).tolist() == [[-512 * 120] * 2] * 2


def fp4_times(g, x):
    e, s = g & 7, g >> 3
    return 0 if e == 0 else (-1) ** s * x * 4 ** (e - 1)


@pytest.mark.parametrize("x_signed", [True, False])
@pytest.mark.parametrize("shape", [(1, 1, 1), (4, 9, 3), (6, 40, 5)])
def test_log_gemm(x_signed, shape):
    m, k, n = shape
    gen = torch.Generator().manual_seed(k)
    g = torch.randint(0, 16, (m, k), generator=gen, dtype=torch.uint8)
    x = torch.randint(-8 if x_signed else 0, 8 if x_signed else 16, (k, n), generator=gen)
    got = log_gemm(g, x, x_signed=x_signed)
    assert got.tolist() == brute_matmul(g, x, fp4_times)


def test_log_gemm_all_top_exponent():
    g = torch.full((3, 100), 0x7, dtype=torch.uint8)
    x = torch.full((100, 2), 15)
    assert log_gemm(g, x, x_signed=False).tolist() == [[100 * 15 * 4096] * 2] * 3


def test_gemm_input_errors():
    with pytest.raises(ValueError, match="outside int4 range"):
        int_gemm(torch.tensor([[8]]), torch.tensor([[1]]))
    with pytest.raises(ValueError, match="outside uint4 range"):
        int_gemm(torch.tensor([[-1]]), torch.tensor([[1]]), a_signed=False)
    with pytest.raises(ValueError, match="inner dimensions"):
        int_gemm(torch.zeros(2, 3, dtype=torch.int8), torch.zeros(2, 3, dtype=torch.int8))
    with pytest.raises(ValueError, match="2-D"):
        log_gemm(torch.zeros(3, dtype=torch.uint8), torch.zeros(3, 1, dtype=torch.int8))
    with pytest.raises(TypeError, match="float16"):
        fp16_gemm(torch.zeros(2, 2), torch.zeros(2, 2))


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f32_bits(x: float) -> int:
    if x != x:
        return CANONICAL_NAN32
    return struct.unpack("<I", struct.pack("<f", x))[0]


def brute_fp16_gemm(a, b):
    """Pure Python: exact products (doubles hold them), one float32 rounding per add, ascending k."""
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    out = np.zeros((m, n), dtype=np.uint32)
    for i in range(m):
        for j in range(n):
            acc = None
            for t in range(k):
                p = float(a[i, t]) * float(b[t, j])  # exact in double and in float32
                acc = f32(p) if acc is None else f32(acc + p)
            out[i, j] = f32_bits(acc if acc is not None else 0.0)
    return out


SPECIALS16 = np.array(
    [
        0x0000,
        0x8000,
        0x0001,
        0x8001,
        0x03FF,
        0x0400,
        0x7BFF,
        0xFBFF,
        0x7C00,
        0xFC00,
        0x7E00,
        0x7D00,
        0x3C00,
        0xBC00,
        0x3555,
        0x0200,
    ],
    dtype=np.uint16,
)


@pytest.mark.parametrize("seed", range(4))
def test_fp16_gemm_random_and_special(seed):
    rng = np.random.default_rng(seed)
    m, k, n = 3, 17, 4
    bits_a = rng.integers(0, 1 << 16, (m, k), dtype=np.uint16)
    bits_b = rng.integers(0, 1 << 16, (k, n), dtype=np.uint16)
    bits_a[0, : len(SPECIALS16[:k])] = SPECIALS16[:k]
    a, b = bits_a.view(np.float16), bits_b.view(np.float16)
    got = fp16_gemm(torch.from_numpy(a.copy()), torch.from_numpy(b.copy()))
    got_bits = float_to_fp32_bits(got).numpy().astype(np.uint32)
    with np.errstate(all="ignore"):
        expected = brute_fp16_gemm(a, b)
    assert (got_bits == expected).all()


def test_fp16_signed_zero_and_nan_rules():
    z, nz, inf, one = 0x0000, 0x8000, 0x7C00, 0x3C00

    def gemm(row, col):
        a = fp16_bits_to_float(torch.tensor([row]))
        b = fp16_bits_to_float(torch.tensor([col])).T.contiguous()
        return float_to_fp32_bits(fp16_gemm(a, b)).item()

    assert gemm([nz], [one]) == 0x80000000  # first product passes through: -0 survives
    assert gemm([nz, z], [one, one]) == 0x00000000  # -0 + +0 = +0
    assert gemm([inf], [z]) == CANONICAL_NAN32  # inf * 0
    assert gemm([inf, 0xFC00], [one, one]) == CANONICAL_NAN32  # inf + -inf
    empty = fp16_gemm(torch.zeros(2, 0, dtype=torch.float16), torch.zeros(0, 3, dtype=torch.float16))
    assert float_to_fp32_bits(empty).eq(0).all()


def test_fp16_bit_helpers():
    a = torch.tensor([0x3C00, 0x7C00, 0x0001])
    b = torch.tensor([0xC000, 0x0000, 0x0001])
    assert fp16_product_bits(a, b).tolist() == [0xC0000000, CANONICAL_NAN32, 0x27800000]  # 2^-48
    x = torch.tensor([0x7F7FFFFF, 0x00000001, 0x80000000])
    y = torch.tensor([0x7F7FFFFF, 0x80000001, 0x00000000])
    assert fp32_add_bits(x, y).tolist() == [0x7F800000, 0x00000000, 0x00000000]


def fp4r2_times(g, x):
    e, s = g & 7, g >> 3
    return 0 if e == 0 else (-1) ** s * x * 2 ** (e - 1)


def test_log_gemm_radix2_format():
    from golden.formats import FP4_RADIX2

    gen = torch.Generator().manual_seed(5)
    g = torch.randint(0, 16, (4, 21), generator=gen, dtype=torch.uint8)
    x = torch.randint(0, 16, (21, 3), generator=gen)
    got = log_gemm(g, x, x_signed=False, fmt=FP4_RADIX2)
    assert got.tolist() == brute_matmul(g, x, fp4r2_times)
    with pytest.raises(TypeError, match="LogFormat"):
        log_gemm(g, x, fmt="fp4r2")
