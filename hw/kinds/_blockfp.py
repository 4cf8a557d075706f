"""What the block-scaled kinds ``mxfp4`` and ``nvfp4`` share (SPEC section 7).

**Operand word.** The arrays take 12-bit operands: bits 3..0 the E2M1 code,
bits 11..4 the scale code of the code's block (E8M0 or E4M3). The host
(:meth:`BlockGemm.encode`) pairs every code with its block's scale and pads K
with zero codes (and that block's scale) to whole blocks, so the generic
array (:mod:`hw.array`) carries codes and scales unchanged, and no extra
control is needed.

**Block boundary.** Every PE counts the valid cycles since ``clear`` modulo
the block size: with K a multiple of the block size (the padding above),
count ``bs - 1`` is a block's last element. ``clear`` restarts the count.

**PE datapath**, per valid cycle: the product ``N_a * N_b`` of the integer
views ``N = 2 * value`` (9 bits signed, ``|N_a N_b| <= 144``) goes into the
block sum ``P`` (at most ``bs * 144``: 14 bits signed for MXFP4, 13 for
NVFP4). On a block's last element the block term ``P * sig * 2^(e - offset)``
(:meth:`BlockKind.scale_product`) is rounded once to binary32
(:func:`fp32_from_scaled_integer`) and added to the binary32 accumulator with
one round-to-nearest-even (:func:`hw.fp.fp32_add`), so the terms are added in
ascending block order from +0.0, as SPEC 7 says. That binary32 logic is
operand-isolated: it sees its inputs only on a block's last element (zeros
otherwise), so its switching is spread over the block's ``bs`` MACs. ``clear`` starts the
accumulator at +0.0 (not at -0.0, the identity of the fp16 kind's pass-through):
a -0 term then gives +0.
"""

from __future__ import annotations

import functools

import numpy as np
from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed, unsigned

from golden.formats import BLOCK_FORMATS, E2M1, TORCH_OPS

from ..arith import AMARANTH_OPS
from ..fp import fp32_add, leading_zeros
from .base import GemmInputError, GemmType, PEKind, StandaloneTop

__all__ = [
    "CODE_BITS",
    "SCALE_BITS",
    "OPERAND_BITS",
    "BLOCK_CLOCK_DIV",
    "BlockGemm",
    "BlockKind",
    "fp32_from_scaled_integer",
]

CODE_BITS = 4
SCALE_BITS = 8
#: One array operand: scale code above the E2M1 code.
OPERAND_BITS = CODE_BITS + SCALE_BITS

#: The block kinds' engine dividers of each board clock (:class:`FPGAFit` ``clock_div``).
#: A block's term is one single-cycle binary32 add, like the fp16 kind's: its Fmax
#: (1x1: 3.6-4.1 MHz on the iCE40UP5K, 12.7-13.4 MHz on the ECP5, docs/boards.md) takes
#: the iCEBreaker's 12 MHz divided by 4 and the ULX3S's 25 MHz divided by 2.
BLOCK_CLOCK_DIV = {"icebreaker": 4, "ulx3s": 2}


#: Largest ``|N_a * N_b|`` of two E2M1 integer views (12 * 12).
MAX_PRODUCT = E2M1.max_int_value**2


def _integer_matrix(name, matrix, lo, hi, what):
    if not isinstance(matrix, np.ndarray) or matrix.ndim != 2:
        raise GemmInputError(f"{name} must be a 2-D matrix, not shape {getattr(matrix, 'shape', None)}")
    if not np.issubdtype(matrix.dtype, np.integer):
        raise GemmInputError(f"{name} must hold integer {what}, not dtype {matrix.dtype}")
    if matrix.size and (matrix.min() < lo or matrix.max() > hi):
        raise GemmInputError(f"{name} holds values outside {lo}..{hi} (min {matrix.min()}, max {matrix.max()})")
    return matrix.astype(np.int64)


