"""Operand streams for switching-activity simulation, from training tensors.

A *workload* is one GEMM of a training step, turned into a stream of MACs:
output positions are drawn at random and each contributes its full dot
product (``clear`` on its first MAC, ``valid`` on every cycle), so every
clock cycle is one MAC.

=========  ===========================  ======================================
workload   GEMM                         operands
=========  ===========================  ======================================
forward    Y = X W                      X: PACT UINT4 codes, W: SAWB INT4 codes
backward   dX = dY W^T (TPR phase 0)    W INT4 x dY FP4 (first half of stream)
           dW = X^T dY (TPR phase 1)    X UINT4 x dY FP4 (second half)
=========  ===========================  ======================================

``int4_mac`` runs *forward*, ``log_mac`` runs *backward*, ``fp16_mac`` runs both
on the same tensors converted to binary16 (the unquantized float values, as
an FP16 training baseline would hold them).

Tensors come from a capture file (``.npz``) written by golden training, or, until
one is given, from :func:`synthetic_layer` (labelled ``synthetic`` in the
report).  Capture keys, per layer prefix ``<layer>/`` (the prefix may be empty):

``x``
    float layer input (M x K), post-ReLU activations;
``w``
    float weights (K x N), so that ``Y = x @ w``;
``dy``
    float upstream gradient (M x N);
``alpha`` (optional)
    the layer's PACT clip; default: ``max(x)``.

The quantization uses :mod:`golden.formats` (SAWB, PACT, FP4 with GradScale
and TPR), exactly as golden training does.
"""

from dataclasses import dataclass

import numpy as np
import torch

from golden.formats import fp4_quantize, quantize_pact, quantize_weight, sawb_step
from golden.formats.fp16 import float_to_fp16_bits

__all__ = ["Layer", "synthetic_layer", "load_capture", "WORKLOADS", "stream",
           "random_operands"]

WORKLOADS = ("forward", "backward")


@dataclass
class Layer:
    """Float tensors of one layer and where they came from.

    Attributes
    ----------
    name : str
    x, w, dy : numpy.ndarray
        float64 activations (M x K), weights (K x N), upstream gradient (M x N).
    alpha : float
        PACT clip of ``x``.
    source : str
        ``"synthetic"`` or the capture file path.
    """

    name: str
    x: np.ndarray
    w: np.ndarray
    dy: np.ndarray
    alpha: float
    source: str

    def codes(self):
        """Quantized codes: ``x`` UINT4, ``w`` INT4, ``dy`` FP4 phases 0 and 1 (numpy int64)."""
        x = torch.from_numpy(self.x)
        w = torch.from_numpy(self.w)
        dy = torch.from_numpy(self.dy)
        xq = quantize_pact(x, self.alpha).to(torch.int64).numpy()
        wq = quantize_weight(w, sawb_step(w)).to(torch.int64).numpy()
        g0, _ = fp4_quantize(dy, phase=0)
        g1, _ = fp4_quantize(dy, phase=1)
        return xq, wq, g0.to(torch.int64).numpy(), g1.to(torch.int64).numpy()


def synthetic_layer(*, m=64, k=256, n=64, seed=0):
    """A realistic synthetic layer (labelled ``synthetic``).

    * ``x``: ReLU of unit Gaussians (half exactly zero) with PACT clip 3.0,
      so about 54 % of the UINT4 codes are 0;
    * ``w``: He-initialised Gaussian weights N(0, 2/K), SAWB-quantized;
    * ``dy``: Gaussian values times a log-normal per-element magnitude
      (sigma 1.5 in natural log), spreading the FP4 exponents over the
      whole radix-4 range as gradients do.
    """
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal((m, k)), 0.0)
    w = rng.standard_normal((k, n)) * np.sqrt(2.0 / k)
    dy = rng.standard_normal((m, n)) * np.exp(1.5 * rng.standard_normal((m, n))) * 1e-3
    return Layer("synthetic", x, w, dy, 3.0, "synthetic")


