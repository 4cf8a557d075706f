"""The vectorized expectations of verify.stimulus against a step-by-step model."""

import numpy as np
import pytest
import torch

from golden.formats.fp16 import fp16_product_bits, fp32_add_bits
from verify import stimulus as st


def _sequential(products, valid, clear, rst, add):
    acc, out = 0, []
    for p, v, c, r in zip(products.tolist(), valid.tolist(), clear.tolist(), rst.tolist()):
        if r:
            acc = 0
        elif v and c:
            acc = p
        elif v:
            acc = add(acc, p)
        elif c:
            acc = 0
        out.append(acc)
    return out


def _fp32_add(x, y):
    return int(fp32_add_bits(torch.tensor([x]), torch.tensor([y]))[0])


@pytest.mark.parametrize("seed", range(3))
def test_fp32_expectation_matches_sequential(seed):
    rng = np.random.default_rng(seed)
    parts = [st.fp16_random(rng, 1500, p_clear=0.1, p_rst=0.02), st.fp16_cancellation(rng, 50)]
    if seed == 0:
        parts.append(st.fp16_classes(rng))
    sequence = st.concat(*parts)
    i = sequence.inputs
    products = fp16_product_bits(torch.from_numpy(i["a"]), torch.from_numpy(i["b"])).numpy()
    want = _sequential(products, i["valid"], i["clear"], i["rst"], _fp32_add)
    assert st.expected(sequence).tolist() == want


@pytest.mark.parametrize("kind,width", [("int4_mac", 24), ("log_mac", 32), ("int4_mac", 9), ("log_mac", 18)])
def test_integer_expectation_matches_sequential(kind, width):
    rng = np.random.default_rng(width)
    sequence = st.concat(
        st.int_exhaustive(kind), st.int_random(kind, rng, 3000, p_clear=0.02, p_rst=0.01), st.int_wrap(kind, 300)
    )
    mask = (1 << width) - 1
    # Products of the exhaustive family: the acc right after each `valid & clear` step.
    i = sequence.inputs
    got = st.expected(sequence, acc_width=width)
    alone = got[:512]
    if kind == "int4_mac":
        a = np.where(i["a_signed"][:512] & (i["a"][:512] >= 8), i["a"][:512] - 16, i["a"][:512])
        b = np.where(i["b"][:512] >= 8, i["b"][:512] - 16, i["b"][:512])
        products_alone = a * b
    else:
        x = np.where(i["x_signed"][:512] & (i["x"][:512] >= 8), i["x"][:512] - 16, i["x"][:512])
        e, s = i["g"][:512] & 7, i["g"][:512] >> 3
        products_alone = np.where(e == 0, 0, np.where(s == 1, -1, 1) * x * 4 ** np.maximum(e - 1, 0))
    assert alone.tolist() == (products_alone & mask).tolist()
    # Whole sequence: recompute products via the exhaustive table and accumulate step by step.
    lookup = {}
    for row in range(512):
        key = tuple(int(i[name][row]) for name in st.UNIT_PORTS[kind])
        lookup[key] = int(products_alone[row])
    products = np.array([lookup[tuple(int(i[name][k]) for name in st.UNIT_PORTS[kind])] for k in range(len(sequence))])
    want = [v & mask for v in _sequential(products, i["valid"], i["clear"], i["rst"], lambda a, b: a + b)]
    assert got.tolist() == want


def test_sequence_validation():
    with pytest.raises(ValueError, match="inputs must be exactly"):
        st.Sequence(kind="int4_mac", inputs={"a": [1]}, families=[])
    with pytest.raises(ValueError, match="unknown unit kind"):
        st.default_sequence("int8_mac")


def test_fp16_default_sequence_coverage():
    """The default FP16 sample really reaches ties, cancellations, specials and tiny results."""
    sequence = st.default_sequence("fp16_mac", seed=1, random_steps=3000)
    i = sequence.inputs
    acc = st.expected(sequence).astype(np.int64)
    products = fp16_product_bits(torch.from_numpy(i["a"]), torch.from_numpy(i["b"])).numpy()
    previous = np.r_[0, acc[:-1]]
    adds = (i["valid"] == 1) & (i["clear"] == 0) & (i["rst"] == 0)

    def as_float(bits):
        return bits.astype(np.uint32).view(np.float32).astype(np.float64)

    result = as_float(acc)
    with np.errstate(all="ignore"):
        exact = as_float(previous) + as_float(products)  # exact in float64 when exponents are close
        # Ties: the exact sum lies halfway between the two nearest binary32 values.
        ulp = np.abs(np.spacing(result.astype(np.float32)).astype(np.float64))
        ties = adds & np.isfinite(exact) & (exact != result) & (np.abs(exact - result) == ulp / 2)
    assert ties.sum() >= 20
    # Exact cancellation of nonzero operands gives +0.
    cancelled = adds & (acc == 0) & ((previous & 0x7FFFFFFF) != 0)
    assert cancelled.sum() >= 20

    # Massive cancellation: result exponent 10+ below the larger operand's.
    def exponent(bits):
        return (bits >> 23) & 0xFF

    drop = np.maximum(exponent(previous), exponent(products)) - exponent(acc)
    assert (adds & (acc != 0) & (drop >= 10)).sum() >= 20
    # Specials: infinities and canonical NaNs in the accumulator; products of subnormals (< 2^-24).
    assert ((acc & 0x7FFFFFFF) == 0x7F800000).sum() >= 20
    assert (acc == 0x7FC00000).sum() >= 100
    assert (((acc & 0x7FFFFFFF) != 0) & (exponent(acc) < 127 - 24)).sum() >= 20


def _block_sequential(sequence, fmt, bs):
    """Step by step: the block's codes collected, and at its last element one golden
    ``block_gemm`` of that block (with that element's scales) added to the accumulator."""
    from golden.reference import block_gemm

    i = sequence.inputs
    acc, codes, out = 0, [], []
    for a, b, v, c, r in zip(*(i[name].tolist() for name in ("a", "b", "valid", "clear", "rst"))):
        if r or (c and not v):
            acc, codes = 0, []
        elif v:
            if c:
                acc, codes = 0, []
            codes.append((a & 15, b & 15))
            if len(codes) == bs:
                a_codes = np.array([[x for x, _ in codes]], dtype=np.uint8)
                b_codes = np.array([[y] for _, y in codes], dtype=np.uint8)
                term = block_gemm(a_codes, np.array([[a >> 4]]), b_codes, np.array([[b >> 4]]), fmt)
                acc = _fp32_add(acc, int(term.view(torch.int32)[0, 0]) & 0xFFFF_FFFF)
                codes = []
        out.append(acc)
    return out


# MXFP4 terms overflow binary32 (E8M0 scales up to 2^127 each); NVFP4's cannot (at most 16 * 36 * 448^2).
@pytest.mark.parametrize("kind,overflows", [("mxfp4_mac", True), ("nvfp4_mac", False)])
def test_block_expectation_matches_sequential(kind, overflows):
    top = st.TOP_KINDS[kind]
    rng = np.random.default_rng(7)
    sequence = st.concat(
        st.block_runs(kind, rng, 6),
        st.block_random(kind, rng, 1500, p_clear=0.005, p_rst=0.003),
        st.block_exhaustive(kind, rng),
    )
    want = _block_sequential(sequence, top.format.name, top.format.block_size)
    got = st.expected(sequence).tolist()
    assert got == want
    # the families reach the interesting terms: many distinct sums, and infinities where they exist
    assert len(set(got)) > 20 and (0x7F80_0000 in {g & 0x7FFF_FFFF for g in got}) == overflows
