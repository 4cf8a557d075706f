"""The IEEE datapaths of hw/fp.py in Amaranth's simulator, bit for bit against golden."""

import numpy as np
import pytest
import torch
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from golden.formats.fp16 import float_to_fp16_bits, fp16_product_bits, fp32_add_bits
from hw.fp import fp16_product, fp32_add, fp32_to_fp16, leading_zeros
from verify.stimulus import FP16_CLASS_VALUES


def _evaluate(build, columns):
    """Evaluate combinational logic ``build(m, *inputs)`` on columns of input values."""
    m = Module()
    inputs = [Signal(width) for width, _ in columns]
    output = build(m, *inputs)
    results = []

    async def testbench(ctx):
        for row in zip(*(values.tolist() for _, values in columns)):
            for signal, value in zip(inputs, row):
                ctx.set(signal, value)
            results.append(ctx.get(output))

    simulator = Simulator(m)
    simulator.add_testbench(testbench)
    simulator.run()
    return np.array(results, dtype=np.int64)


def _assert_bits_equal(got, want, *operands):
    bad = np.flatnonzero(got != want)
    detail = [
        " ".join(f"{int(o[i]):#x}" for o in operands) + f" -> {int(got[i]):#010x}, golden {int(want[i]):#010x}"
        for i in bad[:5]
    ]
    assert not len(bad), f"{len(bad)} mismatches:\n" + "\n".join(detail)


@pytest.mark.parametrize("width", [1, 2, 3, 8, 10, 22, 28])
def test_leading_zeros(width):
    rng = np.random.default_rng(width)
    values = (
        np.arange(1 << width)
        if width <= 10
        else np.concatenate(
            [[0], 1 << np.arange(width), rng.integers(0, 1 << width, 300) >> rng.integers(0, width, 300)]
        )
    )
    got = _evaluate(lambda m, v: leading_zeros(v), [(width, values)])
    want = np.array([width - int(v).bit_length() for v in values])
    np.testing.assert_array_equal(got, want)


def _class_operands():
    values = [v for group in FP16_CLASS_VALUES.values() for v in group]
    return np.array(values + [v | 0x8000 for v in values], dtype=np.int64)


