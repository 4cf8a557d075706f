"""The integer steps of one quantized layer (SPEC section 2), as pure functions on matrices.

Training (:mod:`golden.layers`) and tensor capture are built from these
functions only, and the RTL datapath implements the same steps:

forward
    ``acc = X @ W^T`` of INT4/UINT4 activation codes and INT4 SAWB weight codes
    (:func:`forward_gemm`), plus the bias in accumulator units
    (:func:`bias_codes`); its real unit is ``scale_x * scale_w``. The next
    layer's UINT4 codes come from :func:`golden.requant.requantize`.
backward
    The upstream gradient ``dY`` (an integer accumulator with its unit, or a
    float tensor from the host) is quantized to FP4 twice (TPR,
    :func:`quantize_grad`); ``dX = dY W^T`` and ``dW = dY^T X`` are
    shift-accumulate GEMMs of FP4 codes with integer codes
    (:func:`log_matmul`, real unit :func:`grad_unit` times the integer
    operand's scale).

Exact fast path: the GEMMs run as float matmuls of small integers. A float
sum of integers is exact, in any order, while every partial sum stays below
2^24 (float32) or 2^53 (float64) in magnitude; :func:`exact_matmul` and
:func:`log_bilinear` prove that bound from the reduction length and the
operands' largest magnitudes before every product and pick float32, float32
per group of FP4 exponents, or float64 accordingly (or refuse). Results are float tensors
holding exact integers; they equal :func:`golden.reference.int_gemm` /
:func:`golden.reference.log_gemm` bit for bit (tested). On the CPU the
integer GEMMs of 2-D codes run as ``torch._int_mm`` (int8 in, int32 out,
exact below 2^31; checked, else the float path).
"""

import functools
import math

import torch

from . import fused, kernels
from .formats import FP4_RADIX4, TORCH_OPS, LogFormat, grad_scale_exponent, sawb_step

__all__ = [
    "exact_matmul",
    "forward_gemm",
    "bias_codes",
    "grad_multipliers",
    "log_matmul",
    "log_bilinear",
    "log_int_mm",
    "grad_unit",
    "quantize_grad",
    "quantize_weight_sawb",
    "FLOAT32_EXACT",
    "FLOAT64_EXACT",
    "INT32_EXACT",
    "INT_MM",
]

#: Integers of magnitude below these are exact in float32 / float64.
FLOAT32_EXACT = 1 << 24
FLOAT64_EXACT = 1 << 53
#: Sums of products of magnitude below this are exact in an int32 accumulator.
INT32_EXACT = 1 << 31
#: Use ``torch._int_mm`` for the integer GEMMs where it applies (see :func:`exact_matmul`).
INT_MM = hasattr(torch, "_int_mm")


def _int_mm_applies(a, b, a_max, b_max, bound):
    # torch._int_mm: 2-D int8 operands, int32 accumulation (exact while the bound is below 2^31). On CUDA
    # it also needs M > 16 and K, N multiples of 8; the golden model uses it on the CPU only.
    return (
        INT_MM
        and a.dim() == 2
        and b.dim() == 2
        and a.device.type == "cpu"
        and b.device.type == "cpu"
        and max(a_max, b_max) <= 127
        and bound < INT32_EXACT
    )


def exact_matmul(a, b, a_max, b_max, *, integer=False):
    """``a @ b`` of float matrices holding integers with ``|a| <= a_max``, ``|b| <= b_max``, exactly.

    The result is float32 when ``K * a_max * b_max < 2^24``, else float64 when
    below 2^53: every partial sum of integer products is then an exact
    integer. On the CPU, 2-D products of codes that fit int8 run as
    ``torch._int_mm`` (int8 operands, int32 accumulator: exact below 2^31,
    several times faster than a float32 matmul), converted to that dtype;
    the rest as float matmuls (:data:`INT_MM` = False forces these).
    ``integer=True`` returns the int32 result of ``torch._int_mm`` as it is.

    Returns
    -------
    torch.Tensor
        float32 or float64 (or, with ``integer``, int32) matrix of exact integers.
    """
    bound = a.shape[-1] * a_max * b_max
    if _int_mm_applies(a, b, a_max, b_max, bound):
        acc = torch._int_mm(a.to(torch.int8), b.to(torch.int8))
        if integer:
            return acc
        return acc.to(torch.float32 if bound < FLOAT32_EXACT else torch.float64)
    if bound < FLOAT32_EXACT:
        return a.to(torch.float32) @ b.to(torch.float32)
    if bound < FLOAT64_EXACT:
        return a.to(torch.float64) @ b.to(torch.float64)
    raise OverflowError(f"GEMM bound {bound} exceeds 2^53: cannot be computed exactly in float64")


