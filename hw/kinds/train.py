"""The ``train`` kind: the unified training PE, INT4 x INT4 forward and FP4 x INT4 backward.

Forward GEMMs (``Y = X W``) multiply INT4/UINT4 activations by INT4/UINT4
weights; backward GEMMs (``dX = dY W^T``, ``dW^T = dY^T X``) multiply radix-4
FP4 gradient codes by INT4/UINT4 operands, which is a shift. Both products are
small signed integers, so one wrapping two's-complement accumulator (and its
adder) serves both: the run-time ``mode`` bit only selects which product feeds
it. The two product rules are those of the :mod:`hw.kinds.int4` and
:mod:`hw.kinds.log` kinds; the multiplexer costs one 18-bit 2:1 mux per PE,
less than widening the 5 x 5 multiplier to take the shifted FP4 value. Each
rule's operands are isolated (forced to zero codes) while the other runs.

Operand roles (SPEC section 5, ``verify.gemm --array train``): ``a`` is the
left operand (INT4/UINT4 per ``a_signed`` when ``mode`` is 0, an FP4 code
when ``mode`` is 1), ``b`` the right operand (INT4/UINT4 per ``b_signed``).
"""

from fourbit.util.lazy import lazy_import

from . import int4, log
from .base import FPGAFit, IntegerKind, StandaloneTop

# Imported at its first use: importing hw.kinds need not take seconds (fourbit.util.lazy).
torch = lazy_import("torch")

__all__ = ["MODE_INT", "MODE_LOG", "PRODUCT_RANGE", "KIND"]

#: ``mode`` value of the forward pass: ``a * b``, both INT4/UINT4.
MODE_INT = 0
#: ``mode`` value of the backward pass: ``a`` an FP4 code, ``b`` INT4/UINT4.
MODE_LOG = 1

#: Products over both modes: the union of the two rules' ranges.
PRODUCT_RANGE = int4.PRODUCT_RANGE.union(log.PRODUCT_RANGE)


class TrainKind(IntegerKind):
    name = "train"
    order = 3
    description = (
        "unified training PE: mode 0 INT4 x INT4 (forward), mode 1 FP4 x INT4 (backward), one shared accumulator"
    )
    a_width = b_width = 4
    a_modes = ("mode", "a_signed")
    b_modes = ("b_signed",)
    product_range = PRODUCT_RANGE
    default_acc_width = 32
    gemms = ((int4.GEMM, {"mode": MODE_INT}), (log.GEMM, {"mode": MODE_LOG}))
    standalone = StandaloneTop(
        module="train_mac",
        ports=(
            ("a", "a", 4),
            ("b", "b", 4),
            ("a_signed", "a_signed", 1),
            ("b_signed", "b_signed", 1),
            ("mode", "mode", 1),
        ),
        fixed_modes={},
        product_range=PRODUCT_RANGE,
        defaults={"acc_width": 32, "pipeline": 0, "min_k": 1},
        description="unified training PE: mode 0 INT4/UINT4 x INT4/UINT4, mode 1 FP4 x INT4/UINT4, shared accumulator",
    )
    array_description = "output-stationary R x C array of unified training PEs (INT4 forward / FP4 backward by `mode`)"
    workloads = ("forward", "backward")
    # IBM's arithmetic: INT4 forward, radix-4 FP4 x INT4 backward (with or without the first layer).
    recipes = ("ibm4", "ibm4-full", "ibm4-notpr")
    info_code = 3
    fpga = FPGAFit(largest={"icebreaker": (4, 4), "ulx3s": (16, 16)})

    def golden_products(self, a, b, modes):
        forward = int4.KIND.golden_products(a, b, modes)
        backward = log.KIND.golden_products(a, b, modes)
        return torch.where(torch.as_tensor(modes["mode"]).bool(), backward, forward)

    def zero_rule(self, ops, a, b, modes):
        # The same pairs as both operands' rules, written per mode as each mode's rule.
        return ops.where(modes["mode"], log.KIND.zero_rule(ops, a, b, modes), int4.KIND.zero_rule(ops, a, b, modes))

    def operand_zero_rule(self, ops, role, x, modes):
        # Each mode's own zero rule: in mode 0 code 8 of A is -8 (INT4) or 8 (UINT4), not zero.
        # B is INT4/UINT4 in both modes (code 0); `mode` travels with A.
        if role == "b":
            return int4.KIND.operand_zero_rule(ops, role, x, modes)
        return ops.where(
            modes["mode"],
            log.KIND.operand_zero_rule(ops, role, x, modes),
            int4.KIND.operand_zero_rule(ops, role, x, modes),
        )

    def product_rule(self, ops, a, b, modes):
        # The forward rule when mode is 0, the backward (shift) rule when it is 1;
        # a_signed does not apply to an FP4 code. Operand isolation: the idle
        # rule sees zero codes (INT4 0, FP4 0x0: product 0), so its logic does
        # not switch with operands it does not multiply -- four AND gates per
        # operand and rule, against a multiplier or shifter toggling for nothing.
        mode, zero = modes["mode"], ops.const(0)
        forward = int4.KIND.product_rule(ops, ops.where(mode, zero, a), ops.where(mode, zero, b), modes)
        backward = log.KIND.product_rule(ops, ops.where(mode, a, zero), ops.where(mode, b, zero), modes)
        return ops.where(mode, backward, forward)


KIND = TrainKind()
