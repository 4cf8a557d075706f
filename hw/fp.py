"""IEEE 754 integer datapaths for the FP16 baseline (SPEC sections 2 and 3).

The functions here build combinational Amaranth logic inside a caller's
:class:`~amaranth.hdl.Module` and return the result as a :class:`~amaranth.hdl.Value`,
so a standalone PE and an R x C array share one implementation and one flat
Verilog module. Everything is plain integer logic: unpack, multiply the
significands, align with a sticky bit, add or subtract, count leading zeros,
normalize, round to nearest even, pack. No float operator is involved.

Two facts keep the datapath small and exact:

* The product of two binary16 numbers is always an exact binary32 *normal*
  number: the significand product has at most 22 bits, and its magnitude lies
  in [2^-48, 2^32), inside binary32's normal range. So
  :func:`fp16_product` only renormalizes the 22-bit product (no rounding), and
  the MAC needs one rounding, in :func:`fp32_add`.
* Binary32 encodings of finite numbers compare like their magnitudes when read
  as 31-bit unsigned integers, so the adder orders its operands with one
  integer comparison, and with the larger one in front three extra bits
  (guard, round, sticky) make the sum correctly rounded.

Every NaN result is the canonical quiet NaN ``0x7FC00000``.
"""

from amaranth.hdl import Cat, Const, Mux, Signal, Value, unsigned

__all__ = [
    "FP32_CANONICAL_NAN",
    "FP32_NEGATIVE_ZERO",
    "leading_zeros",
    "fp16_product",
    "fp32_add",
    "fp32_to_fp16",
]


#: The canonical quiet NaN every NaN result is replaced by.
FP32_CANONICAL_NAN = 0x7FC0_0000
#: ``-0.0``: the identity of binary32 addition (``x + -0 == x`` for every x, -0 included).
FP32_NEGATIVE_ZERO = 0x8000_0000


def leading_zeros(value):
    """Number of zero bits above the most significant one of ``value``.

    A log-depth tree (each level merges two halves: the upper half's count, or
    the lower half's plus half the width when the upper half is zero), so the
    normalization paths of the FP datapath stay short.

    Parameters
    ----------
    value : Value
        Unsigned value of width ``n``.

    Returns
    -------
    Value
        ``n`` when ``value == 0``, else ``n - 1 - msb_index``.
    """
    value = Value.cast(value)
    width = len(value)
    if width == 1:
        return ~value[0]
    padded_width = 1 << (width - 1).bit_length()
    # Ones below the value: padding never adds leading zeros, and zero still counts n.
    bits = Cat(Const((1 << (padded_width - width)) - 1, padded_width - width), value)

    def tree(bits):
        """(count of leading zeros mod len(bits), all bits zero) of a power-of-two slice."""
        if len(bits) == 2:
            return ~bits[1], ~(bits[0] | bits[1])
        half = len(bits) // 2
        count_hi, zero_hi = tree(bits[half:])
        count_lo, zero_lo = tree(bits[:half])
        return Cat(Mux(zero_hi, count_lo, count_hi), zero_hi), zero_hi & zero_lo

    count, zero = tree(bits)
    return Mux(zero, width, count)


def _named(m, name, expr, shape=None):
    """Give an intermediate result a name in the generated Verilog."""
    signal = Signal(shape if shape is not None else Value.cast(expr).shape(), name=name)
    m.d.comb += signal.eq(expr)
    return signal


