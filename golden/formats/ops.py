"""The torch backend of :class:`golden.formats.base.Ops`: product rules evaluated on integer tensors."""

from __future__ import annotations

from fourbit.util.lazy import lazy_import

# Imported at its first use: importing hw.kinds need not take seconds (fourbit.util.lazy).
torch = lazy_import("torch")

__all__ = ["TorchOps", "TORCH_OPS"]


class TorchOps:
    """Evaluates format product rules element-wise on int64 tensors."""

    def field(self, value, lo, width):
        return (value.to(torch.int64) >> lo) & ((1 << width) - 1)

    def to_int(self, code, width, signed):
        raw = self.field(code, 0, width)
        negative = (raw >> (width - 1)) & 1
        if isinstance(signed, bool):
            return raw - (negative << width) if signed else raw
        return raw - ((negative & torch.as_tensor(signed, dtype=torch.int64)) << width)

    def eq(self, value, constant):
        return value == constant

    def where(self, cond, if_true, if_false):
        return torch.where(cond, if_true, if_false)

    def mul(self, a, b):
        return a * b

    def neg(self, value):
        return -value

    def shl(self, value, amount, max_amount):
        return torch.bitwise_left_shift(value, amount)

    def const(self, value):
        return torch.tensor(value, dtype=torch.int64)


TORCH_OPS = TorchOps()
