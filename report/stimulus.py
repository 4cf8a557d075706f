"""Operand streams for switching-activity simulation, from training tensors.

A *workload* is a set of GEMMs of a training step, turned into a stream of
MACs: output positions are drawn at random and each contributes its full
dot product (``clear`` on its first MAC, ``valid`` on every cycle), so every
clock cycle is one MAC.

=========  ===================================  ====================================
workload   GEMMs                                operands (``C = A @ B``)
=========  ===================================  ====================================
forward    ``fwd``: Y = X W^T                   A: activation codes (PACT UINT4, or
                                                INT4 images), B: SAWB INT4 weights
backward   ``dx``: dX = dY W (TPR phase 0)      A: FP4 gradient codes, B: INT4 weights
           ``dw``: dW = dY^T X (TPR phase 1)    A: FP4 gradient codes, B: UINT4 codes
=========  ===================================  ====================================

Each unit runs the workloads its PE kind lists (:attr:`hw.kinds.base.PEKind.workloads`),
A and B on the ports of the kind's ``a`` and ``b`` roles and the mode inputs
set as the kind runs that workload's GEMM; a floating-point kind runs every
workload on the same tensors' real values converted to binary16, and a
block-scaled kind (MXFP4, NVFP4) on the same real values block-quantized
along each GEMM's K (:func:`block_words`).  The backward stream is half
``dx`` and half ``dw`` MACs.

Tensors come from

* a **capture** written by golden training (``python -m golden.train ...
  --capture FILE.npz``, format in :mod:`golden.capture`): the ``fwd``, ``dx``
  and ``dw`` records (radix-4 gradients) of every captured step and layer;
  FP16 gets the records' unquantized float operands (``a_float``,
  ``b_float``: float activations, master weights and upstream gradients, as
  an FP16 training baseline multiplies them).  A capture without them (made
  with ``TensorCapture(floats=False)`` or before they existed) falls back to
  the dequantized codes (``code * scale``, FP4 via
  :func:`golden.formats.fp4_decode`), whose powers-of-two gradients barely
  toggle the FP16 multiplier; :func:`fp16_source` says which was used;
* or, until a capture is given, :func:`synthetic_gemms` (labelled
  ``synthetic``): realistic float tensors quantized with :mod:`golden.formats`
  exactly as golden training does; FP16 gets the unquantized float values.

Conversion to binary16 is ``torch.Tensor.to(torch.float16)``: round to
nearest even, magnitudes beyond the largest finite half (65504) become
infinity, tiny ones go subnormal and then to (signed) zero, as an FP16
training step that casts its float32 tensors would.  Captured float
gradients are first multiplied by the power of two of loss scaling
(:func:`loss_scale`: largest |dY| in [2^14, 2^15)), as FP16 training does to
keep them out of the subnormal range; activations and weights are cast as
they are (all well inside binary16's normal range in the default capture).
"""

from dataclasses import dataclass

import numpy as np
import torch

from golden.formats import fp4_decode, fp4_quantize, quantize_pact, quantize_weight, sawb_step
from golden.formats.fp16 import float_to_fp16_bits
from hw.kinds import KINDS, TOPS, get_kind

__all__ = [
    "Gemm",
    "synthetic_gemms",
    "capture_gemms",
    "WORKLOADS",
    "training_workload",
    "PE_WORKLOADS",
    "ARRAY_WORKLOADS",
    "fp16_source",
    "loss_scale",
    "stream",
    "array_stream",
    "block_words",
    "random_operands",
]

#: Workload -> the GEMM ops it is made of: the two training workloads, and
#: one workload per GEMM op (the training-step energy measures each op on its
#: own operands, :mod:`report.step`).
WORKLOADS = {"forward": ("fwd",), "backward": ("dx", "dw"), "fwd": ("fwd",), "dx": ("dx",), "dw": ("dw",)}

#: Per-op workload -> the training workload it belongs to.
_TRAINING_WORKLOAD = {
    "forward": "forward",
    "backward": "backward",
    "fwd": "forward",
    "dx": "backward",
    "dw": "backward",
}


def training_workload(workload):
    """The training workload (``forward`` / ``backward``) of ``workload`` (itself, or a GEMM op's)."""
    return _TRAINING_WORKLOAD[workload]


def _runs(workloads, workload):
    """A unit listing ``workloads`` runs ``workload`` (a training workload, or an op of one it lists)."""
    return workload in WORKLOADS and training_workload(workload) in workloads


#: The PE kind of each standalone top (module name, e.g. ``int4_mac``).
TOP_KINDS = TOPS