def test_fp16_product_every_class_pair_and_random():
    classes = _class_operands()
    a, b = (x.ravel() for x in np.meshgrid(classes, classes, indexing="ij"))
    rng = np.random.default_rng(5)
    a = np.concatenate([a, rng.integers(0, 1 << 16, 4000)])
    b = np.concatenate([b, rng.integers(0, 1 << 16, 4000)])
    got = _evaluate(fp16_product, [(16, a), (16, b)])
    want = fp16_product_bits(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    _assert_bits_equal(got, want, a, b)


def test_fp16_product_all_subnormal_significands():
    # Every subnormal times the smallest subnormal and times 1.0: each leading-zero count.
    sub = np.arange(1, 1024)
    a = np.concatenate([sub, sub, sub | 0x8000])
    b = np.concatenate([np.full(1023, 0x0001), np.full(1023, 0x3C00), np.full(1023, 0x83FF)])
    got = _evaluate(fp16_product, [(16, a), (16, b)])
    want = fp16_product_bits(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    _assert_bits_equal(got, want, a, b)


def _fp32(sign, exp, frac):
    return (
        (np.asarray(sign, dtype=np.int64) << 31)
        | (np.asarray(exp, dtype=np.int64) << 23)
        | np.asarray(frac, dtype=np.int64)
    )


def _adder_corner_operands(rng):
    """Operand pairs aimed at every rounding and special-value path of a binary32 adder."""
    n = 600
    pairs = []
    # Subnormal + subnormal (exact, or carrying into the smallest normal), both signs.
    pairs.append(
        (
            _fp32(rng.integers(0, 2, n), 0, rng.integers(0, 1 << 23, n)),
            _fp32(rng.integers(0, 2, n), 0, rng.integers(0, 1 << 23, n)),
        )
    )
    # Smallest normals minus nearby values: results that become subnormal.
    pairs.append(
        (
            _fp32(0, rng.integers(1, 3, n), rng.integers(0, 1 << 23, n)),
            _fp32(1, rng.integers(0, 3, n), rng.integers(0, 1 << 23, n)),
        )
    )
    # Near the top: overflow to infinity (incl. a tie at the max finite value).
    pairs.append(
        (
            _fp32(rng.integers(0, 2, n) * 0, rng.integers(252, 255, n), rng.integers(0, 1 << 23, n)),
            _fp32(0, rng.integers(200, 255, n), rng.integers(0, 1 << 23, n)),
        )
    )
    pairs.append(
        (
            np.array([0x7F7FFFFF, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F7FFFFF]),
            np.array([0x73000000, 0x72FFFFFF, 0xF3000000, 0x7F7FFFFF]),
        )
    )
    # Cancellation: x + (-x nudged by a few ulps), all exponents.
    x = _fp32(rng.integers(0, 2, n), rng.integers(0, 255, n), rng.integers(0, 1 << 23, n))
    pairs.append((x, (x ^ (1 << 31)) + rng.integers(-4, 5, n).clip(-(x & 0x7FFFFFFF), None)))
    # Exponent distances 0..30 with random significands: guard/round/sticky cases and ties.
    e = rng.integers(30, 220, n)
    d = rng.integers(0, 31, n)
    pairs.append(
        (
            _fp32(rng.integers(0, 2, n), e, rng.integers(0, 1 << 23, n)),
            _fp32(rng.integers(0, 2, n), e - d, rng.integers(0, 1 << 23, n) & ~((1 << rng.integers(0, 23, n)) - 1)),
        )
    )
    # Signed zeros, infinities, NaNs against everything.
    specials = np.array(
        [0, 1 << 31, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x7F800001, 0x00000001, 0x3F800000]
    )
    sa, sb = (v.ravel() for v in np.meshgrid(specials, specials, indexing="ij"))
    pairs.append((sa, sb))
    # Fully random patterns.
    pairs.append((rng.integers(0, 1 << 32, n), rng.integers(0, 1 << 32, n)))
    x = np.concatenate([p[0] for p in pairs]) & 0xFFFFFFFF
    y = np.concatenate([p[1] for p in pairs]) & 0xFFFFFFFF
    return np.concatenate([x, y]), np.concatenate([y, x])


def test_fp32_add_corner_cases():
    x, y = _adder_corner_operands(np.random.default_rng(11))
    got = _evaluate(fp32_add, [(32, x), (32, y)])
    want = fp32_add_bits(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    _assert_bits_equal(got, want, x, y)
    # The corner families really reach subnormal results, infinities and exact zeros.
    exponent = (want >> 23) & 0xFF
    assert ((exponent == 0) & ((want & 0x7FFFFF) != 0)).sum() > 100
    assert (want & 0x7FFFFFFF == 0x7F800000).sum() > 50
    assert (want == 0).sum() > 20 and (want == 0x80000000).sum() >= 1


@pytest.mark.parametrize("build,width", [(fp16_product, 8), (fp32_add, 16)])
def test_operand_width_is_checked(build, width):
    m = Module()
    m._MustUse__silence = True  # the module only exists to receive the rejected logic
    with pytest.raises(ValueError, match="bits wide"):
        build(m, Signal(width), Signal(width))


def _fp16_of_fp32_bits(x):
    """Golden binary16 cast of binary32 patterns (torch), NaNs as 0x7E00 with their sign."""
    f = torch.from_numpy(x.astype(np.uint32).view(np.int32)).view(torch.float32)
    want = float_to_fp16_bits(f.to(torch.float16)).numpy().astype(np.int64)
    nan = torch.isnan(f).numpy()
    return np.where(nan, 0x7E00 | ((x >> 31) << 15), want)


def test_fp32_to_fp16_every_exponent_and_rounding_case():
    rng = np.random.default_rng(7)
    exponents = np.arange(256)
    # per exponent: the fraction patterns that decide rounding (ties, just above/below, all ones)
    fracs = np.array([0, 1, 0xFFF, 0x1000, 0x1001, 0x2000, 0x3000, 0x7FFFFF, 0x7FE000, 0x7FF000, 0x7FF001, 0x400000])
    e, f = (v.ravel() for v in np.meshgrid(exponents, fracs, indexing="ij"))
    # subnormal results: ties at every shift
    sub_e = np.repeat(np.arange(98, 114), 24)
    sub_f = np.tile(1 << np.arange(24), 16) & 0x7FFFFF
    x = np.concatenate([e << 23 | f, sub_e << 23 | sub_f, sub_e << 23 | (sub_f + 1) & 0x7FFFFF])
    x = np.concatenate([x, rng.integers(0, 1 << 32, 6000, dtype=np.int64)])
    x = np.concatenate([x, x ^ (1 << 31)])
    got = _evaluate(fp32_to_fp16, [(32, x)])
    _assert_bits_equal(got, _fp16_of_fp32_bits(x), x)
