"""Energy of one whole training step: the 4-bit training datapath against an FP16 datapath.

What is **measured** (the report's gate-level flow, on the captured step's own tensors):

* the train array's energy per MAC on each GEMM of the step (``fwd``, ``dx``,
  ``dw``: the workload of that op alone, its captured codes), and the FP16
  array's on the same GEMMs' unquantized float operands in binary16;
* per element, the datapath's post-operation units alone (``hw.datapath``):
  the requantizer (forward outputs: bias-added accumulator -> UINT4 code and
  PACT masks), ``grad_post`` (a gradient element: straight-through mask, amax)
  and the FP4 encoder (GradScale exponent, both TPR phases of one word); and
  the FP16 baseline's ``fp16_post`` (forward: PACT clamp, masks and the
  binary32 -> binary16 rounding of the accumulator; backward: mask and rounding).

What is **composed**: the step's energy = sum over blocks of (operations in
the captured step) x (measured energy per operation); the operation counts
come from the captured tensors' shapes (:func:`step_counts`).

What is **not priced**, and given as separate figures: memory traffic (bytes
moved per step, both sides), the FP32 first and last layers the ``ibm4``
recipe keeps (their MACs are counted; an estimate prices them at the FP16
array's per-MAC energy, a lower bound for FP32, on both sides), the host's
FP32 weight update (parameters counted), the bias add, the quantization of
the FP32 layers' outputs, the datapath's idle cycles (array fill and drain,
the FSM, operand-buffer reads).
"""

import json
import os

import numpy as np
import torch

from golden.formats.fp16 import float_to_fp32_bits
from hw.kinds import KINDS, baseline_kind

from . import stimulus

__all__ = [
    "ARRAYS",
    "ELEMENT_UNITS",
    "STEP_UNITS",
    "ELEMENT_WORKLOADS",
    "LOSS_FRACTION_BITS",
    "element_streams",
    "step_counts",
    "compose",
]

#: The training datapath's PE kind (the integer kind that runs both workloads) and the floating-point baseline.
_TRAIN = next(k for k in KINDS.values() if not k.is_float and set(k.workloads) == {"forward", "backward"})
_BASELINE = baseline_kind()
#: Name of the baseline side (the floating-point kind's).
BASELINE = _BASELINE.name
#: The array each side runs its GEMMs on (the training datapath's 4x4, and the baseline's of the same size).
ARRAYS = {"4-bit": f"{_TRAIN.array_module}_4x4", "baseline": f"{_BASELINE.array_module}_4x4"}
#: Per-element units and the workloads they are measured on.
ELEMENT_UNITS = {
    "requantizer": ("requant",),
    "grad_post": ("grad",),
    "fp4_encoder": ("encode",),
    "fp16_post": ("post_fwd", "post_bwd"),
}
#: Every unit the step needs, with the workloads measured for it.
STEP_UNITS = {**{a: ("fwd", "dx", "dw") for a in ARRAYS.values()}, **ELEMENT_UNITS}
ELEMENT_WORKLOADS = tuple(w for ws in ELEMENT_UNITS.values() for w in ws)

#: Fraction bits of a host-written gradient word (the co-simulation's loss-gradient entry, docs/datapath.md).
LOSS_FRACTION_BITS = 45

#: Rows and columns of the arrays (output tile), for the order the post-operations see elements in.
_TILE = 4


def _records(path):
    from golden.capture import load_capture

    try:
        return load_capture(path)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"cannot read capture file {path}: {e}") from None


def _layers(records):
    """Per quantized layer: its fwd, dx, dw and requant records (the requant whose producer it is)."""
    layers = {}
    for r in records:
        if r["op"] in ("fwd", "dx", "dw"):
            layers.setdefault(r["layer"], {})[r["op"]] = r
    for r in records:
        if r["op"] == "requant" and r.get("producer") in layers:
            layers[r["producer"]]["requant"] = r
    return {name: ops for name, ops in layers.items() if {"fwd", "dx", "dw"} <= set(ops)}


def _fixed(values, bits):
    """Signed fixed point with ``bits`` fraction bits, rounded to odd (the host's gradient entry), as int64."""
    scaled = np.asarray(values, np.float64) * 2.0**bits
    t = np.trunc(scaled)
    return (t.astype(np.int64)) | (t != scaled).astype(np.int64)


def _keep_mask(fwd):
    """Straight-through mask of a layer's input: PACT's ``0 < x < alpha`` on the captured float activation
    (alpha taken as the largest captured value, reached where PACT saturated)."""
    a = fwd["a_float"].astype(np.float64)
    return (a > 0) & (a < a.max())