def forward_gemm(x_codes, w_codes, x_max, *, integer=False):
    """Forward GEMM ``acc = X @ W^T`` of integer codes.

    Parameters
    ----------
    x_codes : torch.Tensor
        M x K activation codes (float tensor of integers), ``|x| <= x_max``.
    w_codes : torch.Tensor
        N x K INT4 weight codes (float tensor of integers in -7..7).
    x_max : int
        8 for INT4 inputs, 15 for UINT4.
    integer : bool
        As :func:`exact_matmul`.

    Returns
    -------
    torch.Tensor
        M x N exact integer accumulator (float32 or float64, or int32).
    """
    return exact_matmul(x_codes, w_codes.t(), x_max, 7, integer=integer)


def bias_codes(bias, acc_unit):
    """Bias in accumulator units: ``round_half_even(b / acc_unit)`` as float64 integers."""
    return torch.round(bias.detach().to(torch.float64) / acc_unit)


@functools.cache
def _multiplier_table(fmt, device):
    codes = torch.arange(fmt.num_codes, dtype=torch.int64)
    # The format's own product rule applied to x = 1: (-1)^s * radix^(e-1), 0 for e = 0.
    values = fmt.scale(codes, torch.ones_like(codes), TORCH_OPS)
    return values.to(device=device, dtype=torch.float32)


def grad_multipliers(codes, fmt=FP4_RADIX4):
    """Integer multipliers ``(-1)^s * radix^(e-1)`` (0 for e = 0) of gradient codes, as float32."""
    return fused.gather(_multiplier_table(fmt, codes.device), codes)


def log_matmul(g_codes, x_codes, x_max, fmt=FP4_RADIX4):
    """Shift-accumulate GEMM ``sum_k (-1)^s(g[m,k]) * x[k,n] * radix^(e-1)`` of FP4 codes with integer codes.

    Parameters
    ----------
    g_codes : torch.Tensor
        M x K gradient codes (uint8).
    x_codes : torch.Tensor
        K x N integer codes (float tensor of integers), ``|x| <= x_max``.
    x_max : int
    fmt : LogFormat

    Returns
    -------
    torch.Tensor
        M x N exact integer result (float32 or float64), equal to
        :func:`golden.reference.log_gemm` for radix 4.
    """
    return log_bilinear(torch.matmul, g_codes, x_codes, terms=g_codes.shape[-1], x_max=x_max, fmt=fmt, sum_dims=(-1,))


@functools.cache
def _group_table(fmt, lo, hi, device):
    """Multipliers ``(-1)^s radix^(j - lo)`` of the codes whose multiplier exponent ``j`` is in
    ``lo..hi-1``, 0 for the others."""
    codes = torch.arange(fmt.num_codes, dtype=torch.int64)
    shift = (codes & fmt.max_exponent) - 1  # radix exponent of the multiplier, -1 for zero
    sign = 1 - 2 * ((codes >> fmt.sign_bit) & 1)
    inside = (shift >= lo) & (shift < hi)
    values = torch.where(inside, sign * fmt.radix ** (shift - lo).clamp(min=0), torch.zeros_like(codes))
    return values.to(device=device, dtype=torch.float32)


def _worst_case_groups(terms, x_max, fmt):
    """Ranges of multiplier exponents, ``size`` consecutive levels each, with
    ``terms * radix^(size-1) * x_max < 2^24``; None if not even one level fits."""
    size = 0
    while size < fmt.max_exponent and terms * x_max * float(fmt.radix) ** size < FLOAT32_EXACT:
        size += 1
    if size == 0:
        return None
    return [(lo, min(lo + size, fmt.max_exponent)) for lo in range(0, fmt.max_exponent, size)]