class BlockGemm(GemmType):
    """A SPEC 7 block-scaled GEMM: E2M1 code matrices with their block-scale matrices; C binary32.

    Subclasses set ``name`` (the golden block format's name), ``description`` and
    :meth:`random_scales`.
    """

    is_float = True
    scaled = True

    @property
    def format(self):
        return BLOCK_FORMATS[self.name]

    @staticmethod
    def operand_words(codes, scales):
        """Operand words (int64 numpy) of E2M1 ``codes`` with the scale code of each one's block above it."""
        return np.asarray(codes, dtype=np.int64) | np.asarray(scales, dtype=np.int64) << CODE_BITS

    @staticmethod
    def word_scales(words):
        """The scale codes of operand words (numpy)."""
        return np.asarray(words, dtype=np.int64) >> CODE_BITS

    def scale_shapes(self, m, k, n):
        """Shapes of the scale matrices of an M x K x N GEMM: M x ceil(K/bs) and ceil(K/bs) x N."""
        blocks = self.format.num_blocks(k)
        return (m, blocks), (blocks, n)

    def _checked(self, a, b, a_scales, b_scales):
        a = _integer_matrix("A", a, 0, 15, "E2M1 codes")
        b = _integer_matrix("B", b, 0, 15, "E2M1 codes")
        fmt = self.format.scale_format
        want = self.scale_shapes(a.shape[0], a.shape[1], b.shape[1])
        scales = []
        for name, matrix, shape in (("A's scales", a_scales, want[0]), ("B's scales", b_scales, want[1])):
            matrix = _integer_matrix(name, matrix, 0, 255, f"{fmt.name} scale codes")
            if matrix.shape != shape:
                raise GemmInputError(
                    f"{name} must be {shape[0]} x {shape[1]} (one per {self.format.block_size}-element block "
                    f"of K = {a.shape[1]}), not {matrix.shape[0]} x {matrix.shape[1]}"
                )
            import torch

            nan = fmt.is_nan(torch.from_numpy(matrix)).numpy()
            if nan.any():
                raise GemmInputError(f"{name} hold the NaN {fmt.name} code {int(matrix[nan][0]):#04x}")
            scales.append(matrix)
        return a, b, scales[0], scales[1]

    def encode(self, a, b, *, a_signed, b_signed, a_scales, b_scales):
        a, b, a_scales, b_scales = self._checked(a, b, a_scales, b_scales)
        bs = self.format.block_size
        pad = -a.shape[1] % bs
        # Every code with its block's scale above it; K padded with zero codes to whole blocks.
        a_words = self.operand_words(np.pad(a, ((0, 0), (0, pad))), np.repeat(a_scales, bs, axis=1))
        b_words = self.operand_words(np.pad(b, ((0, pad), (0, 0))), np.repeat(b_scales, bs, axis=0))
        return a_words, b_words

    def reference(self, a, b, *, a_signed=True, b_signed=True, a_scales=None, b_scales=None):
        from golden.reference import block_gemm

        a, b, a_scales, b_scales = self._checked(a, b, a_scales, b_scales)
        return block_gemm(a, a_scales, b, b_scales, self.name).numpy()

    def random_operands(self, rng, m, k, n, *, a_signed=True, b_signed=True):
        """Random E2M1 codes (every code, 0x8 included)."""
        return tuple(rng.integers(0, 16, size=shape).astype(np.uint8) for shape in ((m, k), (k, n)))

    def random_scales(self, rng, shape):
        """Random scale codes of ``shape``, extremes included."""
        raise NotImplementedError

    def random_inputs(self, rng, m, k, n, *, a_signed=True, b_signed=True):
        a, b = self.random_operands(rng, m, k, n)
        a_shape, b_shape = self.scale_shapes(m, k, n)
        return {
            "a": a,
            "b": b,
            "a_scales": self.random_scales(rng, a_shape),
            "b_scales": self.random_scales(rng, b_shape),
        }

    def decode(self, raw, acc_width):
        return np.asarray(raw, dtype=np.uint64).astype(np.uint32).view(np.float32)