#: Standalone PE (module name) -> the workloads it runs.
PE_WORKLOADS = {module: kind.workloads for module, kind in TOP_KINDS.items()}

#: Array PE kind (manifest ``pe``) -> the workloads it runs.
ARRAY_WORKLOADS = {kind.name: kind.workloads for kind in KINDS.values()}


@dataclass
class Gemm:
    """One GEMM ``C = A @ B`` of a training step, as codes and real values.

    Attributes
    ----------
    op : {"fwd", "dx", "dw"}
    a, b : numpy.ndarray
        int64 codes, M x K and K x N (``a``: activation codes for ``fwd``,
        FP4 codes otherwise).
    a_real, b_real : numpy.ndarray
        float64 values of the same tensors (for the FP16 baseline).
    a_signed, b_signed : bool
        Integer codes are INT4 (True) or UINT4 (False).
    source : str
        ``"synthetic"`` or ``"<capture path> step S layer L"``.
    real_kind : str
        What ``a_real``/``b_real`` are: ``"float"`` (unquantized values) or
        ``"dequantized"`` (codes times scales).
    """

    op: str
    a: np.ndarray
    b: np.ndarray
    a_real: np.ndarray
    b_real: np.ndarray
    a_signed: bool
    b_signed: bool
    source: str
    real_kind: str = "float"


def fp16_source(gemms):
    """One-line description of where the FP16 operands of ``gemms`` come from."""
    kinds = sorted({g.real_kind for g in gemms})
    text = {"float": "unquantized float operands", "dequantized": "dequantized 4-bit codes"}
    return " + ".join(text[k] for k in kinds)


def synthetic_gemms(*, m=64, k=256, n=64, seed=0):
    """The three GEMMs of one realistic synthetic layer (labelled ``synthetic``).

    * ``x``: ReLU of unit Gaussians (half exactly zero) with PACT clip 3.0,
      so about 54 % of the UINT4 codes are 0;
    * ``w``: He-initialised Gaussian weights N(0, 2/K), SAWB-quantized INT4;
    * ``dy``: Gaussian values times a log-normal per-element magnitude
      (sigma 1.5 in natural log), spreading the FP4 exponents over the
      radix-4 range as gradients do; FP4 with GradScale, TPR phases 0 and 1.
    """
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal((m, k)), 0.0)
    w = rng.standard_normal((n, k)) * np.sqrt(2.0 / k)  # torch Linear layout: out x in
    dy = rng.standard_normal((m, n)) * np.exp(1.5 * rng.standard_normal((m, n))) * 1e-3
    tx, tw, tdy = (torch.from_numpy(t) for t in (x, w, dy))
    xq = quantize_pact(tx, 3.0).to(torch.int64).numpy()
    wq = quantize_weight(tw, sawb_step(tw)).to(torch.int64).numpy()
    g0 = fp4_quantize(tdy, phase=0)[0].to(torch.int64).numpy()
    g1 = fp4_quantize(tdy, phase=1)[0].to(torch.int64).numpy()
    src = "synthetic"
    return [
        Gemm("fwd", xq, wq.T, x, w.T, False, True, src),
        Gemm("dx", g0, wq, dy, w, False, True, src),
        Gemm("dw", g1.T, xq, dy.T, x, False, False, src),
    ]


def capture_gemms(path):
    """The ``fwd``/``dx``/``dw`` GEMMs of a golden-training capture file.

    Raises
    ------
    ValueError
        Unreadable or foreign file, or no GEMM record in it.
    """
    from golden.capture import load_capture

    try:
        records = load_capture(path)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"cannot read capture file {path}: {e}") from None
    gemms = []
    for r in records:
        where = f"{path} step {r['step']} layer {r['layer']}"
        if r["op"] == "fwd":
            a, b = r["a"].astype(np.int64), r["b"].astype(np.int64)
            a_real, b_real, real_kind = _floats(r, a * r["scale_a"], b * r["scale_b"])
            gemms.append(Gemm("fwd", a, b, a_real, b_real, bool(r["a_signed"]), bool(r["b_signed"]), where, real_kind))
        elif r["op"] in ("dx", "dw") and r.get("radix") == 4:
            a, b = r["a"].astype(np.int64), r["b"].astype(np.int64)
            if "a_float" in r:
                g = None
            else:
                g = fp4_decode(torch.from_numpy(r["a"]), r["scale_g"], phase=int(r["phase"])).numpy()
            a_real, b_real, real_kind = _floats(r, g, b * r["scale_b"])
            gemms.append(Gemm(r["op"], a, b, a_real, b_real, False, bool(r["b_signed"]), where, real_kind))
    if not gemms:
        raise ValueError(f"capture {path} holds no fwd/dx/dw GEMM record")
    return gemms


