"""The ``int4`` kind: INT4/UINT4 x INT4/UINT4 multiply-accumulate, the forward GEMMs.

Product rule: ``a * b`` with each operand INT4 or UINT4 by its run-time mode
bit (``a_signed``, ``b_signed``). The standalone top ``int4_mac`` (SPEC
section 3) has ``a_signed`` only: its ``b`` is INT4. Wrapping two's-complement
accumulators, 24 bits by default.
"""

from amaranth.hdl import Cat, Mux, Value

from golden.formats import INT4, ProductRange

from ..arith import AMARANTH_OPS, INT_OPERAND_RANGE, row_product
from .base import FPGAFit, IntegerGemm, IntegerKind, StandaloneTop, int64_tensors, integer_codes, random_codes

__all__ = ["GEMM", "KIND", "PRODUCT_RANGE", "STANDALONE_PRODUCT_RANGE"]

_CORNERS = (INT_OPERAND_RANGE.lo, INT_OPERAND_RANGE.hi)

#: Products of two 4-bit integers over every signedness mode of both (-120..225).
PRODUCT_RANGE = ProductRange(
    min(x * y for x in _CORNERS for y in _CORNERS), max(x * y for x in _CORNERS for y in _CORNERS)
)
#: Products of ``int4_mac``: ``a`` INT4/UINT4, ``b`` INT4 (-120..105).
STANDALONE_PRODUCT_RANGE = INT4.scale_range(INT_OPERAND_RANGE)


class Int4Gemm(IntegerGemm):
    name = "int4"
    description = "A, B integer codes (INT4, or UINT4 where --*-signed is 0); C int64"
    signedness = ("a_signed", "b_signed")
    workload = "forward"

    def encode(self, a, b, *, a_signed, b_signed):
        return integer_codes("A", a, a_signed), integer_codes("B", b, b_signed)

    def reference(self, a, b, *, a_signed=True, b_signed=True):
        from golden.reference import int_gemm

        return int_gemm(*int64_tensors(a, b), a_signed=a_signed, b_signed=b_signed).numpy()

    def random_operands(self, rng, m, k, n, *, a_signed=True, b_signed=True):
        return random_codes(rng, (m, k), a_signed), random_codes(rng, (k, n), b_signed)


GEMM = Int4Gemm()


class Int4Kind(IntegerKind):
    name = "int4"
    order = 0
    description = "INT4/UINT4 x INT4/UINT4, wrapping signed accumulators"
    a_width = b_width = 4
    a_modes = ("a_signed",)
    b_modes = ("b_signed",)
    product_range = PRODUCT_RANGE
    default_acc_width = 24
    gemms = ((GEMM, {}),)
    standalone = StandaloneTop(
        module="int4_mac",
        ports=(("a", "a", 4), ("b", "b", 4), ("a_signed", "a_signed", 1)),
        fixed_modes={"b_signed": True},
        product_range=STANDALONE_PRODUCT_RANGE,
        defaults={"acc_width": 24, "pipeline": 0, "min_k": 1},
        description="INT4/UINT4 x INT4 multiply-accumulate, wrapping signed accumulator",
    )
    array_description = "output-stationary R x C array of INT4/UINT4 x INT4/UINT4 MACs"
    workloads = ("forward",)
    info_code = 0
    fpga = FPGAFit(largest={"icebreaker": (5, 5), "ulx3s": (20, 20)})

    # Lean FPGA rule: a UINT4 code u enters the array as the INT4 code of s = u - 8
    # (top bit flipped), likewise B; with a = s + 8 ua and b = t + 8 ub,
    # a * b = s * t + 8 ub a + 8 ua t: an INT4 x INT4 product in every PE, a row
    # term (8 a where B is UINT4) and a column term (8 t where A is UINT4).
    fpga_lean = True
    lean_product_range = INT4.scale_range(INT4.value_range())
    row_term_range = ProductRange(8 * INT_OPERAND_RANGE.lo, 8 * INT_OPERAND_RANGE.hi).union(ProductRange(0, 0))
    col_term_range = ProductRange(8 * INT4.min_value, 8 * INT4.max_value)
    lean_row_modes = lean_col_modes = ("a_signed", "b_signed")

    def lean_a(self, a, modes):
        a = Value.cast(a)
        return Cat(a[:3], a[3] ^ ~modes["a_signed"])

    def lean_b(self, b, modes):
        b = Value.cast(b)
        return Cat(b[:3], b[3] ^ ~modes["b_signed"])

    def lean_product(self, a, b):
        return row_product(Value.cast(a).as_signed(), Value.cast(b).as_signed())

    def row_term(self, a, modes):
        # The original A value: its code is the rewritten one with the top bit flipped back.
        code = Cat(Value.cast(a)[:3], a[3] ^ ~modes["a_signed"])
        value = AMARANTH_OPS.to_int(code, 4, modes["a_signed"])
        return Mux(modes["b_signed"], 0, value << 3)

    def col_term(self, b, modes):
        return Mux(modes["a_signed"], 0, Value.cast(b).as_signed() << 3)

    def golden_products(self, a, b, modes):
        from golden.reference import int_products

        return int_products(a, b, a_signed=modes["a_signed"], b_signed=modes["b_signed"])

    def operand_zero_rule(self, ops, role, x, modes):
        # Code 0 is the value 0 in INT4 and in UINT4, for A and for B.
        return ops.eq(ops.field(x, 0, 4), 0)

    def product_rule(self, ops, a, b, modes):
        return INT4.scale(b, INT4.value(a, ops, signed=modes["a_signed"]), ops, signed=modes["b_signed"])


KIND = Int4Kind()