def fp32_from_scaled_integer(m, value, exponent, *, offset, negate=0, prefix):
    """binary32 pattern of ``value * 2^(exponent - offset)``, rounded once.

    Round to nearest even with gradual underflow (an underflowing value keeps
    its sign: -0), overflow to infinity; ``value = 0`` gives +0.

    Parameters
    ----------
    m : Module
        Module that named intermediates are added to.
    value : Value
        Signed integer of at most 25 bits (so that its magnitude fits binary32's
        24-bit significand and the normal results are exact).
    exponent : Value
        Unsigned integer.
    offset : int
        Constant subtracted from ``exponent``.
    negate : Value or int
        1 flips the sign of the result (a negative scale factor).
    prefix : str
        Prefix of the intermediate signal names.
    """
    value = Value.cast(value)
    if not value.shape().signed:
        value = Cat(value, Const(0, 1)).as_signed()
    width = len(value)
    if width > 25:
        raise ValueError(f"fp32_from_scaled_integer: a {width}-bit value can need rounding in the normal range")
    negative = value[-1]
    magnitude = Signal(unsigned(width), name=f"{prefix}_magnitude")
    m.d.comb += magnitude.eq(Mux(negative, -value, value))
    lz = Signal(range(width + 1), name=f"{prefix}_lz")
    m.d.comb += lz.eq(leading_zeros(magnitude))
    # The leading one at bit 23 of a 24-bit significand.
    significand = Signal(24, name=f"{prefix}_significand")
    m.d.comb += significand.eq(((magnitude << lz)[:width] << (24 - width))[:24])
    # value = 1.f * 2^(width - 1 - lz + exponent - offset): the biased binary32 exponent.
    biased = Signal(signed(len(Value.cast(exponent)) + 12), name=f"{prefix}_biased")
    m.d.comb += biased.eq(exponent + (width - 1 + 127 - offset) - lz)
    # Subnormal: shift right by 1 - biased (at most 26: beyond, all bits are sticky) and round to nearest even.
    distance = Signal(range(27), name=f"{prefix}_distance")
    m.d.comb += distance.eq(Mux(biased < -25, 26, 1 - biased))
    shifted = Signal(50, name=f"{prefix}_shifted")
    m.d.comb += shifted.eq(Cat(Const(0, 26), significand) >> distance)
    quotient, guard, sticky = shifted[26:50], shifted[25], shifted[0:25] != 0
    # A carry into bit 23 is the smallest normal number's pattern: correct as it is.
    subnormal = Signal(24, name=f"{prefix}_subnormal")
    m.d.comb += subnormal.eq(quotient + (guard & (sticky | quotient[0])))
    sign = negative ^ negate
    result = Signal(32, name=f"{prefix}_result")
    with m.If(magnitude == 0):
        m.d.comb += result.eq(0)
    with m.Elif(biased >= 0xFF):
        m.d.comb += result.eq(Cat(Const(0, 23), Const(0xFF, 8), sign))
    with m.Elif(biased >= 1):
        m.d.comb += result.eq(Cat(significand[:23], biased[:8], sign))
    with m.Else():
        m.d.comb += result.eq(Cat(subnormal[:23], subnormal[23], Const(0, 7), sign))
    return result


