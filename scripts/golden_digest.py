"""Raw-bit digests of a few training steps of every golden recipe, to prove a change bit-identical.

Trains the MLP (256 and 2048 wide), LeNet-5, the small ResNet and the GPT for a few SGD steps on
fixed random batches under ``ibm4``, ``ibm4-full``, ``ibm4-notpr``, ``luq`` and two rounding
variants, and writes, per step, the SHA-256 of the raw bytes of the loss, of every gradient and of
every parameter after the update (plus each layer's counters). Run it on two checkouts and compare::

    cd OLD && PYTHONPATH=. .venv/bin/python /path/to/scripts/golden_digest.py --out old.json
    cd NEW && PYTHONPATH=. .venv/bin/python scripts/golden_digest.py --out new.json --compare old.json

``--compare`` exits 1, listing the first differing entries, unless every digest is equal.
"""

import argparse
import hashlib
import json
import sys
import time

import torch
import torch.nn.functional as F

CASES = (
    # (model, recipe, recipe options, batch)
    ("mlp", "ibm4", {}, 64),
    ("mlp", "ibm4-full", {}, 64),
    ("mlp", "ibm4-notpr", {}, 64),
    ("mlp", "luq", {}, 64),
    ("mlp", "ibm4", {"ties": "zero"}, 64),
    ("mlp", "ibm4", {"rounding": "log"}, 64),
    ("mlp2048", "ibm4", {}, 32),
    ("lenet5", "ibm4", {}, 32),
    ("lenet5", "ibm4-full", {}, 32),
    ("lenet5", "ibm4-notpr", {}, 32),
    ("lenet5", "luq", {}, 32),
    ("lenet5", "ibm4", {"ties": "zero"}, 32),
    ("resnet", "ibm4", {}, 16),
    ("resnet", "ibm4-full", {}, 16),
    ("resnet", "luq", {}, 16),
    ("gpt", "ibm4", {}, 4),
    ("gpt", "ibm4-notpr", {}, 4),
    ("gpt", "luq", {}, 4),
)


def _digest(t):
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:24]


def run_case(model_name, recipe_name, options, batch, steps):
    from golden import bench
    from golden.layers import quantized_layers
    from golden.recipes import get_recipe, prepare_model

    gen = torch.Generator().manual_seed(0)
    build, _, _ = bench._speed_case(model_name, batch, gen)
    torch.manual_seed(0)
    model = prepare_model(build(), get_recipe(recipe_name, {k: str(v) for k, v in options.items()}))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    out = []
    for _ in range(steps):
        _, x, y = bench._speed_case(model_name, batch, gen)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        rec = {"loss": _digest(loss), "logits": _digest(logits)}
        for name, p in model.named_parameters():
            rec[f"grad:{name}"] = None if p.grad is None else _digest(p.grad)
        opt.step()
        for name, p in model.named_parameters():
            rec[f"param:{name}"] = _digest(p)
        out.append(rec)
    counters = {
        layer.fourbit_name: {"inexact": layer.inexact_grad_steps, "paths": dict(sorted(layer.input_paths.items()))}
        for layer in quantized_layers(model)
    }
    return {"steps": out, "counters": counters}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--only", default=None, help="comma-separated models")
    p.add_argument("--compare", default=None, help="digest file to compare with")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from golden import kernels

    # Compile from the first call, down to the MLP's 64 x 256 activations: the compiled kernels are checked too.
    kernels.COMPILE_AFTER_CALLS, kernels.COMPILE_MIN_NUMEL = 0, 1 << 14
    only = None if args.only is None else set(args.only.split(","))
    result = {}
    for model_name, recipe, options, batch in CASES:
        if only is not None and model_name not in only:
            continue
        key = f"{model_name}/{recipe}/{json.dumps(options, sort_keys=True)}/b{batch}"
        t0 = time.perf_counter()
        result[key] = run_case(model_name, recipe, options, batch, args.steps)
        print(f"{key}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    if args.compare is None:
        return 0
    with open(args.compare) as f:
        ref = json.load(f)
    diffs = []
    for key, case in result.items():
        if key not in ref:
            diffs.append(f"{key}: not in {args.compare}")
            continue
        if case["counters"] != ref[key]["counters"]:
            diffs.append(f"{key}: counters {case['counters']} != {ref[key]['counters']}")
        for step, (a, b) in enumerate(zip(case["steps"], ref[key]["steps"], strict=True)):
            diffs += [f"{key} step {step} {k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    print(f"{len(result)} cases compared, {len(diffs)} differences", file=sys.stderr)
    for d in diffs[:40]:
        print("  " + d, file=sys.stderr)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