def loss_scale(grad):
    """The power of two that FP16 training's loss scaling would apply to ``grad``.

    Mixed-precision training scales the loss (so every gradient) by a power of
    two, doubled until a gradient overflows binary16 and halved back: the
    largest |gradient| ends in [2^14, 2^15).  Powers of two leave the
    mantissas alone and keep small gradients out of the subnormal range.
    """
    amax = float(np.abs(grad).max()) if grad.size else 0.0
    if amax == 0.0 or not np.isfinite(amax):
        return 1.0
    return 2.0 ** (14 - np.floor(np.log2(amax)))


def _floats(record, a_deq, b_deq):
    """A record's real operands: its float operands if it has them, else the dequantized codes."""
    if "a_float" in record and "b_float" in record:
        a, b = record["a_float"], record["b_float"]
        if a.shape != record["a"].shape or b.shape != record["b"].shape:
            raise ValueError(
                f"step {record['step']} layer {record['layer']} {record['op']}: float operands "
                f"{a.shape}/{b.shape} do not match the codes {record['a'].shape}/{record['b'].shape}"
            )
        a = a.astype(np.float64)
        if record["op"] != "fwd":
            a = a * loss_scale(a)
        return a, b.astype(np.float64), "float"
    return a_deq, b_deq, "dequantized"


def _dot_products(rng, rows, cols, k, macs):
    """Index arrays (row, col, kk, first) for ``macs`` MACs of whole random dot products."""
    r, c, kk, first = [], [], [], []
    total = 0
    while total < macs:
        i, j = rng.integers(rows), rng.integers(cols)
        r.append(np.full(k, i)), c.append(np.full(k, j)), kk.append(np.arange(k))
        f = np.zeros(k, dtype=np.int64)
        f[0] = 1
        first.append(f)
        total += k
    return tuple(np.concatenate(a)[:macs] for a in (r, c, kk, first))


def _fp16_bits(a):
    return float_to_fp16_bits(torch.from_numpy(a).to(torch.float16)).numpy()


def stream(kind, workload, gemms, macs, *, seed=0):
    """Per-port operand stream of one unit kind on one workload.

    Parameters
    ----------
    kind : str
        A standalone top (:data:`PE_WORKLOADS`), e.g. ``int4_mac``.
    workload : str
        A key of :data:`WORKLOADS` the kind runs (``forward``, ``backward``,
        or one GEMM op of them: ``fwd``, ``dx``, ``dw``).
    gemms : list of Gemm
    macs : int
        Cycles (MACs) in the stream, split evenly over the workload's ops and
        then over the GEMMs of each op.
    seed : int

    Returns
    -------
    dict
        Port name -> int64 array of ``macs`` values.

    Raises
    ------
    ValueError
        A kind/workload pair the dataflow does not use, or no GEMM for it.
    """
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r} (expected one of {', '.join(WORKLOADS)})")
    if not _runs(PE_WORKLOADS.get(kind, ()), workload):
        raise ValueError(f"workload {workload!r} is not run on {kind}")
    pe = TOP_KINDS[kind]
    rng = np.random.default_rng(seed)
    ops = WORKLOADS[workload]
    parts = []
    for n_op, op in enumerate(ops):
        op_gemms = [g for g in gemms if g.op == op]
        if not op_gemms:
            raise ValueError(f"no {op!r} GEMM in the tensors for workload {workload!r}")
        op_macs = macs // len(ops) + (n_op < macs % len(ops))
        for n_g, g in enumerate(op_gemms):
            count = op_macs // len(op_gemms) + (n_g < op_macs % len(op_gemms))
            if count == 0:
                continue
            m, k = g.a.shape
            if pe.gemm.scaled:
                # Whole dot products over K padded to whole blocks (zero codes), as the arrays run them.
                a_words, b_words = block_words(pe, g)
                i, j, kk, first = _dot_products(rng, m, g.b.shape[1], a_words.shape[1], count)
                roles = {"a": a_words[i, kk], "b": b_words[kk, j]}
            elif pe.is_float:
                i, j, kk, first = _dot_products(rng, m, g.b.shape[1], k, count)
                roles = {"a": _fp16_bits(g.a_real[i, kk]), "b": _fp16_bits(g.b_real[kk, j])}
            else:
                i, j, kk, first = _dot_products(rng, m, g.b.shape[1], k, count)
                roles = {"a": g.a[i, kk], "b": g.b[kk, j]}
                modes = pe.mode_inputs(
                    pe.gemm_for(training_workload(workload)), a_signed=g.a_signed, b_signed=g.b_signed
                )
                roles.update({mode: np.full(count, value, np.int64) for mode, value in modes.items()})
            part = {port: roles[role] for port, role, _ in pe.standalone.ports}
            part["valid"] = np.ones(count, np.int64)
            part["clear"] = first
            parts.append(part)
    return {p: np.concatenate([part[p] for part in parts]).astype(np.int64) for p in parts[0]}


