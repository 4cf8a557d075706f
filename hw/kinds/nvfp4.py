"""The ``nvfp4`` kind: NVIDIA NVFP4 GEMMs (SPEC section 7).

E2M1 codes in 16-element blocks along K, one E4M3 (OCP E4M3FN) scale per
block. Each PE sums ``N_a * N_b`` over a block exactly, and at the block's
end forms the term ``P / 4 * value(sa) * value(sb)``: the 4 x 4-bit product of
the E4M3 significands, the add of their exponents and the xor of their signs
(:meth:`golden.formats.MiniFloatFormat.significand` and ``scale_exponent``, the
rule the golden model uses), rounds it once to binary32 and adds it to the
binary32 accumulator (:mod:`hw.kinds._blockfp`). The tensor scales
``1 / (ga * gb)`` are applied outside the GEMM.
"""

import numpy as np

from golden.formats import E4M3

from ..arith import AMARANTH_OPS
from ._blockfp import BLOCK_CLOCK_DIV, BlockGemm, BlockKind
from .base import FPGAFit

__all__ = ["GEMM", "KIND"]


class NVFP4Gemm(BlockGemm):
    name = "nvfp4"
    description = (
        "A, B uint8 E2M1 codes with --a-scales/--b-scales uint8 E4M3 block scales (16-element blocks along K); "
        "C float32, one rounded term per block, added in ascending block order"
    )

    def random_scales(self, rng, shape):
        # Every non-NaN E4M3 code, negative ones and zero included.
        codes = rng.integers(0, 254, size=shape)
        return np.where(codes >= 0x7F, codes + 1, codes).astype(np.uint8)


GEMM = NVFP4Gemm()


class NVFP4Kind(BlockKind):
    name = "nvfp4"
    order = 5
    description = "NVFP4: E2M1 x E2M1 block sums (16), E4M3 4x4-bit significand product, one binary32 term per block"
    array_description = (
        "output-stationary R x C array of NVFP4 PEs (12-bit operands: E4M3 scale above the E2M1 code; binary32 results)"
    )
    gemms = ((GEMM, {}),)
    recipes = ("nvfp4",)
    info_code = 5
    # The largest arrays the sweep placed and routed (docs/boards.md): the iCE40UP5K holds one PE
    # (2x2: 145 % of its logic cells); on the ULX3S the sweep has not reached the largest yet.
    fpga = FPGAFit(largest={"icebreaker": (1, 1)}, clock_div=BLOCK_CLOCK_DIV)
    # value(s) = significand * 2^(scale_exponent - 10); T = P/4 * value(sa) * value(sb).
    scale_offset = 2 + 2 * (E4M3.bias + E4M3.mantissa_bits)
    scale_significand_bits = 2 * (E4M3.mantissa_bits + 1)
    scale_exponent_bits = E4M3.exponent_bits + 1

    def scale_product(self, m, a_scale, b_scale, *, prefix):
        ops = AMARANTH_OPS
        significand = E4M3.significand(a_scale, ops) * E4M3.significand(b_scale, ops)
        exponent = E4M3.scale_exponent(a_scale, ops) + E4M3.scale_exponent(b_scale, ops)
        negate = a_scale[E4M3.sign_bit] ^ b_scale[E4M3.sign_bit]
        return significand, exponent, negate


KIND = NVFP4Kind()