def _column_order(rng, m, n, count):
    """(row, col) of ``count`` elements in the order one array column's edge unit sees them:
    ``_TILE`` consecutive rows of one column per drained tile, tiles at random positions."""
    tiles = -(-count // _TILE)
    i0, j = rng.integers(m, size=tiles), rng.integers(n, size=tiles)
    rows = (i0[:, None] + np.arange(_TILE)) % m
    return rows.reshape(-1)[:count], np.repeat(j, _TILE)[:count]


def _tile_order(rng, m, n, count):
    """(row, col) of ``count`` elements in ``POST_GRAD`` order: the elements of a tile row by row, random tiles."""
    per = _TILE * _TILE
    tiles = -(-count // per)
    i0, j0 = rng.integers(m, size=tiles), rng.integers(n, size=tiles)
    di, dj = np.divmod(np.arange(per), _TILE)
    rows = (i0[:, None] + di) % m
    cols = (j0[:, None] + dj) % n
    return rows.reshape(-1)[:count], cols.reshape(-1)[:count]


def _fp32(values):
    return float_to_fp32_bits(torch.from_numpy(np.asarray(values, np.float32))).numpy().astype(np.int64) & 0xFFFFFFFF


def element_streams(path, count, *, seed=0):
    """Per element workload (:data:`ELEMENT_WORKLOADS`), the port values of ``count`` elements of the captured step.

    * ``requant``: the captured accumulators (bias included) in one column's drain order, with (M0, shift);
    * ``grad``: the dX GEMM's accumulators in ``POST_GRAD`` order with the mask of the layer below;
    * ``encode``: the layer's upstream gradient dY as the host writes it (fixed point, 45 fraction bits,
      round to odd), in memory order, with its amax;
    * ``post_fwd``: the FP16 side's binary32 forward result (float operands, float bias) in drain order
      with PACT's alpha; ``post_bwd``: its binary32 dX (dY loss-scaled as FP16 training does) with the mask.

    Raises
    ------
    ValueError
        The capture lacks a quantized layer with fwd, dx, dw, requant records and float operands.
    """
    layers = _layers(_records(path))
    usable = {n: ops for n, ops in layers.items() if "requant" in ops and "a_float" in ops["fwd"]}
    if not usable:
        raise ValueError(f"capture {path} has no quantized layer with fwd, dx, dw, requant and float operands")
    rng = np.random.default_rng(seed)
    names = sorted(usable)
    share = [count // len(names) + (i < count % len(names)) for i in range(len(names))]
    parts = {w: [] for w in ELEMENT_WORKLOADS}
    for name, n in zip(names, share):
        ops = usable[name]
        fwd, dx, rq = ops["fwd"], ops["dx"], ops["requant"]
        m, nn = rq["acc"].shape
        i, j = _column_order(rng, m, nn, n)
        parts["requant"].append(
            {"total": rq["acc"][i, j], "m0": np.full(n, rq["m0"]), "shift": np.full(n, rq["shift"])}
        )
        bias = fwd["bias"] * fwd["scale_a"] * fwd["scale_b"] if "bias" in fwd else 0.0
        y = fwd["a_float"].astype(np.float64) @ fwd["b_float"].astype(np.float64) + bias
        alpha = _fp32([rq["alpha"]])[0]
        parts["post_fwd"].append(
            {"x": _fp32(y[i, j]), "alpha": np.full(n, alpha), "relu": np.ones(n), "keep": np.ones(n)}
        )
        keep = _keep_mask(fwd)  # M x K_in: the dX GEMM's output positions
        mx, kx = dx["c"].shape
        i, j = _tile_order(rng, mx, kx, n)
        clear = np.zeros(n)
        clear[0] = 1
        parts["grad"].append({"value": dx["c"][i, j], "keep": keep[i, j], "clear": clear})
        dy = dx["a_float"].astype(np.float64)
        dx_float = (dy * stimulus.loss_scale(dy)) @ dx["b_float"].astype(np.float64)
        parts["post_bwd"].append(
            {"x": _fp32(dx_float[i, j]), "alpha": np.zeros(n), "relu": np.zeros(n), "keep": keep[i, j]}
        )
        words = _fixed(dy.reshape(-1), LOSS_FRACTION_BITS)
        start = int(rng.integers(max(1, words.size - n)))
        run = np.resize(words[start : start + n], n)
        parts["encode"].append({"value": run, "amax": np.full(n, int(np.abs(words).max()))})
    return {
        w: {p: np.concatenate([np.asarray(part[p]) for part in ps]).astype(np.int64) for p in ps[0]}
        for w, ps in parts.items()
    }


def _fp32_layers(path, batch):
    """MACs per op of the FP32 weight layers the recipe kept, from the capture's metrics file (``.json`` beside it)."""
    meta = os.path.splitext(path)[0] + ".json"
    try:
        with open(meta) as f:
            metrics = json.load(f)
        kept = [row[0] for row in metrics.get("fp32_modules", [])]
        model_name, dataset = metrics["model"], metrics["dataset"]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None, f"no training metrics beside the capture ({meta}): FP32 layers not counted"
    try:
        from golden.data import load_dataset
        from golden.models import build_model

        data = load_dataset(dataset)
        model = build_model(model_name, input_shape=data.input_shape, num_classes=data.num_classes)
    except Exception as e:  # a dataset not present here, an unknown model: say so, do not guess
        return None, f"FP32 layers not counted ({model_name} on {dataset}: {str(e).splitlines()[0]})"
    modules = dict(model.named_modules())
    first = next(name for name, mod in model.named_modules() if isinstance(mod, torch.nn.Linear | torch.nn.Conv2d))
    layers = []
    for name in kept:
        mod = modules.get(name)
        if not isinstance(mod, torch.nn.Linear):
            return None, f"FP32 layer {name} is not a Linear layer: not counted"
        macs = batch * mod.in_features * mod.out_features
        layers.append(
            {
                "layer": name,
                "shape": f"{batch}x{mod.in_features}x{mod.out_features}",
                "fwd": macs,
                "dx": 0 if name == first else macs,  # the first layer needs no input gradient
                "dw": macs,
                "params": mod.weight.numel() + (mod.bias.numel() if mod.bias is not None else 0),
            }
        )
    return layers, None


def step_counts(path):
    """Operations of the captured training step (every quantized layer), from the captured tensors' shapes.

    Returns
    -------
    dict
        ``gemms``: per layer and op, ``M x K x N`` and MACs; ``elements``: per
        element workload, how many times the step runs it; ``fp32_layers`` (or
        None, with ``note``); ``bytes``: memory traffic per step, both sides;
        ``params``: parameters the host updates.
    """
    records = _records(path)
    layers = _layers(records)
    if not layers:
        raise ValueError(f"capture {path} holds no quantized layer with fwd, dx and dw records")
    gemms = []
    elements = dict.fromkeys(ELEMENT_WORKLOADS, 0)
    traffic = {"4-bit": 0.0, "baseline": 0.0}
    batch = None
    params = 0
    for name in sorted(layers):
        ops = layers[name]
        for op in ("fwd", "dx", "dw"):
            m, k = ops[op]["a"].shape
            n = ops[op]["b"].shape[1]
            gemms.append({"layer": name, "op": op, "shape": f"{m}x{k}x{n}", "macs": m * k * n, "outputs": m * n})
        m_out = ops["fwd"]["c"].size  # forward outputs: requantized / rounded
        dy = ops["dx"]["a"].size  # the layer's upstream gradient: masked, encoded / rounded
        dxs = ops["dx"]["c"].size  # its input gradient: masked (the layer below's dY)
        elements["requant"] += m_out
        elements["post_fwd"] += m_out
        elements["grad"] += dy + dxs
        elements["post_bwd"] += dy + dxs
        elements["encode"] += dy
        batch = ops["fwd"]["a"].shape[0]
        w = ops["fwd"]["b"].size
        params += w + ops["fwd"]["c"].shape[1]
        # Compulsory traffic, each tensor once: operands in, results out (bytes).
        x_in = ops["fwd"]["a"].size
        # 4-bit: X, W codes (0.5 B) in; Y codes out (0.5 B); dY words (6 B) written and read by the
        # encoder, both phases' codes (1 B) written, one phase (0.5 B) read by dX and one by dW; dX
        # words (6 B) out; dW accumulators (5 B) to the host.
        traffic["4-bit"] += 0.5 * (x_in + w) + 0.5 * m_out + (6 + 6 + 1 + 0.5 + 0.5) * dy + 6 * dxs + 5 * w
        # FP16: X, W (2 B) in; Y (2 B) out; dY (2 B) written, read by dX and by dW; dX (2 B) out;
        # dW (4 B, FP32) to the host.
        traffic["baseline"] += 2 * (x_in + w) + 2 * m_out + 2 * 3 * dy + 2 * dxs + 4 * w
    fp32, note = _fp32_layers(path, batch)
    if fp32:
        params += sum(layer["params"] for layer in fp32)
    return {"gemms": gemms, "elements": elements, "fp32_layers": fp32, "note": note, "bytes": traffic, "params": params}


def _per_op(entry, key, workload):
    e = (entry or {}).get(key, {}).get(workload)
    return e if e else None


_PARTS = ("registers_pj", "arithmetic_pj", "control_pj")


def _add(total, energy, times):
    for part in _PARTS:
        total[part] += energy[part] * times
    total["total_pj"] += energy["pj_per_mac"] * times


def compose(units, counts, *, glitch=False):
    """The step's energy on both sides from measured per-operation energies and the step's counts.

    Parameters
    ----------
    units : dict
        Report entries of :data:`STEP_UNITS` (their ``step_energy`` / ``step_energy_glitch``).
    counts : dict
        :func:`step_counts`.
    glitch : bool
        Compose the glitch-aware figures instead of the zero-delay ones.

    Returns
    -------
    dict or None
        ``blocks`` (rows: side, block, operations, pJ per operation, energy
        in uJ and its registers / arithmetic / control split), per side the
        total and the GEMM share, ``ratio``, and the FP32-layer estimate;
        None when a measurement is missing (``missing`` lists them).
    """
    key = "step_energy_glitch" if glitch else "step_energy"
    plan = {
        "4-bit": [(ARRAYS["4-bit"], op, f"GEMM {op} (train array)") for op in ("fwd", "dx", "dw")]
        + [
            ("requantizer", "requant", "requantizer (forward outputs)"),
            ("grad_post", "grad", "mask + amax (dY and dX elements)"),
            ("fp4_encoder", "encode", "FP4 encoder, both phases (dY words)"),
        ],
        "baseline": [(ARRAYS["baseline"], op, f"GEMM {op} ({BASELINE} array)") for op in ("fwd", "dx", "dw")]
        + [
            ("fp16_post", "post_fwd", "PACT clamp + masks + FP16 rounding (forward outputs)"),
            ("fp16_post", "post_bwd", "mask + FP16 rounding (dY and dX elements)"),
        ],
    }
    macs = {op: sum(g["macs"] for g in counts["gemms"] if g["op"] == op) for op in ("fwd", "dx", "dw")}
    rows, missing, sides = [], [], {}
    for side, blocks in plan.items():
        total = dict.fromkeys((*_PARTS, "total_pj"), 0.0)
        gemm = 0.0
        for unit, workload, label in blocks:
            energy = _per_op(units.get(unit), key, workload)
            times = macs[workload] if workload in macs else counts["elements"][workload]
            if energy is None:
                missing.append(f"{unit} {workload}")
                continue
            _add(total, energy, times)
            if workload in macs:
                gemm += energy["pj_per_mac"] * times
            rows.append(
                {
                    "side": side,
                    "block": label,
                    "unit": unit,
                    "workload": workload,
                    "operations": int(times),
                    "pj_per_op": energy["pj_per_mac"],
                    "uj": energy["pj_per_mac"] * times * 1e-6,
                    **{p.replace("_pj", "_uj"): energy[p] * times * 1e-6 for p in _PARTS},
                }
            )
        sides[side] = {
            "uj": total["total_pj"] * 1e-6,
            **{p.replace("_pj", "_uj"): total[p] * 1e-6 for p in _PARTS},
            "gemm_share": gemm / total["total_pj"] if total["total_pj"] else None,
        }
    if missing:
        return {"missing": missing, "blocks": rows}
    result = {
        "blocks": rows,
        "sides": sides,
        "ratio": sides["baseline"]["uj"] / sides["4-bit"]["uj"],
        "macs": macs,
        "missing": [],
    }
    fp32 = counts.get("fp32_layers")
    if fp32:
        fp16_array = units[ARRAYS["baseline"]][key]
        per_mac = float(np.mean([fp16_array[op]["pj_per_mac"] for op in ("fwd", "dx", "dw")]))
        fp32_macs = sum(layer[op] for layer in fp32 for op in ("fwd", "dx", "dw"))
        extra = fp32_macs * per_mac * 1e-6
        result["fp32_layers"] = {
            "macs": fp32_macs,
            "pj_per_mac_lower_bound": per_mac,
            "uj": extra,
            "ratio_with_them": (sides["baseline"]["uj"] + extra) / (sides["4-bit"]["uj"] + extra),
            "share_of_4bit_step": extra / (sides["4-bit"]["uj"] + extra),
        }
    return result