def _data_groups(g_codes, sum_dims, x_max, fmt):
    """Fewest ranges of multiplier exponents whose float32 ``op`` is exact for these codes, or None.

    Every output of ``op`` sums products of codes that share their index in the
    dims not in ``sum_dims`` (a subset of them, or all). Its partial sums, in
    any order, are then bounded by ``x_max * sum |multiplier|`` over those
    codes, which an exponent histogram per kept index gives exactly. Greedy
    from the lowest level: a range that fits stays fitting when shrunk, so
    the greedy partition is the smallest.
    """
    nd = g_codes.dim()
    sum_dims = sorted({d % nd for d in sum_dims})
    keep = [d for d in range(nd) if d not in sum_dims]
    levels = fmt.max_exponent
    n_keep = math.prod(g_codes.shape[d] for d in keep)
    # Histogram key (levels + 1) * kept_index + exponent field, built in the codes' own layout.
    offsets = torch.arange(n_keep, dtype=torch.int32, device=g_codes.device).mul_(levels + 1)
    offsets = offsets.reshape([g_codes.shape[d] if d in keep else 1 for d in range(nd)])
    key = (g_codes & levels).to(torch.int32).add_(offsets)
    hist = torch.bincount(key.reshape(-1), minlength=(levels + 1) * n_keep).reshape(n_keep, levels + 1)
    hist = hist[:, 1:].to(torch.float64).cpu()  # counts of multiplier exponents 0..levels-1 (exact)
    groups, lo = [], 0
    while lo < levels:
        hi, bound = lo, torch.zeros(n_keep, dtype=torch.float64)
        while hi < levels:
            trial = bound + hist[:, hi] * float(fmt.radix) ** (hi - lo)
            if float(trial.max()) * x_max >= FLOAT32_EXACT:
                break
            bound, hi = trial, hi + 1
        if hi == lo:
            return None
        groups.append((lo, hi))
        lo = hi
    return groups


def log_bilinear(op, g_codes, x, *, terms, x_max, fmt=FP4_RADIX4, sum_dims=None):
    """``op(multipliers(g_codes), x)`` exactly, for any op bilinear in its two arguments.

    ``op`` is a sum of at most ``terms`` products per output element (a
    matmul, a convolution's input or weight gradient). If
    ``terms * radix^6 * x_max < 2^24`` it runs once in float32. Otherwise the
    multipliers ``(-1)^s radix^(e-1)`` are split by exponent into ranges
    ``lo..hi-1``: range ``j`` holds ``(-1)^s radix^(e-1-lo_j)`` for its codes
    and 0 elsewhere, each range's ``op`` is exact in float32, and the results
    are combined as ``sum_j radix^(lo_j) * op_j`` in float64 (exact below
    2^53). The ranges come from the codes themselves when ``sum_dims`` is
    given (:func:`_data_groups`; usually one or two), else from the worst case:
    ``G`` consecutive levels each, ``G`` the largest with
    ``terms * radix^(G-1) * x_max < 2^24``. When even one level is too large
    it runs once in float64.

    Parameters
    ----------
    op : callable
        ``op(a, b)`` on two float tensors of one dtype.
    g_codes : torch.Tensor
        FP4 codes (uint8).
    x : torch.Tensor
        Float tensor of integers with ``|x| <= x_max``.
    terms : int
        Largest number of products summed into one output.
    x_max : int
    fmt : LogFormat
    sum_dims : tuple of int, optional
        Dims of ``g_codes`` such that every output of ``op`` sums products of
        codes sharing one index in the other dims (e.g. ``(0,)`` for
        ``g.t() @ x``).

    Returns
    -------
    torch.Tensor
        float32 or float64 tensor of exact integers.
    """
    levels = fmt.max_exponent  # multipliers radix^0 .. radix^(levels-1)
    top = terms * x_max * float(fmt.radix) ** (levels - 1)
    if top >= FLOAT64_EXACT:
        raise OverflowError(f"log GEMM bound {top} exceeds 2^53: cannot be computed exactly in float64")
    if top < FLOAT32_EXACT:
        return op(fused.gather(_multiplier_table(fmt, g_codes.device), g_codes), x.to(torch.float32))
    groups = None
    if sum_dims is not None and g_codes.numel():
        groups = _data_groups(g_codes, sum_dims, x_max, fmt)
    if groups is None:
        groups = _worst_case_groups(terms, x_max, fmt)
    if groups is None:
        table = _multiplier_table(fmt, g_codes.device).to(torch.float64)
        return op(fused.gather(table, g_codes), x.to(torch.float64))
    x32 = x.to(torch.float32)
    if len(groups) == 1:
        return op(fused.gather(_multiplier_table(fmt, g_codes.device), g_codes), x32)
    total = None
    for lo, hi in groups:
        part = op(fused.gather(_group_table(fmt, lo, hi, g_codes.device), g_codes), x32).to(torch.float64)
        part = part * float(fmt.radix) ** lo
        total = part if total is None else total.add_(part)
    return total


def _int8_group_size(fmt):
    """Most consecutive multiplier exponents whose largest multiplier ``radix^(size-1)`` fits int8."""
    size = 1
    while size < fmt.max_exponent and fmt.radix**size <= 127:
        size += 1
    return size


