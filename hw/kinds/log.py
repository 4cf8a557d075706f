"""The ``log`` kind: radix-4 FP4 x INT4/UINT4 shift-accumulate, the backward GEMMs.

Product rule (SPEC section 2): ``(-1)^s * x * 4^(e-1)`` for an FP4 code with
sign ``s`` and exponent field ``e`` (0 when ``e = 0``): a left shift of at
most 12 bits, no multiplier. In the array the FP4 gradient codes are A and the
INT4/UINT4 operand (``b_signed``) is B; the standalone top ``log_mac`` names
them ``g`` and ``x`` (``x_signed``). Wrapping accumulators, 32 bits by default.
"""

import numpy as np
from amaranth.hdl import Cat, Const, Mux, Value, signed

from golden.formats import FP4_RADIX4, INT4, ProductRange

from ..arith import AMARANTH_OPS, INT_OPERAND_RANGE
from .base import (
    FPGAFit,
    GemmInputError,
    IntegerGemm,
    IntegerKind,
    StandaloneTop,
    int64_tensors,
    integer_codes,
    random_codes,
)

__all__ = ["GEMM", "KIND", "PRODUCT_RANGE"]

#: Products of FP4 codes with INT4/UINT4 operands (-61440..61440).
PRODUCT_RANGE = FP4_RADIX4.scale_range(INT_OPERAND_RANGE)


class LogGemm(IntegerGemm):
    name = "log"
    description = (
        "A uint8 radix-4 FP4 codes, B INT4/UINT4 codes per --b-signed; C int64, the exact shift-accumulate "
        "(no scale applied; dW = X^T dY runs as dW^T = dY^T X)"
    )
    signedness = ("b_signed",)
    workload = "backward"

    def encode(self, a, b, *, a_signed, b_signed):
        if not np.issubdtype(a.dtype, np.integer):
            raise GemmInputError(f"A must hold FP4 codes (uint8), not dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() > 15):
            raise GemmInputError(f"A holds values outside the FP4 codes 0..15 (min {a.min()}, max {a.max()})")
        return a.astype(np.int64), integer_codes("B", b, b_signed)

    def reference(self, a, b, *, a_signed=True, b_signed=True):
        from golden.reference import log_gemm

        return log_gemm(*int64_tensors(a, b), x_signed=b_signed).numpy()

    def random_operands(self, rng, m, k, n, *, a_signed=True, b_signed=True):
        # Draw A first: the same stream as before the registry (seeded benchmarks repeat).
        a = rng.integers(0, 16, size=(m, k)).astype(np.uint8)
        return a, random_codes(rng, (k, n), b_signed)


GEMM = LogGemm()


class LogKind(IntegerKind):
    name = "log"
    order = 1
    description = "radix-4 FP4 (A) x INT4/UINT4 (B) shift-accumulate, wrapping signed accumulators"
    a_width = b_width = 4
    b_modes = ("b_signed",)
    product_range = PRODUCT_RANGE
    default_acc_width = 32
    gemms = ((GEMM, {}),)
    standalone = StandaloneTop(
        module="log_mac",
        ports=(("x", "b", 4), ("x_signed", "b_signed", 1), ("g", "a", 4)),
        fixed_modes={},
        product_range=PRODUCT_RANGE,
        defaults={"acc_width": 32, "pipeline": 0, "min_k": 1},
        description="INT4/UINT4 x radix-4 FP4 shift-accumulate, wrapping signed accumulator",
    )
    array_description = "output-stationary R x C array of FP4 x INT4/UINT4 shift-accumulate PEs"
    workloads = ("backward",)
    info_code = 1
    fpga = FPGAFit(largest={"icebreaker": (4, 4), "ulx3s": (20, 20)})

    # Lean FPGA rule: a UINT4 B code u enters as the INT4 code of t = u - 8 (top
    # bit flipped); g * (t + 8 ub) = g * t + 8 ub g: an FP4 x INT4 shift in every
    # PE and a row term (8 g where B is UINT4). A needs no rewriting.
    fpga_lean = True
    lean_product_range = FP4_RADIX4.scale_range(INT4.value_range())
    row_term_range = FP4_RADIX4.scale_range(ProductRange(8, 8))
    col_term_range = None
    lean_row_modes = lean_col_modes = ("b_signed",)

    def lean_b(self, b, modes):
        b = Value.cast(b)
        return Cat(b[:3], b[3] ^ ~modes["b_signed"])

    def lean_product(self, a, b):
        return FP4_RADIX4.scale(a, INT4.value(b, AMARANTH_OPS, signed=True), AMARANTH_OPS)

    def row_term(self, a, modes):
        return Mux(modes["b_signed"], 0, FP4_RADIX4.scale(a, Const(8, signed(5)), AMARANTH_OPS))

    def golden_products(self, a, b, modes):
        from golden.reference import log_products

        return log_products(a, b, x_signed=modes["b_signed"])

    def operand_zero_rule(self, ops, role, x, modes):
        # An FP4 code (A) with exponent field 0 is zero (0x0, and 0x8 if it occurs); B code 0 is 0.
        return ops.eq(ops.field(x, 0, 3), 0) if role == "a" else ops.eq(ops.field(x, 0, 4), 0)

    def product_rule(self, ops, a, b, modes):
        return FP4_RADIX4.scale(a, INT4.value(b, ops, signed=modes["b_signed"]), ops)


KIND = LogKind()
