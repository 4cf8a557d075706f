"""Element-wise kernels of the quantized layers, one pass each, fused by ``torch.compile`` where it pays.

Each kernel is one eager function written with PyTorch operations whose
results IEEE 754 fixes exactly (dtype conversions, one float64 multiply or
divide, round half even, integer multiply/shift, comparisons and
selections). It equals the step of :mod:`golden.layers` it replaces, bit for
bit (``tests/golden/test_kernels.py``); the old code took one pass (and one
temporary) per operation, several in float64.

On tensors of at least :data:`COMPILE_MIN_NUMEL` elements (after
:data:`COMPILE_AFTER_CALLS` such calls, so that short runs do not wait for
compilation) the same function runs compiled by ``torch.compile`` (TorchInductor; one C++ loop on the CPU,
reading the input once). That is exact: Inductor's C++ is built without
unsafe math optimizations and without floating-point contraction
(``-fno-unsafe-math-optimizations -ffp-contract=off``; no FMA, no
reassociation, no reciprocal for a division), so every operation rounds as
the eager one. Reductions are never compiled except the order-independent
ones (``max`` of exact values, integer counts); float sums stay eager, in
PyTorch's own order. Scalars travel as 0-dim tensors so that one compiled
graph serves every value (``dynamic=True`` serves every shape). Compilation
takes seconds per kernel and dtype on first use (cached on disk by
Inductor); if it fails the kernels fall back to eager for the rest of the
process, with one warning. ``FOURBIT_COMPILE=0`` in the environment (or
:data:`COMPILE` = False) keeps everything eager; small tensors stay eager
because a compiled call costs about 20 us.
"""

import os
import warnings

import torch

__all__ = [
    "COMPILE",
    "COMPILE_MIN_NUMEL",
    "scale",
    "requant_pact",
    "pact_float",
    "pact_backward",
    "recover_counts",
    "sawb_codes",
    "square_abs64",
    "STATE_INSIDE",
    "STATE_SATURATED",
]

#: Compile the kernels with ``torch.compile`` (``FOURBIT_COMPILE=0`` turns it off).
COMPILE = os.environ.get("FOURBIT_COMPILE", "1") != "0" and hasattr(torch, "compile")
#: Tensors smaller than this run eagerly (a compiled call's overhead exceeds its gain).
COMPILE_MIN_NUMEL = 1 << 16
#: A kernel is compiled at its first call on a large tensor after this many: short runs (tests, a few
#: steps) never pay the compilation; :func:`golden.bench.run_speed` sets 0 (compiled in the warm-up).
COMPILE_AFTER_CALLS = 200

#: PACT state codes (int32: Inductor's C++ vectorizes int32, not int8, loads and compares):
#: 0 clipped at 0, 1 straight-through (0 < x < alpha), 2 saturated (x >= alpha).
STATE_INSIDE, STATE_SATURATED = 1, 2

_NEG_ZERO_BITS = -(1 << 31)  # bit pattern of float32 -0.0 as int32

_compiled = {}
_large_calls = {}
_failed = []


def _separate_inductor_cache(environ=os.environ):
    """Give an ``ATEN_CPU_CAPABILITY`` override its own Inductor cache directory (unless one is set).

    Inductor's on-disk cache does not tell kernels built under a capability override from the
    machine's own: on an AVX512 machine, kernels cached by earlier runs and then loaded under
    ``ATEN_CPU_CAPABILITY=avx2`` trained the MNIST MLP ibm4 recipe into non-finite weights by
    step 201-207 (2026-12-03), while a fresh cache directory and eager kernels trained it to the
    AVX2 machine's result.
    """
    capability = environ.get("ATEN_CPU_CAPABILITY")
    if capability and not environ.get("TORCHINDUCTOR_CACHE_DIR"):
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        environ["TORCHINDUCTOR_CACHE_DIR"] = f"{default_cache_dir()}-{capability.lower()}"


def _call(fn, first, *args):
    if COMPILE and not _failed and first.numel() >= COMPILE_MIN_NUMEL and first.device.type == "cpu":
        compiled = _compiled.get(fn)
        if compiled is None:
            _large_calls[fn] = calls = _large_calls.get(fn, 0) + 1
            if calls <= COMPILE_AFTER_CALLS:
                return fn(*args)
            _separate_inductor_cache()
            compiled = _compiled[fn] = torch.compile(fn, dynamic=True, fullgraph=True)
        try:
            return compiled(*args)
        except Exception as e:  # no C++ compiler, an unsupported torch: the eager kernels are the definition
            _failed.append(e)
            message = f"golden.kernels: torch.compile failed ({type(e).__name__}: {e}); running eagerly"
            warnings.warn(message, stacklevel=3)
    return fn(*args)


def _f64(x):
    return torch.tensor(float(x), dtype=torch.float64)


def _i64(x):
    return torch.tensor(int(x), dtype=torch.int64)


def _to_int8(codes):
    # Small integers held in float64 go to int8 through int32 (exact either way): Inductor's CPU
    # vector conversion float64 -> int8 is several times slower than float64 -> int32 -> int8
    # (2.5 -> 1.5 ms for PACT on 1.2 M elements, 5.4 -> 2.1 ms for SAWB on 4 M weights).
    return codes.to(torch.int32).to(torch.int8)


# --- scaling of exact integers ---------------------------------------------------------------------


def _scale(acc, unit):
    return (acc.to(torch.float64) * unit).to(torch.float32)


def scale(acc, unit):
    """``(acc.to(float64) * unit).to(float32)``: the real float32 value of an exact integer result.

    Parameters
    ----------
    acc : torch.Tensor
        Integer or float tensor of exact integers (converted to float64 exactly).
    unit : float
    """
    return _call(_scale, acc, acc, _f64(unit))