class BlockKind(PEKind):
    """A block-scaled PE kind: integer E2M1 MAC over a block, one scaled binary32 term per block.

    Subclasses set the :class:`PEKind` attributes, ``scale_offset``, ``scale_significand_bits``,
    ``scale_exponent_bits`` and implement :meth:`scale_product`.
    """

    scale_offset: int
    scale_significand_bits: int
    scale_exponent_bits: int

    a_width = b_width = OPERAND_BITS
    product_range = None
    default_acc_width = 32
    # A block's integer sum and its one rounding sit in an output-stationary PE; a
    # weight-stationary column would have to carry them between PEs (later work).
    weight_stationary = False
    # A block GEMM takes any GEMM's real operands (block-quantized along K), so the
    # report runs both training workloads on it, as on the floating-point baseline.
    workloads = ("forward", "backward")

    @property
    def format(self):
        return self.gemm.format

    @functools.cached_property
    def standalone(self):
        """The standalone PE ``<name>_mac``: one block MAC with the array's 12-bit operand words.

        Ports ``a`` and ``b`` take the operand word (scale code above the E2M1
        code). The PE counts valid cycles since ``clear`` (or reset) in blocks
        of ``block_size``; on a block's last element it adds the block's term
        with the scale codes of that element's words (a host gives every
        element of a block its block's scale, as the arrays' host does).
        """
        fmt = self.format
        return StandaloneTop(
            module=f"{self.name}_mac",
            ports=(("a", "a", OPERAND_BITS), ("b", "b", OPERAND_BITS)),
            fixed_modes={},
            product_range=None,
            defaults={"pipeline": 0},
            description=(
                f"{fmt.name.upper()} block MAC: E2M1 x E2M1 summed over {fmt.block_size}-element blocks, "
                f"{fmt.scale_format.name.upper()} block scales, one binary32 term per block "
                "added to a binary32 accumulator"
            ),
        )

    @property
    def block_sum_width(self):
        """Signed bits of a block sum: ``|P| <= block_size * 144``."""
        return (self.format.block_size * MAX_PRODUCT).bit_length() + 1

    def scale_product(self, m, a_scale, b_scale, *, prefix):
        """The block scale factor of a PE's two scale codes: ``(significand, exponent, negate)``.

        The term of block sum ``P`` is ``P * significand * 2^(exponent - scale_offset)``
        with the sign flipped where ``negate``; ``significand`` and ``exponent`` are unsigned.
        """
        raise NotImplementedError

    def _fields(self, word):
        word = Value.cast(word)
        return word[:CODE_BITS], word[CODE_BITS:OPERAND_BITS]

    def product(self, m, a, b, modes, *, prefix):
        """The per-cycle part of the PE: ``N_a * N_b`` and the scale factor, packed for :meth:`accumulate`.

        Packing (low to high): the 9-bit signed product, the significand, the exponent, the negate bit.
        """
        (code_a, scale_a), (code_b, scale_b) = self._fields(a), self._fields(b)
        product = Signal(signed(9), name=f"{prefix}_codes")
        m.d.comb += product.eq(E2M1.int_value(code_a, AMARANTH_OPS) * E2M1.int_value(code_b, AMARANTH_OPS))
        significand, exponent, negate = self.scale_product(m, scale_a, scale_b, prefix=prefix)
        packed = Signal(9 + self.scale_significand_bits + self.scale_exponent_bits + 1, name=f"{prefix}_packed")
        m.d.comb += packed.eq(
            Cat(
                product,
                Value.cast(significand)[: self.scale_significand_bits],
                Value.cast(exponent)[: self.scale_exponent_bits],
                negate,
            )
        )
        return packed

    def golden_products(self, a, b, modes):
        """``N_a * N_b`` of the code fields (int64), from :data:`golden.formats.E2M1`'s integer view."""
        return E2M1.int_value(a & 0xF, TORCH_OPS) * E2M1.int_value(b & 0xF, TORCH_OPS)

    def gated_accumulate(self, m, acc, prod, valid, clear, *, prefix):
        """The block rule with the accumulator loading only on a block's last element or ``clear``.

        Between those cycles its next value is itself, so it need not be clocked:
        one load per block instead of one per MAC.
        """
        nxt, block_end = self._block_accumulate(m, acc, prod, valid, clear, prefix=prefix)
        return nxt, (valid & block_end) | clear

    def accumulate(self, m, acc, prod, valid, clear, *, prefix):
        """Next binary32 accumulator under the block rule (:meth:`_block_accumulate`)."""
        return self._block_accumulate(m, acc, prod, valid, clear, prefix=prefix)[0]

    def _block_accumulate(self, m, acc, prod, valid, clear, *, prefix):
        """Next binary32 accumulator under the block rule, and the block-end flag.

        On a valid cycle the product joins the block sum; on a block's last
        element (count ``bs - 1``) the block's term, rounded once, is added to
        the accumulator (to +0.0 on the first block) and the block restarts.
        ``clear`` restarts the count, the block sum and the accumulator (+0.0);
        without ``valid`` and ``clear`` everything holds.
        """
        sig_width, exp_width = self.scale_significand_bits, self.scale_exponent_bits
        prod = Value.cast(prod)
        product = prod[:9].as_signed()
        significand = prod[9 : 9 + sig_width]
        exponent = prod[9 + sig_width : 9 + sig_width + exp_width]
        negate = prod[9 + sig_width + exp_width]
        bs = self.format.block_size

        # Per-PE block state: elements seen in this block, and its integer sum.
        count = Signal(range(bs), name=f"{prefix}_count")
        block_sum = Signal(signed(self.block_sum_width), name=f"{prefix}_block_sum")
        position = Mux(clear, 0, count)
        total = Signal(signed(self.block_sum_width), name=f"{prefix}_block_total")
        m.d.comb += total.eq(Mux(clear, 0, block_sum) + product)
        block_end = Signal(name=f"{prefix}_block_end")
        m.d.comb += block_end.eq(position == bs - 1)

        # Operand isolation: the term's rounding and the binary32 add see their
        # inputs only on a block's last element and zeros otherwise, so they
        # switch twice per block instead of on every MAC (their result is used
        # only then). The FP16 baseline's counterpart is its zero-operand skip.
        closing = Signal(name=f"{prefix}_closing")
        m.d.comb += closing.eq(valid & block_end)
        isolated = [Mux(closing, x, 0) for x in (total, significand, exponent, negate)]
        term = fp32_from_scaled_integer(
            m,
            isolated[0] * isolated[1],
            isolated[2],
            offset=self.scale_offset,
            negate=isolated[3],
            prefix=f"{prefix}_term",
        )
        # The first block adds to +0.0 (clear), later ones to the accumulator.
        total_fp = fp32_add(m, Mux(clear, 0, acc), term, prefix=f"{prefix}_fp32")

        with m.If(valid):
            m.d.sync += [count.eq(Mux(block_end, 0, position + 1)), block_sum.eq(Mux(block_end, 0, total))]
        with m.Elif(clear):
            m.d.sync += [count.eq(0), block_sum.eq(0)]
        return Mux(valid, Mux(block_end, total_fp, Mux(clear, 0, acc)), Mux(clear, 0, acc)), block_end

    def accumulator_description(self, acc_width):
        return (
            f"integer block sum ({self.block_sum_width} bits signed, {self.format.block_size}-element blocks), "
            "one binary32 term per block (RNE), binary32 accumulator (RNE per add, ascending blocks)"
        )