def fp16_product(m, a, b, *, prefix="mul"):
    """Exact binary32 encoding of the product of two binary16 numbers.

    Parameters
    ----------
    m : Module
        Module the logic is added to.
    a, b : Value
        16-bit binary16 bit patterns.
    prefix : str
        Prefix of the intermediate signal names.

    Returns
    -------
    Value
        32-bit binary32 pattern of ``fp32(a) * fp32(b)`` (exact, never rounded):
        signed zeros, infinities, and ``0x7FC00000`` for NaN operands or ``inf * 0``.
    """
    a = Value.cast(a)
    b = Value.cast(b)
    if len(a) != 16 or len(b) != 16:
        raise ValueError(f"fp16_product operands must be 16 bits wide, not {len(a)} and {len(b)}")

    def unpack(x):
        exp, frac, sign = x[10:15], x[0:10], x[15]
        is_special = exp == 0x1F
        return dict(
            sign=sign,
            # Subnormals share exponent 1 with the smallest normals, without the hidden bit.
            exp=Mux(exp == 0, 1, exp),
            sig=Cat(frac, exp != 0),
            is_zero=(exp == 0) & (frac == 0),
            is_inf=is_special & (frac == 0),
            is_nan=is_special & (frac != 0),
        )

    ua, ub = unpack(a), unpack(b)
    sign = _named(m, f"{prefix}_sign", ua["sign"] ^ ub["sign"])
    sig = _named(m, f"{prefix}_sig", ua["sig"] * ub["sig"], unsigned(22))
    # Normalize so the leading one sits at bit 21; a zero significand stays zero.
    shift = _named(m, f"{prefix}_lz", leading_zeros(sig))
    norm = _named(m, f"{prefix}_norm", (sig << shift)[0:22], unsigned(22))
    # value = norm * 2^(ea + eb - 50 - shift) = (norm << 2) * 2^(E - 150)
    exp32 = _named(m, f"{prefix}_exp", ua["exp"] + ub["exp"] + 98 - shift, unsigned(8))

    is_nan = ua["is_nan"] | ub["is_nan"] | (ua["is_inf"] & ub["is_zero"]) | (ua["is_zero"] & ub["is_inf"])
    is_inf = ua["is_inf"] | ub["is_inf"]
    is_zero = ua["is_zero"] | ub["is_zero"]

    result = Signal(32, name=f"{prefix}_result")
    with m.If(is_nan):
        m.d.comb += result.eq(FP32_CANONICAL_NAN)
    with m.Elif(is_inf):
        m.d.comb += result.eq(Cat(Const(0, 23), Const(0xFF, 8), sign))
    with m.Elif(is_zero):
        m.d.comb += result.eq(Cat(Const(0, 31), sign))
    with m.Else():
        # Drop the hidden bit (norm[21]) and left-align the 21 fraction bits.
        m.d.comb += result.eq(Cat(Const(0, 2), norm[0:21], exp32, sign))
    return result


def fp32_add(m, x, y, *, prefix="add"):
    """Binary32 sum of two binary32 numbers, rounded once to nearest even.

    Parameters
    ----------
    m : Module
        Module the logic is added to.
    x, y : Value
        32-bit binary32 bit patterns.
    prefix : str
        Prefix of the intermediate signal names.

    Returns
    -------
    Value
        32-bit pattern of ``x + y`` under IEEE 754 round-to-nearest-even:
        subnormal inputs and outputs, overflow to infinity, ``+0`` for an
        exact cancellation (``-0`` only for ``-0 + -0``), ``0x7FC00000`` for any
        NaN operand and for ``inf - inf``.
    """
    x = Value.cast(x)
    y = Value.cast(y)
    if len(x) != 32 or len(y) != 32:
        raise ValueError(f"fp32_add operands must be 32 bits wide, not {len(x)} and {len(y)}")

    x_special = x[23:31] == 0xFF
    y_special = y[23:31] == 0xFF
    x_nan = x_special & (x[0:23] != 0)
    y_nan = y_special & (y[0:23] != 0)
    x_inf = x_special & (x[0:23] == 0)
    y_inf = y_special & (y[0:23] == 0)

    # Order by magnitude: then the result has the sign of `big` and `big` is
    # the operand the smaller one is aligned to.
    swap = _named(m, f"{prefix}_swap", y[0:31] > x[0:31])
    big = _named(m, f"{prefix}_big", Mux(swap, y, x), unsigned(32))
    small = _named(m, f"{prefix}_small", Mux(swap, x, y), unsigned(32))

    def unpack(v):
        exp = v[23:31]
        return Mux(exp == 0, 1, exp), Cat(v[0:23], exp != 0)

    big_exp, big_sig = unpack(big)
    small_exp, small_sig = unpack(small)
    big_exp = _named(m, f"{prefix}_big_exp", big_exp, unsigned(8))
    distance = _named(m, f"{prefix}_distance", big_exp - small_exp, unsigned(8))
    # Aligned significands carry three extra low bits: guard, round, sticky.
    # Shifting a 54-bit {sig, 000, 27 zeros} right keeps the lost bits below bit 27.
    clamped = Mux(distance > 27, 27, distance)
    shifted = _named(m, f"{prefix}_shifted", Cat(Const(0, 27), Const(0, 3), small_sig) >> clamped, unsigned(54))
    small_aligned = Cat(shifted[27] | (shifted[0:27] != 0), shifted[28:54])
    big_aligned = Cat(Const(0, 3), big_sig)

    subtract = _named(m, f"{prefix}_subtract", x[31] ^ y[31])
    total = _named(
        m, f"{prefix}_total", Mux(subtract, big_aligned - small_aligned, big_aligned + small_aligned), unsigned(28)
    )

    # Normalize: the leading one goes to bit 27 unless that would push the
    # exponent below 1 (subnormal result: the shift stops at exponent 1).
    lz = _named(m, f"{prefix}_lz", leading_zeros(total))
    shift = _named(m, f"{prefix}_shift", Mux(lz > big_exp, big_exp, lz), unsigned(5))
    norm = _named(m, f"{prefix}_norm", (total << shift)[0:28], unsigned(28))
    # Biased exponent of a leading one at bit 27 (0 for a subnormal result).
    exp = _named(m, f"{prefix}_exp", Mux(norm[27], big_exp + 1 - shift, 0), unsigned(9))

    guard = norm[3]
    sticky = norm[0:3] != 0
    round_up = guard & (sticky | norm[4])
    # A rounding carry out of the fraction moves into the exponent field:
    # subnormal -> smallest normal, 1.11..1 -> next binade, max finite -> inf.
    rounded = _named(m, f"{prefix}_rounded", Cat(norm[4:27], exp) + round_up, unsigned(32))
    overflow = (exp >= 0xFF) | (rounded[23:32] >= 0xFF)

    result = Signal(32, name=f"{prefix}_result")
    with m.If(x_nan | y_nan | (x_inf & y_inf & subtract)):
        m.d.comb += result.eq(FP32_CANONICAL_NAN)
    with m.Elif(x_inf | y_inf):
        m.d.comb += result.eq(Cat(Const(0, 23), Const(0xFF, 8), big[31]))
    with m.Elif(total == 0):
        # Exact zero: -0 only when both addends are -0 (round to nearest even).
        m.d.comb += result.eq(Cat(Const(0, 31), x[31] & y[31]))
    with m.Elif(overflow):
        m.d.comb += result.eq(Cat(Const(0, 23), Const(0xFF, 8), big[31]))
    with m.Else():
        m.d.comb += result.eq(Cat(rounded[0:31], big[31]))
    return result


