"""Tensor capture: every GEMM and requantization of chosen training steps, in one .npz file.

The array tests and the co-simulation replay these files against the RTL.

File format
-----------
A NumPy ``.npz`` archive (``numpy.load(path)``, no pickling needed). Key
``index`` holds a JSON string: ``{"format": "fourbit-capture", "version": 1,
"records": [...]}``. Each record describes one operation of one step:

``{"step": int, "layer": str, "op": "fwd"|"dx"|"dw"|"requant", "kind": "int4"|"log"|"requant",
"arrays": {field: npz key}, "scalars": {field: value}}``

``kind = "int4"`` (forward GEMM ``c = a @ b``, see :func:`golden.reference.int_gemm`)
    arrays ``a`` (M x K int8 activation codes), ``b`` (K x N int8 weight
    codes = W^T), ``c`` (M x N int64, bias not included), optional ``bias``
    (N int64, accumulator units); scalars ``a_signed``, ``b_signed``,
    ``scale_a``, ``scale_b`` (real value = ``c * scale_a * scale_b``).
``kind = "log"`` (backward GEMM ``c = log_gemm(a, b)``, see :func:`golden.reference.log_gemm`)
    arrays ``a`` (M x K uint8 FP4 codes), ``b`` (K x N int8 integer codes),
    ``c`` (M x N int64); scalars ``b_signed``, ``scale_g`` (GradScale S),
    ``phase`` (TPR phase), ``unit_g`` (unit of the quantized gradient:
    1.0 for a float gradient, else the unit of the integer accumulator),
    ``scale_b``, ``radix``. Real value of c = ``c * scale_g * 2^-phase *
    radix^-(7-1) * scale_b``. ``op = "dx"``: a = dY codes (M x N_out),
    b = W codes (N_out x K_in), c = dX (for a conv: the im2col columns, before
    col2im). ``op = "dw"``: a = dY^T codes, b = X codes (im2col), c = dW.
Optional float operands (written unless ``TensorCapture(floats=False)``)
    ``fwd``, ``dx`` and ``dw`` records also hold ``a_float`` and ``b_float``:
    float32 arrays of the same shape and layout as ``a`` and ``b``, the real
    values the GEMM quantized, i.e. what an unquantized (FP16/FP32) baseline
    would multiply. ``fwd``: ``a_float`` = the float input activation (the
    image, or PACT's ``clip(y, 0, alpha)`` before its UINT4 rounding; im2col
    for a conv), ``b_float`` = the float master weights W^T. ``dx``:
    ``a_float`` = the float upstream gradient dY, ``b_float`` = the float
    weights W. ``dw``: ``a_float`` = dY^T, ``b_float`` = the float
    activation (``fwd``'s ``a_float``). Weights quantize to the codes exactly
    (``quantize_weight(b_float, scale_b) == b``); PACT activations quantize
    to ``a`` up to float32 rounding at code boundaries (the integer
    requantization rounds the exact accumulator).
``kind = "requant"``
    arrays ``acc`` (int64 accumulator incl. bias), ``codes`` (uint8, the
    next layer's UINT4 input); scalars ``m0``, ``shift``, ``alpha``,
    ``acc_unit`` and ``producer`` (the layer whose accumulator it is); see
    :mod:`golden.requant`.

Array keys are ``"{step}/{layer}/{op}/{field}"``.
"""

import contextlib
import json

import numpy as np
import torch

from fourbit.util.files import write_atomically

from . import kernels, pipeline
from .requant import requantize_pact

__all__ = ["TensorCapture", "load_capture", "verify_capture", "attach_capture"]

_FORMAT, _VERSION = "fourbit-capture", 1

_DTYPES = {
    ("int4", "a"): np.int8,
    ("int4", "b"): np.int8,
    ("int4", "c"): np.int64,
    ("int4", "bias"): np.int64,
    ("log", "a"): np.uint8,
    ("log", "b"): np.int8,
    ("log", "c"): np.int64,
    ("requant", "acc"): np.int64,
    ("requant", "codes"): np.uint8,
    ("int4", "a_float"): np.float32,
    ("int4", "b_float"): np.float32,
    ("log", "a_float"): np.float32,
    ("log", "b_float"): np.float32,
}


