"""The ``fp16`` kind: the IEEE FP16 x FP16 -> FP32 baseline the 4-bit kinds are measured against.

Product: ``fp32(a) * fp32(b)``, exact (:func:`hw.fp.fp16_product`); each
accumulation is one binary32 addition with round to nearest even
(:func:`hw.accumulate.fp32_accumulate`): subnormals in and out, signed zeros,
canonical NaN ``0x7FC00000`` (SPEC section 3). No mode inputs.
"""

import numpy as np
from amaranth.hdl import Cat, Const, Mux, Signal

from ..accumulate import fp32_accumulate
from ..fp import FP32_CANONICAL_NAN, FP32_NEGATIVE_ZERO, fp16_product
from .base import FPGAFit, GemmInputError, GemmType, PEKind, StandaloneTop

__all__ = ["GEMM", "KIND"]


class FP16Gemm(GemmType):
    name = "fp16"
    description = "A, B float16; C float32, accumulated in ascending k per output with one RNE per add"
    is_float = True

    def encode(self, a, b, *, a_signed, b_signed):
        for name, matrix in (("A", a), ("B", b)):
            if matrix.dtype != np.float16:
                raise GemmInputError(f"{name} must be float16 for --pe {self.name}, not dtype {matrix.dtype}")
        return a.view(np.uint16), b.view(np.uint16)

    def reference(self, a, b, *, a_signed=True, b_signed=True):
        import torch

        from golden.reference import fp16_gemm

        ta, tb = (torch.from_numpy(np.ascontiguousarray(x)) for x in (a, b))
        return fp16_gemm(ta, tb).numpy()

    def random_operands(self, rng, m, k, n, *, a_signed=True, b_signed=True):
        return rng.standard_normal((m, k)).astype(np.float16), rng.standard_normal((k, n)).astype(np.float16)

    def decode(self, raw, acc_width):
        return np.asarray(raw, dtype=np.uint64).astype(np.uint32).view(np.float32)


GEMM = FP16Gemm()


class FP16Kind(PEKind):
    name = "fp16"
    order = 2
    description = "binary16 x binary16 -> binary32, one RNE add per product in ascending k"
    a_width = b_width = 16
    product_range = None
    default_acc_width = 32
    gemms = ((GEMM, {}),)
    standalone = StandaloneTop(
        module="fp16_mac",
        ports=(("a", "a", 16), ("b", "b", 16)),
        fixed_modes={},
        product_range=None,
        defaults={"pipeline": 0},
        description="binary16 x binary16 -> binary32 IEEE MAC (round to nearest even)",
    )
    array_description = "output-stationary R x C array of FP16 x FP16 -> FP32 MACs (ascending k)"
    workloads = ("forward", "backward")
    baseline = True
    # The accuracy it stands beside: FP32 training (the golden model has no FP16 recipe).
    recipes = ("fp32",)
    info_code = 2
    # A single-cycle binary32 accumulate: runs from the board clock divided by 2,
    # with the mantissa products in DSP blocks.
    fpga = FPGAFit(largest={"icebreaker": (2, 2), "ulx3s": (7, 7)}, clock_div=2, hard_multipliers=True)

    def golden_products(self, a, b, modes):
        from golden.formats.fp16 import fp16_product_bits

        return fp16_product_bits(a, b)

    def product(self, m, a, b, modes, *, prefix):
        return fp16_product(m, a, b, prefix=prefix)

    def operand_zero(self, role, x, modes):
        # +-0: every exponent and mantissa bit 0.
        return x[:15] == 0

    def zero_loaded_bits(self, role):
        # A held zero keeps its register's exponent and mantissa, but its sign
        # still loads: the sign of a zero product is the XOR of both signs.
        return slice(15, 16)

    def zero_product(self, m, prod, a, b, zero, modes, acc, valid, *, stale, prefix):
        # A zero operand times a finite one is +-0 (sign: XOR of the signs), and
        # x + (+-0) == x bit for bit for every binary32 x (infinities, the
        # canonical NaN, +0: +0 + -0 = +0) except x = -0, where -0 + +0 = +0:
        # the accumulator skips that product. A zero times inf/NaN is NaN: no
        # skip. The partner of a flagged operand is never stale unless it is a
        # (finite) zero too, so its exponent field tells inf/NaN.
        a_zero, b_zero = zero

        def finite(x):
            return x[10:15] != 0x1F

        not_negative_zero = acc != FP32_NEGATIVE_ZERO
        if not stale:
            # Both operands are live: a zero's partner is finite, or it is a zero too.
            return prod, valid, ((a_zero & finite(b)) | (b_zero & finite(a))) & not_negative_zero
        # The product logic saw held bits: the exact product of a flagged pair.
        nan = (a_zero & ~b_zero & ~finite(b)) | (b_zero & ~a_zero & ~finite(a))
        flagged = a_zero | b_zero
        special = Mux(nan, FP32_CANONICAL_NAN, Cat(Const(0, 31), a[15] ^ b[15]))
        exact = Signal(32, name=f"{prefix}_flagged")
        m.d.comb += exact.eq(Mux(flagged, special, prod))
        return exact, valid, flagged & ~nan & not_negative_zero

    def accumulate(self, m, acc, prod, valid, clear, *, prefix):
        return fp32_accumulate(m, acc, prod, valid, clear, prefix=prefix)


KIND = FP16Kind()