@functools.cache
def _int8_groups(fmt, device):
    """Exponent groups of :func:`log_int_mm`: ``((lo, int8 table), ...)``, each table holding
    ``(-1)^s radix^(j - lo)`` for the codes whose multiplier exponent ``j`` is in the group, else 0."""
    size = _int8_group_size(fmt)
    return tuple(
        (lo, _group_table(fmt, lo, min(lo + size, fmt.max_exponent), device).to(torch.int8))
        for lo in range(0, fmt.max_exponent, size)
    )


def log_int_mm(g_codes, x, x_max, fmt=FP4_RADIX4, *, transpose_g=False):
    """:func:`log_matmul` (``mult(g) @ x``, or ``mult(g).t() @ x``) as ``torch._int_mm``, or None.

    The multipliers ``(-1)^s radix^(e-1)`` are split into groups of exponents
    whose largest multiplier fits int8 (radix 4: 1..64 and 256 x 1..16;
    radix 2: one group 1..64); each group is one int8 GEMM with int32
    accumulation, exact while ``terms * x_max * radix^(size-1) < 2^31``, and
    the results are combined as ``sum_j radix^(lo_j) * gemm_j`` in int32
    (in int64 when the worst case ``terms * x_max * radix^6`` reaches 2^31).

    Parameters
    ----------
    g_codes : torch.Tensor
        2-D FP4 codes (uint8), M x K (K x M with ``transpose_g``).
    x : torch.Tensor
        2-D integer codes (int8, or a float tensor of integers), ``|x| <= x_max <= 127``.
    x_max : int
    fmt : LogFormat
    transpose_g : bool

    Returns
    -------
    torch.Tensor or None
        int32 or int64 matrix of exact integers; None where ``torch._int_mm``
        does not apply (then :func:`log_bilinear` computes it).
    """
    terms = g_codes.shape[0] if transpose_g else g_codes.shape[-1]
    group_top = terms * x_max * float(fmt.radix) ** (_int8_group_size(fmt) - 1)
    if not (
        INT_MM
        and g_codes.dim() == 2
        and x.dim() == 2
        and g_codes.device.type == "cpu"
        and x.device.type == "cpu"
        and x_max <= 127
        and group_top < INT32_EXACT
    ):
        return None
    x8 = x.to(torch.int8)
    wide = terms * x_max * float(fmt.radix) ** (fmt.max_exponent - 1) >= INT32_EXACT
    total = None
    for lo, table in _int8_groups(fmt, g_codes.device):
        m = fused.gather(table, g_codes)
        part = torch._int_mm(m.t() if transpose_g else m, x8)
        if wide:
            part = part.to(torch.int64)
        if total is None:
            total = part.mul_(fmt.radix**lo) if lo else part
        else:
            total.add_(part, alpha=fmt.radix**lo)
    return total


def grad_unit(fmt, scale, phase):
    """Real value of multiplier 1 of gradient codes: ``S * 2^-phase * radix^-(max_exponent-1)``."""
    return math.ldexp(scale, -phase - fmt.shift_per_step * (fmt.max_exponent - 1))


def quantize_grad(g, unit, phases, fmt=FP4_RADIX4, *, rounding="nearest", ties="away", seed=1, keyed=False):
    """FP4 codes and scale of an upstream gradient for each TPR phase, equal to ``fmt.quantize``
    (:func:`golden.formats.fp4_quantize`) phase by phase.

    Parameters
    ----------
    g : torch.Tensor
        int64 counts of ``unit`` (an integer dX accumulator) or real float
        values (``unit = 1``).
    unit : float
    phases : iterable of int
    fmt : LogFormat
    rounding, ties, seed
        As :func:`golden.formats.fp4_quantize`.
    keyed : bool
        The fast path may return the codes as :class:`golden.fused.KeyedCodes`.

    Returns
    -------
    dict
        ``{phase: (uint8 codes, GradScale S)}``.

    Notes
    -----
    Fast path (rounding ``"nearest"`` / ``"log"``): a float32 tensor with
    ``unit = 1``, or an int64 tensor with ``|g| < 2^24``, is quantized in
    float32. This is exact: the counts are exact float32 numbers, and ``m >=
    boundary`` is tested as ``|counts| >= boundary * 2^(k - phase)``, whose
    right-hand side is a dyadic rational exact in float32 (checked, else the
    float64 path is taken); so every comparison gives the float64 result.
    The two TPR phases share one magnitude and one amax. Other inputs, and
    stochastic rounding, go to ``fmt.quantize``. Both are tested equal.
    """
    if not isinstance(fmt, LogFormat):
        raise TypeError(f"gradient format must be a LogFormat, not {type(fmt).__name__}")
    phases = sorted(set(phases))
    fast = (
        rounding in ("nearest", "log")
        and all(p in range(fmt.phases) for p in phases)
        and ((g.dtype == torch.float32 and unit == 1.0) or g.dtype == torch.int64)
    )
    if fast:
        counts = g.to(torch.float32)
        amax = _abs_max(counts)
        if not math.isfinite(amax):
            raise FloatingPointError("non-finite gradient")
        if g.dtype == torch.int64 and amax >= FLOAT32_EXACT:
            fast = False
    if not fast:
        return {p: fmt.quantize(g, phase=p, unit=unit, rounding=rounding, ties=ties, seed=seed) for p in phases}
    return quantize_counts(counts, amax, unit, phases, fmt, rounding=rounding, ties=ties, keyed=keyed)