class TensorCapture:
    """Records the integer pipeline of the chosen training steps.

    Parameters
    ----------
    steps : iterable of int
        Global training step numbers (0-based) to record.
    floats : bool
        Also record each GEMM's unquantized float operands (``a_float``,
        ``b_float``; default True).

    Attributes
    ----------
    active : bool
        True while a chosen step runs (between :meth:`step` enter and exit).
    records : list of dict
    """

    def __init__(self, steps, *, floats=True):
        if not isinstance(floats, bool):
            raise TypeError(f"floats must be a bool, not {type(floats).__name__}")
        self.floats = floats
        self.steps = frozenset(int(s) for s in steps)
        if any(s < 0 for s in self.steps):
            raise ValueError("capture steps must be >= 0")
        self.active = False
        self.records = []
        self._arrays = {}
        self._step = None

    @contextlib.contextmanager
    def step(self, step):
        """Context of one training step (forward and backward); records if ``step`` is chosen."""
        self.active = step in self.steps
        self._step = step
        try:
            yield
        finally:
            self.active = False

    # The observer interface. A quantized layer reports each operation of a recorded step with
    # its own tensors (its native shapes: a convolution's NCHW codes); the capture turns them into
    # the GEMM matrices of the file format through the layer's geometry (``_matrices``,
    # ``_grad_matrix``, ``_dx_from_matrix``), checks the layer's fast result against the matrix
    # GEMM of golden.pipeline (an AssertionError names the layer), and records.

    def forward_gemm(self, layer, *, x_codes, w_codes, acc, x_max, x_signed, x_step, w_step, bias, x_float, w_float):
        """A quantized layer's forward GEMM ``acc`` (bias not included)."""
        xm, wm, accm = layer._matrices(x_codes, w_codes, acc)
        check = pipeline.forward_gemm(xm, wm, x_max)
        if not torch.equal(check.to(torch.float64), accm.to(torch.float64)):
            raise AssertionError(f"{layer.fourbit_name}: fast forward GEMM differs from the matrix GEMM")
        xf, wf, _ = layer._matrices(x_float, w_float, None)
        self.record(
            layer.fourbit_name,
            "fwd",
            kind="int4",
            a=xm,
            b=wm.t(),
            c=check,
            a_signed=x_signed,
            b_signed=True,
            scale_a=x_step,
            scale_b=w_step,
            bias=bias,
            a_float=xf,
            b_float=wf.t(),
        )

    def dx_gemm(self, layer, *, g_codes, w_codes, x_shape, dx, fmt, scale_g, phase, unit_g, w_step, grad_y, w_float):
        """A quantized layer's dX GEMM ``dx`` (shape ``x_shape``) of the FP4 codes ``g_codes``."""
        gm, wm = layer._grad_matrix(g_codes), w_codes.reshape(w_codes.shape[0], -1)
        dxm = pipeline.log_matmul(gm, wm, 7, fmt)
        if not torch.equal(layer._dx_from_matrix(dxm, x_shape).to(torch.float64), dx.to(torch.float64)):
            raise AssertionError(f"{layer.fourbit_name}: fast dX GEMM differs from the matrix GEMM")
        self.record(
            layer.fourbit_name,
            "dx",
            kind="log",
            a=gm,
            b=wm,
            c=dxm,
            b_signed=True,
            scale_g=scale_g,
            phase=phase,
            unit_g=unit_g,
            scale_b=w_step,
            radix=fmt.radix,
            a_float=layer._grad_matrix(grad_y.detach()),
            b_float=w_float.reshape(w_codes.shape[0], -1),
        )

    def dw_gemm(
        self,
        layer,
        *,
        g_codes,
        x_codes,
        w_codes,
        dw,
        x_max,
        x_signed,
        fmt,
        scale_g,
        phase,
        unit_g,
        x_step,
        grad_y,
        x_float,
        w_float,
    ):
        """A quantized layer's dW GEMM ``dw`` of the FP4 codes ``g_codes`` and the input codes."""
        xm, _, _ = layer._matrices(x_codes, w_codes, None)
        g1t = layer._grad_matrix(g_codes).t()
        dwm = pipeline.log_matmul(g1t, xm, x_max, fmt)
        if not torch.equal(dwm.to(torch.float64), dw.reshape(dwm.shape).to(torch.float64)):
            raise AssertionError(f"{layer.fourbit_name}: fast dW GEMM differs from the matrix GEMM")
        self.record(
            layer.fourbit_name,
            "dw",
            kind="log",
            a=g1t,
            b=xm,
            c=dwm,
            b_signed=x_signed,
            scale_g=scale_g,
            phase=phase,
            unit_g=unit_g,
            scale_b=x_step,
            radix=fmt.radix,
            a_float=layer._grad_matrix(grad_y.detach()).t(),
            b_float=layer._matrices(x_float, w_float, None)[0],
        )

    def requant(self, pact, *, acc, m0, shift, out, alpha, acc_unit, producer):
        """A PACT's integer requantization of ``producer``'s accumulator; ``out`` = (codes, value, state)."""
        acc = acc.to(torch.int64)
        check = requantize_pact(acc, m0, shift)
        codes, _, state = out
        fast = (codes.to(torch.uint8), state == kernels.STATE_INSIDE, state == kernels.STATE_SATURATED)
        if not all(torch.equal(a, b) for a, b in zip(check, fast)):
            raise AssertionError(f"{pact.fourbit_name}: fast requantization differs from the integer one")
        self.record(
            pact.fourbit_name,
            "requant",
            kind="requant",
            acc=acc,
            m0=m0,
            shift=shift,
            codes=check[0],
            alpha=alpha,
            acc_unit=acc_unit,
            producer=producer,
        )

    def record(self, layer, op, *, kind, **fields):
        """Store one operation (called by the observer methods above)."""
        arrays, scalars = {}, {}
        for name, value in fields.items():
            if value is None or (name.endswith("_float") and not self.floats):
                continue
            if isinstance(value, torch.Tensor):
                dtype = _DTYPES[(kind, name)]
                array = value.detach().cpu()
                if dtype == np.float32:
                    # a copy: the tensor may be a parameter the optimizer updates in place before save()
                    array = array.to(torch.float32).numpy().copy()
                else:
                    if array.is_floating_point():
                        array = torch.round(array.to(torch.float64))
                    array = array.to(torch.int64).numpy().astype(dtype)
                key = f"{self._step}/{layer}/{op}/{name}"
                self._arrays[key] = array
                arrays[name] = key
            elif isinstance(value, (bool, np.bool_)):
                scalars[name] = bool(value)
            elif isinstance(value, (int, np.integer)):
                scalars[name] = int(value)
            elif isinstance(value, (float, np.floating)):
                scalars[name] = float(value)
            else:
                scalars[name] = str(value)
        self.records.append(
            {"step": self._step, "layer": layer, "op": op, "kind": kind, "arrays": arrays, "scalars": scalars}
        )

    def save(self, path):
        """Write the .npz file atomically (temporary name, then rename)."""
        index = json.dumps({"format": _FORMAT, "version": _VERSION, "records": self.records})
        write_atomically(
            path,
            lambda tmp: np.savez_compressed(tmp, index=np.array(index), **self._arrays),
            suffix=".tmp.npz",
            make_parents=True,
        )