def block_words(kind, g):
    """GEMM ``g``'s operands as a block-scaled kind's array takes them (SPEC section 7).

    The real operands (``a_real``, ``b_real``: what the FP16 baseline
    multiplies, see :func:`capture_gemms`) are block-quantized along K with
    :func:`golden.formats.block_quantize` (round to nearest, as the ``mxfp4``
    and ``nvfp4`` recipes quantize by default), and the kind's GEMM pairs every
    code with its block's scale and pads K with zero codes to whole blocks
    (:meth:`hw.kinds._blockfp.BlockGemm.encode`). Loss scaling of captured
    gradients multiplies a whole tensor by a power of two: NVFP4's tensor scale
    absorbs it, MXFP4's block exponents shift by it; no code changes.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        int64 operand words, M x K' and K' x N, K' = K rounded up to whole blocks.
    """
    from golden.formats import block_quantize

    fmt = kind.gemm.name
    a_codes, a_scales, _ = block_quantize(g.a_real, fmt, axis=1)
    b_codes, b_scales, _ = block_quantize(g.b_real, fmt, axis=0)
    a, b = kind.gemm.encode(
        a_codes.numpy(),
        b_codes.numpy(),
        a_signed=True,
        b_signed=True,
        a_scales=a_scales.numpy(),
        b_scales=b_scales.numpy(),
    )
    return a.astype(np.int64), b.astype(np.int64)


def _pack(columns, width):
    """Pack per-element codes (n x count) into one int per row: element i at bits [i*w, (i+1)*w)."""
    mask = (1 << width) - 1
    out = np.zeros(columns.shape[0], dtype=object)
    for i in range(columns.shape[1]):
        out = out + np.array([(int(v) & mask) << (i * width) for v in columns[:, i]], dtype=object)
    return out


def _with_modes(kind, workload, g, part, cycles):
    """``part`` with the kind's mode inputs for GEMM ``g`` of ``workload`` held for ``cycles``."""
    if not kind.is_float:
        modes = kind.mode_inputs(kind.gemm_for(training_workload(workload)), a_signed=g.a_signed, b_signed=g.b_signed)
        part.update({mode: np.full(cycles, value, np.int64) for mode, value in modes.items()})
    return part


def _sampled_stream(workload, gemms, cycles, rng, make_part):
    """``cycles`` of port values: parts made by ``make_part(gemm) -> (part, length)`` from
    randomly chosen GEMMs of each of the workload's operations, an equal share of cycles each."""
    ops = WORKLOADS[workload]
    parts = []
    for n_op, op in enumerate(ops):
        op_gemms = [g for g in gemms if g.op == op]
        if not op_gemms:
            raise ValueError(f"no {op!r} GEMM in the tensors for workload {workload!r}")
        budget = cycles // len(ops) + (n_op < cycles % len(ops))
        used = 0
        while used < budget:
            part, length = make_part(op_gemms[rng.integers(len(op_gemms))])
            parts.append(part)
            used += length
    return {p: np.concatenate([part[p] for part in parts])[:cycles] for p in parts[0]}