def _abs_max(t):
    if not t.numel():
        return 0.0
    lo, hi = torch.aminmax(t)
    return max(-float(lo), float(hi))


def quantize_counts(counts, amax, unit, phases, fmt=FP4_RADIX4, *, rounding="nearest", ties="away", keyed=False):
    """The fast path of :func:`quantize_grad`: float32 ``counts`` (exact counts of ``unit``,
    ``amax = max|counts|`` finite) for rounding ``"nearest"`` / ``"log"``.

    Equal to ``fmt.quantize(counts * unit, phase=p, unit=unit, ...)``: a table lookup
    (:func:`golden.fused.fp4_encode`, its codes as :class:`golden.fused.KeyedCodes` with
    ``keyed``) where it is proven exact, else the comparisons below.
    """
    phases = sorted(set(phases))
    if amax == 0.0:
        zero = torch.zeros(counts.shape, dtype=torch.uint8, device=counts.device)
        return {p: (zero, float(unit)) for p in phases}
    out = fused.fp4_encode(counts, amax, unit, phases, fmt, rounding=rounding, ties=ties, keyed=keyed)
    if out is not None:
        return out
    # Counts of a unit other than 1 are integers: the format reads an integer tensor as counts.
    g = counts if unit == 1.0 else counts.to(torch.int64)
    k = grad_scale_exponent(amax)
    base = torch.as_tensor(fmt.thresholds(rounding), dtype=torch.float64)
    magnitude = counts.abs()
    negative = counts < 0
    out = {}
    for p in phases:
        bounds = [math.ldexp(float(t), k - p) for t in base]
        if any(float(torch.tensor(b, dtype=torch.float32)) != b for b in bounds):
            return {p: fmt.quantize(g, phase=p, unit=unit, rounding=rounding, ties=ties) for p in phases}
        e = torch.zeros(g.shape, dtype=torch.uint8, device=g.device)
        for b in bounds:  # e = number of boundaries passed (7 compares beat bucketize on CPU)
            e += (magnitude >= b) if ties == "away" else (magnitude > b)
        codes = e | ((negative & (e > 0)).to(torch.uint8) << fmt.sign_bit)
        out[p] = (codes, math.ldexp(float(unit), k))
    return out


def quantize_weight_sawb(w, c=(12.68, 12.80), *, dtype=torch.float32):
    """SAWB step and INT4 weight codes.

    Equal to ``step = sawb_step(w, c)``, ``quantize_weight(w, step)`` of
    :mod:`golden.formats` (same float64 operations; tested), without their
    repeated conversions: the two means in float64 as the definition, the
    codes in one pass (:func:`golden.kernels.sawb_codes`).

    Returns
    -------
    codes : torch.Tensor
        Tensor of integers in -7..7 of ``dtype`` (float32 or int8), shape of ``w``.
    step : float

    Raises
    ------
    FloatingPointError
        If ``w`` holds NaN or infinity.
    """
    from .formats.integer import SAWB_EPS

    if w.numel() == 0:
        return torch.zeros_like(w, dtype=dtype), sawb_step(w, c)
    c1, c2 = (float(x) for x in c)
    # The definition's float64 means (PyTorch's reduction order), of the squares and magnitudes made in
    # one pass; the scalar steps in Python floats (float64, sqrt correctly rounded like torch.sqrt).
    squares, magnitudes = kernels.square_abs64(w.detach())
    clip = c1 * math.sqrt(float(torch.mean(squares))) - c2 * float(torch.mean(magnitudes))
    if not math.isfinite(clip):
        raise FloatingPointError("non-finite weights")
    step = max(clip, SAWB_EPS) / 7
    return kernels.sawb_codes(w.detach(), step).to(dtype), step