def fp32_to_fp16(m, x, *, prefix="cvt"):
    """Binary16 pattern of a binary32 number, rounded to nearest even.

    The cast an FP16 datapath applies to its binary32 accumulators (as
    ``torch.Tensor.to(torch.float16)``): subnormal results where binary16
    has them, magnitudes that round beyond 65504 to infinity, binary32
    subnormals to signed zero, every NaN to ``0x7E00`` with its sign.

    One variable right shift of the 24-bit significand to the binary16 unit
    in the last place (13 places for a normal result, more for a subnormal
    one), a round bit and a sticky bit. The rounded significand is added to
    the exponent field, so a carry out of the significand increments the
    exponent, and the largest finite binary16 rounds up into infinity's
    encoding, as IEEE 754 wants.

    Parameters
    ----------
    m : Module
    x : Value
        32-bit binary32 pattern.
    prefix : str
        Prefix of the intermediate signal names.

    Returns
    -------
    Value
        16-bit binary16 pattern.
    """
    x = Value.cast(x)
    if len(x) != 32:
        raise ValueError(f"fp32_to_fp16 takes a 32-bit operand, not {len(x)} bits")
    sign, exp, frac = x[31], x[23:31], x[0:23]
    sig = Cat(frac, Const(1, 1))  # 24 bits; exp == 0 (zero, subnormal) is handled apart
    normal = exp >= 113  # unbiased exponent >= -14
    # Places below the binary16 ulp: 13 for a normal result, 126 - exp for a subnormal
    # one (ulp 2^-24); beyond 25 everything is below half an ulp, so 26 stands for them all.
    shift = _named(m, f"{prefix}_shift", Mux(normal, 13, Mux(exp <= 100, 26, 126 - exp)), unsigned(5))
    kept = _named(m, f"{prefix}_kept", sig >> shift, unsigned(24))
    round_bit = _named(m, f"{prefix}_round", (sig >> (shift - 1)[:5])[0])
    # sticky: any one below the round bit, i.e. sig is not a multiple of 2^(shift - 1)
    below = _named(m, f"{prefix}_below", (Const(1, 25) << (shift - 1)[:5])[:24] - 1, unsigned(24))
    sticky = _named(m, f"{prefix}_sticky", (sig & below) != 0)
    up = round_bit & (sticky | kept[0])
    base = Mux(normal, exp - 113, 0)  # biased binary16 exponent - 1: the hidden bit in `kept` adds the 1
    packed = _named(m, f"{prefix}_packed", (base << 10) + kept + up, unsigned(16))
    result = Signal(16, name=f"{prefix}_result")
    with m.If(exp == 0xFF):
        # infinity stays infinity; a NaN becomes the quiet NaN 0x7E00 with its sign
        m.d.comb += result.eq(Cat(Mux(frac != 0, 0x200, 0)[:10], Const(0x1F, 5), sign))
    with m.Elif(exp == 0):
        m.d.comb += result.eq(Cat(Const(0, 15), sign))
    with m.Elif(exp >= 143):  # unbiased >= 16: beyond binary16's range
        m.d.comb += result.eq(Cat(Const(0, 10), Const(0x1F, 5), sign))
    with m.Else():
        m.d.comb += result.eq(Cat(packed[:15], sign))
    return result