def array_stream(pe, rows, cols, workload, gemms, cycles, *, seed=0):
    """Operand stream of an output-stationary ``rows`` x ``cols`` array (``hw.array``).

    Tiles of ``rows`` x ``cols`` outputs at random positions of the workload's
    GEMMs each run their full K, one column of A (``a_in``) and one row of B
    (``b_in``) per cycle, ``clear`` on the first k and ``last`` on the final
    one; a tile shorter than ``2 rows - 1`` cycles is followed by idle cycles
    (the drain's spacing rule).  Output rows/columns beyond the GEMM wrap.
    A block-scaled kind runs K padded to whole blocks (zero codes), and its
    padding cycles count as MACs: that understates its energy per MAC by at
    most the padding's share (none where K is a multiple of the block size).

    Returns
    -------
    dict
        Port name -> array of ``cycles`` values (``a_in``/``b_in`` as Python
        ints in an object array; they can exceed 64 bits).
    """
    if not _runs(ARRAY_WORKLOADS.get(pe, ()), workload):
        raise ValueError(f"workload {workload!r} is not run on a {pe} array")
    kind = get_kind(pe)
    width = kind.a_width
    rng = np.random.default_rng(seed)
    spacing = 2 * rows - 1
    words = {}  # id(GEMM) -> its block-scaled operand words, quantized once per stream

    def tile(g):
        m, k = g.a.shape
        n = g.b.shape[1]
        ii = (rng.integers(m) + np.arange(rows)) % m
        jj = (rng.integers(n) + np.arange(cols)) % n
        if kind.gemm.scaled:
            if id(g) not in words:
                words[id(g)] = block_words(kind, g)
            a_words, b_words = words[id(g)]
            k = a_words.shape[1]
            a, b = a_words[ii].T, b_words[:, jj]
        elif kind.is_float:
            a = _fp16_bits(g.a_real[np.ix_(ii, np.arange(k))]).T  # k x rows
            b = _fp16_bits(g.b_real[np.ix_(np.arange(k), jj)])  # k x cols
        else:
            a, b = g.a[np.ix_(ii, np.arange(k))].T, g.b[np.ix_(np.arange(k), jj)]
        idle = max(0, spacing - k)
        t = k + idle
        part = {
            "a_in": np.concatenate([_pack(a, width), np.zeros(idle, dtype=object)]),
            "b_in": np.concatenate([_pack(b, width), np.zeros(idle, dtype=object)]),
            "valid": np.r_[np.ones(k, np.int64), np.zeros(idle, np.int64)],
            "clear": np.r_[1, np.zeros(t - 1, np.int64)],
            "last": np.r_[np.zeros(k - 1, np.int64), 1, np.zeros(idle, np.int64)],
        }
        return _with_modes(kind, workload, g, part, t), t

    return _sampled_stream(workload, gemms, cycles, rng, tile)


def ws_array_stream(pe, rows, cols, depth, workload, gemms, cycles, *, seed=0):
    """Operand stream of a weight-stationary ``rows`` x ``cols`` array (``hw.ws_array``) of chunk ``depth``.

    Blocks of ``depth`` rows of A by ``cols`` columns of B at random positions
    of the workload's GEMMs, each run over its full K as the GEMM runner
    schedules it (:func:`hw.tiling.ws_schedule`: weights double-buffered and
    loaded under the previous chunk, one row of A per cycle). A K that is not
    a multiple of ``rows`` leaves the last chunk's extra PEs with invalid
    weights: they pass partial sums on, yet count as MACs here, which
    understates the energy per MAC by at most that padding.

    Returns
    -------
    dict
        Port name -> array of ``cycles`` values (``a_in``/``w_in`` as Python ints).
    """
    from hw.tiling import ws_schedule

    if not _runs(ARRAY_WORKLOADS.get(pe, ()), workload):
        raise ValueError(f"workload {workload!r} is not run on a {pe} array")
    kind = get_kind(pe)
    rng = np.random.default_rng(seed)
    mask_a, mask_b = (1 << kind.a_width) - 1, (1 << kind.b_width) - 1

    def block(g):
        m, k = g.a.shape
        n = g.b.shape[1]
        ii = (rng.integers(m) + np.arange(depth)) % m
        jj = (rng.integers(n) + np.arange(cols)) % n
        if kind.is_float:
            a = _fp16_bits(g.a_real[np.ix_(ii, np.arange(k))])
            b = _fp16_bits(g.b_real[np.ix_(np.arange(k), jj)])
        else:
            a, b = g.a[np.ix_(ii, np.arange(k))], g.b[np.ix_(np.arange(k), jj)]
        plan = ws_schedule(np.asarray(a, np.int64) & mask_a, np.asarray(b, np.int64) & mask_b, rows, cols, depth)
        part = {
            "a_in": _pack(plan.a_words, kind.a_width),
            "w_in": _pack(plan.w_words, kind.b_width),
            **{name: getattr(plan, name).astype(np.int64) for name in plan.CONTROLS},
        }
        return _with_modes(kind, workload, g, part, plan.cycles), plan.cycles

    return _sampled_stream(workload, gemms, cycles, rng, block)


def random_operands(ports, macs, *, seed=0):
    """Uniformly random operands for every port (calibration units, as Horowitz's figures assume)."""
    rng = np.random.default_rng(seed)
    return {name: rng.integers(0, 1 << width, macs, dtype=np.int64) for name, width in ports}
