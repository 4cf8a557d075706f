"""The ``mxfp4`` kind: OCP Microscaling MXFP4 GEMMs (SPEC section 7).

E2M1 codes in 32-element blocks along K, one E8M0 scale ``X`` per block
(value ``2^(X - 127)``). Each PE sums ``N_a * N_b`` over a block exactly, and
at the block's end forms the term ``P / 4 * 2^(Xa + Xb - 254)`` with one
exponent add (``Xa + Xb``, 9 bits), rounds it once to binary32 and adds it to
its binary32 accumulator (:mod:`hw.kinds._blockfp`, which also gives the
operand word and the block counting).
"""

import numpy as np
from amaranth.hdl import Const

from ._blockfp import BLOCK_CLOCK_DIV, BlockGemm, BlockKind
from .base import FPGAFit

__all__ = ["GEMM", "KIND"]


class MXFP4Gemm(BlockGemm):
    name = "mxfp4"
    description = (
        "A, B uint8 E2M1 codes with --a-scales/--b-scales uint8 E8M0 block scales (32-element blocks along K); "
        "C float32, one rounded term per block, added in ascending block order"
    )

    def random_scales(self, rng, shape):
        # Mostly near 2^0, with the extremes: products that overflow binary32 or underflow to subnormals and zero.
        common = rng.integers(107, 148, size=shape)
        extreme = rng.choice(np.array([0, 1, 20, 60, 190, 230, 253, 254]), size=shape)
        return np.where(rng.random(shape) < 0.3, extreme, common).astype(np.uint8)


GEMM = MXFP4Gemm()


class MXFP4Kind(BlockKind):
    name = "mxfp4"
    order = 4
    description = "MXFP4: E2M1 x E2M1 block sums (32), E8M0 exponent add, one binary32 term per block"
    array_description = (
        "output-stationary R x C array of MXFP4 PEs (12-bit operands: E8M0 scale above the E2M1 code; binary32 results)"
    )
    gemms = ((GEMM, {}),)
    recipes = ("mxfp4",)
    info_code = 4
    # The largest arrays the sweep placed and routed (docs/boards.md): the iCE40UP5K holds one PE
    # (2x2: 111 % of its logic cells); the LFE5U-85F 6x6 (79 % of its LUT4s; 7x7 not built).
    fpga = FPGAFit(largest={"icebreaker": (1, 1), "ulx3s": (6, 6)}, clock_div=BLOCK_CLOCK_DIV)
    # T = P * 2^(Xa + Xb - 256): the /4 of the integer views is in the offset.
    scale_offset = 256
    scale_significand_bits = 1
    scale_exponent_bits = 9

    def scale_product(self, m, a_scale, b_scale, *, prefix):
        return Const(1, 1), a_scale + b_scale, Const(0, 1)


KIND = MXFP4Kind()