def attach_capture(model, capture):
    """Point every quantized layer and PACT of ``model`` at ``capture`` (or None to detach)."""
    from .layers import PACT, QConv2d, QLinear

    for m in model.modules():
        if isinstance(m, (QLinear, QConv2d, PACT)):
            m.capture = capture


def load_capture(path):
    """Records of a capture file, each with its arrays loaded (``record["a"]`` etc.) and scalars merged."""
    with np.load(path, allow_pickle=False) as f:
        index = json.loads(str(f["index"]))
        if index.get("format") != _FORMAT or index.get("version") != _VERSION:
            raise ValueError(f"{path} is not a {_FORMAT} v{_VERSION} file")
        out = []
        for r in index["records"]:
            rec = {k: r[k] for k in ("step", "layer", "op", "kind")}
            rec.update(r["scalars"])
            rec.update({name: f[key] for name, key in r["arrays"].items()})
            out.append(rec)
    return out


def verify_capture(path):
    """Recompute every record of a capture file with :mod:`golden.reference` and :mod:`golden.requant`.

    Returns the number of records checked; raises AssertionError on the first mismatch.
    """
    from .formats import FORMATS, LogFormat
    from .reference import int_gemm, log_gemm
    from .requant import requantize

    n = 0
    for r in load_capture(path):
        where = f"{path}: step {r['step']} {r['layer']} {r['op']}"
        if r["kind"] == "int4":
            c = int_gemm(
                torch.from_numpy(r["a"]), torch.from_numpy(r["b"]), a_signed=r["a_signed"], b_signed=r["b_signed"]
            )
            assert np.array_equal(c.numpy(), r["c"]), where
        elif r["kind"] == "log":
            fmt = next(f for f in FORMATS.values() if isinstance(f, LogFormat) and f.radix == r["radix"])
            c = log_gemm(torch.from_numpy(r["a"]), torch.from_numpy(r["b"]), x_signed=r["b_signed"], fmt=fmt)
            assert np.array_equal(c.numpy(), r["c"]), where
        elif r["kind"] == "requant":
            codes = requantize(torch.from_numpy(r["acc"]), r["m0"], r["shift"])
            assert np.array_equal(codes.numpy(), r["codes"]), where
        else:
            raise ValueError(f"{where}: unknown record kind {r['kind']!r}")
        n += 1
    return n


def main(argv=None, prog=None):
    """``python -m golden.capture verify FILE.npz [...]``: re-verify capture files against golden.reference."""
    import sys

    from fourbit.util.cli import OneLineParser

    p = OneLineParser(
        prog=prog or "python -m golden.capture", error_prefix=prog or "golden.capture", description=main.__doc__
    )
    prog = p.error_prefix
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser(
        "verify", help="recompute every record with golden.reference / golden.requant", error_prefix=f"{prog} verify"
    )
    v.add_argument("files", nargs="+")
    args = p.parse_args(argv)
    for f in args.files:
        try:
            n = verify_capture(f)
        except (OSError, ValueError, KeyError) as e:
            print(f"{prog}: error: {f}: {e}", file=sys.stderr)
            return 2
        except AssertionError as e:
            print(f"{prog}: error: mismatch at {e}", file=sys.stderr)
            return 1
        print(f"{f}: {n} records verified")
    return 0


if __name__ == "__main__":
    import sys

    from fourbit.util.cli import run_main

    sys.exit(run_main(main, "golden.capture"))