# --- PACT ------------------------------------------------------------------------------------------


def _requant_pact(acc, m0, shift, step, qmax):
    prod = acc.to(torch.int64) * m0
    saturated = prod >= torch.bitwise_left_shift(qmax, shift)
    codes = torch.bitwise_right_shift(prod + torch.bitwise_left_shift(1, shift - 1), shift).clamp(min=0)
    codes = torch.minimum(codes, qmax)
    return codes.to(torch.int8), (codes.to(torch.float64) * step).to(torch.float32), _state(acc > 0, saturated)


def _state(positive, saturated):
    # saturated implies positive (alpha > 0): inside = positive and not saturated.
    one = torch.ones((), dtype=torch.int32)
    return torch.where(saturated, one * STATE_SATURATED, torch.where(positive, one, one * 0))


def requant_pact(acc, m0, shift, step, qmax=15):
    """:func:`golden.requant.requantize_pact` and PACT's output value in one pass.

    ``q = clamp((acc * M0 + 2^(shift-1)) >> shift, 0, qmax)`` in int64, the
    masks from ``acc * M0 >= qmax << shift`` and ``acc > 0``, and the value
    ``fl32(q * step)`` (float64 product, as PACT's).

    Parameters
    ----------
    acc : torch.Tensor
        int32 / int64 accumulator, or a float tensor of exact integers, in
        the 40-bit range of :func:`golden.requant.requantize` (the caller's
        bound; int32 and float32 integers always are).
    m0, shift : int
    step : float
        PACT step ``alpha / qmax``.

    Returns
    -------
    codes : torch.Tensor
        int8 codes in ``0..qmax``.
    value : torch.Tensor
        float32 ``codes * step``.
    state : torch.Tensor
        int32: :data:`STATE_INSIDE` where inside, :data:`STATE_SATURATED` where saturated, else 0.
    """
    return _call(_requant_pact, acc, acc, _i64(m0), _i64(shift), _f64(step), _i64(qmax))


def _pact_float(y, alpha, step):
    codes = torch.round(y.to(torch.float64).clamp(min=0.0).minimum(alpha) / step).clamp(0, 15)
    bad = (~torch.isfinite(y)).sum()
    value = (codes * step).to(torch.float32)
    # The definition's clamp keeps an input -0.0 (and so its value -0.0). Set that sign bit with
    # integer operations: Inductor compiles with -fno-signed-zeros, which may drop it in float code.
    bits = y.view(torch.int32)
    sign = torch.where(bits == _NEG_ZERO_BITS, bits, torch.zeros((), dtype=torch.int32))
    value = (value.view(torch.int32) | sign).view(torch.float32)
    return _to_int8(codes), value, _state(y > 0, y >= alpha.to(y.dtype)), bad


def pact_float(y, alpha):
    """:func:`golden.fused.pact_quantize` (PACT on a float input) and PACT's value in one pass (float32 ``y``).

    Codes ``round_half_even(clamp(y, 0, alpha) / (alpha / 15))`` in float64,
    the masks ``y >= alpha`` and ``y > 0`` (compared in ``y``'s dtype, so
    ``alpha`` must be exact in it: the caller checks), value ``fl32(code * alpha / 15)``.

    Returns
    -------
    tuple or None
        ``(int8 codes, float32 value, int32 state)`` as :func:`requant_pact`;
        None when ``y`` holds a non-finite value (the caller takes the definition).
    """
    a = float(alpha)
    codes, value, state, bad = _call(_pact_float, y, y, _f64(a), _f64(a / 15))
    if int(bad):
        return None
    return codes, value, state


def _pact_backward(g, state):
    zero = torch.zeros((), dtype=g.dtype)
    return torch.where(state == STATE_INSIDE, g, zero), torch.where(state == STATE_SATURATED, g, zero)


def pact_backward(g, state):
    """``(where(inside, g, +0), where(saturated, g, +0))`` from a PACT state tensor (``-0.0``/NaN kept inside)."""
    return _call(_pact_backward, g, g, state)


# --- gradient recovery -----------------------------------------------------------------------------


def _recover_counts(g, unit):
    ints = torch.round(g.to(torch.float64) / unit)
    counts = ints.to(torch.float32)
    bad = ((ints * unit).to(g.dtype) != g).sum()
    return counts, bad, counts.abs().max()


def recover_counts(g, unit):
    """The integers ``round(g / unit)`` behind a float gradient ``g = fl(ints * unit)``, checked.

    Returns
    -------
    counts : torch.Tensor
        float32 ``round_half_even(g / unit)`` (float64 division).
    exact : bool
        Every ``fl(counts * unit)`` (float64 product, rounded to ``g``'s dtype) equals ``g``
        (False for NaN).
    amax : float
        ``max |counts|`` (0 for an empty tensor).
    """
    if not g.numel():
        return g.to(torch.float32), True, 0.0
    counts, bad, amax = _call(_recover_counts, g, g, _f64(unit))
    return counts, not int(bad), float(amax)


# --- SAWB ------------------------------------------------------------------------------------------


def _square_abs64(w):
    w64 = w.to(torch.float64)
    return w64 * w64, w64.abs()


def square_abs64(w):
    """``(w64 * w64, |w64|)`` of ``w64 = w.to(float64)``: the operands of SAWB's two means."""
    return _call(_square_abs64, w, w)


def _sawb_codes(w, step):
    return _to_int8(torch.round(w.to(torch.float64) / step).clamp(-7, 7))


def sawb_codes(w, step):
    """int8 ``clamp(round_half_even(w / step), -7, 7)`` (float64 division), the INT4 codes of SAWB."""
    return _call(_sawb_codes, w, w, _f64(step))