def load_capture(path):
    """Layers from a capture ``.npz`` (keys in the module docstring).

    Raises
    ------
    ValueError
        Unreadable file, missing keys or inconsistent shapes.
    """
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read capture file {path}: {e}") from None
    prefixes = sorted({key[:-len("x")] for key in data.files if key.endswith("x") and
                       (key == "x" or key.endswith("/x"))})
    layers = []
    for p in prefixes:
        missing = [p + k for k in ("w", "dy") if p + k not in data.files]
        if missing:
            raise ValueError(f"capture {path}: layer {p or '<root>'!r} lacks {', '.join(missing)}")
        x, w, dy = (np.asarray(data[p + k], dtype=np.float64) for k in ("x", "w", "dy"))
        x = x.reshape(x.shape[0], -1)
        if w.ndim != 2 or x.shape[1] != w.shape[0] or dy.shape != (x.shape[0], w.shape[1]):
            raise ValueError(f"capture {path}: layer {p or '<root>'!r} shapes x{x.shape} "
                             f"w{w.shape} dy{dy.shape} do not form Y = x @ w")
        alpha = float(data[p + "alpha"]) if p + "alpha" in data.files else float(x.max())
        if not alpha > 0:
            alpha = 1.0
        layers.append(Layer(p.rstrip("/") or "layer", x, w, dy, alpha, str(path)))
    if not layers:
        raise ValueError(f"capture {path} holds no layer (expected keys x, w, dy or <layer>/x, ...)")
    return layers


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


def stream(kind, workload, layers, macs, *, seed=0):
    """Per-port operand stream of one unit kind on one workload.

    Parameters
    ----------
    kind : {"int4_mac", "log_mac", "fp16_mac"}
    workload : {"forward", "backward"}
    layers : list of Layer
    macs : int
        Cycles (MACs) in the stream, split evenly over the layers.
    seed : int

    Returns
    -------
    dict
        Port name -> int64 array of ``macs`` values.

    Raises
    ------
    ValueError
        A kind/workload pair the paper's dataflow does not use.
    """
    rng = np.random.default_rng(seed)
    parts = []
    per_layer = [macs // len(layers) + (i < macs % len(layers)) for i in range(len(layers))]
    for layer, count in zip(layers, per_layer):
        if count == 0:
            continue
        xq, wq, g0, g1 = layer.codes()
        m, k = layer.x.shape
        n = layer.w.shape[1]
        if workload == "forward":
            i, j, kk, first = _dot_products(rng, m, n, k, count)       # Y[i, j] = sum_kk X[i, kk] W[kk, j]
            ops = {"x": (xq[i, kk], layer.x[i, kk]), "w": (wq[kk, j], layer.w[kk, j])}
            if kind == "int4_mac":
                part = {"a": ops["x"][0], "b": ops["w"][0], "a_signed": np.zeros_like(first)}
            elif kind == "fp16_mac":
                part = {"a": _fp16_bits(ops["x"][1]), "b": _fp16_bits(ops["w"][1])}
            else:
                raise ValueError(f"workload 'forward' is not run on {kind}")
        elif workload == "backward":
            half = count // 2
            # dX[i, kk] = sum_j dY[i, j] W[kk, j]  (phase 0)
            i, kk, j, first_a = _dot_products(rng, m, k, n, half)
            # dW[kk, j] = sum_i X[i, kk] dY[i, j]  (phase 1)
            kk2, j2, i2, first_b = _dot_products(rng, k, n, m, count - half)
            if kind == "log_mac":
                part = {"x": np.concatenate([wq[kk, j], xq[i2, kk2]]),
                        "x_signed": np.concatenate([np.ones(half, np.int64), np.zeros(count - half, np.int64)]),
                        "g": np.concatenate([g0[i, j], g1[i2, j2]])}
            elif kind == "fp16_mac":
                part = {"a": _fp16_bits(np.concatenate([layer.dy[i, j], layer.x[i2, kk2]])),
                        "b": _fp16_bits(np.concatenate([layer.w[kk, j], layer.dy[i2, j2]]))}
            else:
                raise ValueError(f"workload 'backward' is not run on {kind}")
            first = np.concatenate([first_a, first_b])
        else:
            raise ValueError(f"unknown workload {workload!r} (expected one of {', '.join(WORKLOADS)})")
        part["valid"] = np.ones(count, np.int64)
        part["clear"] = first
        parts.append(part)
    return {p: np.concatenate([part[p] for part in parts]).astype(np.int64) for p in parts[0]}


def random_operands(ports, macs, *, seed=0):
    """Uniformly random operands for every port (calibration units, as Horowitz's figures assume)."""
    rng = np.random.default_rng(seed)
    return {name: rng.integers(0, 1 << width, macs, dtype=np.int64) for name, width in ports}
