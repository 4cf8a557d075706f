"""Benchmarks of golden training: accuracy of each recipe against FP32, and training step time.

``python -m golden.bench accuracy --data-dir ../shared/data/mnist --out build/golden/accuracy``
    Trains every (dataset, model, recipe) of the benchmark with the same seed
    and epochs and writes ``accuracy.json`` and ``accuracy.md`` (a Markdown
    table: test top-1 per recipe and its difference to FP32). Each run is
    cached under ``out/runs/`` and reused (``--fresh`` retrains); ``--only
    mnist:mlp`` restricts training to some runs, e.g. to split the benchmark
    over processes.
``python -m golden.bench speed --out build/golden/speed``
    Times training steps (forward, backward, optimizer) of ``fp32`` and
    ``ibm4`` on the same model and batch, interleaved so that machine load
    hits both alike, and writes ``speed.json`` and ``speed.md`` with the
    median step time and the ratio ibm4 / fp32. CPU time of the process is
    measured (``time.process_time``), with ``--threads`` torch threads, so
    that other jobs on a shared machine distort it less than wall time; freed
    heap memory stays in the process (:func:`keep_freed_memory`) unless
    ``--system-malloc``. The five warm-up steps, where ``torch.compile``
    compiles :mod:`golden.kernels`, are not timed; their wall time is in
    ``speed.json`` (``<recipe>_warmup_s``).
``python -m golden.bench gpt --steps 2000 --out build/golden/gpt``
    Trains the character-level GPT (:mod:`golden.lm`) on Tiny Shakespeare
    with ``fp32``, ``ibm4`` and ``luq`` at equal steps and seed and writes
    ``gpt.json`` and ``gpt.md`` (validation loss in nats per character, its
    difference to FP32, training time) and each run's metrics and text
    sample under ``out/runs/``; cached runs are reused (``--fresh``
    retrains), ``--recipes`` trains only some.
"""

import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fourbit.util.cli import OneLineParser, positive_int, run_main
from fourbit.util.files import write_text_atomically

from .data import DataError, load_dataset
from .models import build_model
from .recipes import get_recipe, prepare_model
from .train import keep_freed_memory, train

__all__ = ["ACCURACY_RUNS", "GPT_RECIPES", "SPEED_MODELS", "run_accuracy", "run_speed", "run_gpt", "main"]

#: Recipes of the GPT comparison.
GPT_RECIPES = ("fp32", "ibm4", "luq", "mxfp4", "nvfp4")

#: (dataset, model, epochs, recipes) of the accuracy benchmark.
ACCURACY_RUNS = (
    ("mnist", "mlp", 5, ("fp32", "ibm4", "ibm4-full", "luq", "mxfp4", "nvfp4")),
    ("mnist", "lenet5", 2, ("fp32", "ibm4", "luq", "mxfp4", "nvfp4")),
    ("digits", "mlp", 30, ("fp32", "ibm4", "ibm4-full", "luq", "mxfp4", "nvfp4")),
    ("digits", "lenet5", 100, ("fp32", "ibm4", "ibm4-full", "luq", "mxfp4", "nvfp4")),
    ("digits", "resnet", 30, ("fp32", "ibm4", "luq", "mxfp4", "nvfp4")),
)
ACCURACY_RECIPES = ("fp32", "ibm4", "ibm4-full", "luq", "mxfp4", "nvfp4")


def _write(path, text):
    write_text_atomically(path, text, make_parents=True)


def _run_key(dataset, model, recipe, epochs, seed):
    return f"{dataset}-{model}-{recipe}-e{epochs}-s{seed}"


def run_accuracy(*, data_dir, out, seed=0, runs=ACCURACY_RUNS, only=None, recipes=None, fresh=False):
    """Train every (dataset, model, recipe) of ``runs``; write accuracy.json / accuracy.md under ``out``.

    Each training run's metrics are kept in ``out/runs/<dataset>-<model>-<recipe>-e<E>-s<S>.json``
    and reused by later calls unless ``fresh`` (so the benchmark can be split over processes with
    ``only`` and resumed); ``recipes`` restricts training to those recipes. The table always covers
    every run with a result.
    """
    out = Path(out)
    datasets = {}
    only_recipes = recipes
    for dataset_name, model, epochs, recipes in runs:
        if only and f"{dataset_name}:{model}" not in only:
            continue
        for recipe_name in recipes:
            path = out / "runs" / (_run_key(dataset_name, model, recipe_name, epochs, seed) + ".json")
            if (path.is_file() and not fresh) or (only_recipes and recipe_name not in only_recipes):
                continue
            if dataset_name not in datasets:
                datasets[dataset_name] = load_dataset(dataset_name, None if dataset_name == "digits" else data_dir)
            t0 = time.perf_counter()
            print(f"[bench accuracy] {dataset_name} {model} {recipe_name} ({epochs} epochs) ...", file=sys.stderr)
            m = train(
                dataset=datasets[dataset_name],
                model_name=model,
                recipe=get_recipe(recipe_name),
                epochs=epochs,
                seed=seed,
                log=lambda s: print("  " + s, file=sys.stderr),
            )
            m.pop("step_losses")
            _write(path, json.dumps(m, indent=1) + "\n")
            print(
                f"[bench accuracy]   test top-1 {100 * m['test_accuracy']:.2f}% ({time.perf_counter() - t0:.0f}s)",
                file=sys.stderr,
            )
    return write_accuracy_table(out=out, seed=seed, runs=runs)


def run_capabilities(rows):
    """The distinct ``cpu_capability`` values of the runs in accuracy ``rows``, sorted.

    FP32 arithmetic (the FP32 layers, the float parts of every recipe) rounds
    differently under each vector ISA of torch's CPU kernels, so a table whose
    runs come from more than one does not reproduce on any single machine.
    """
    recipes = [value for row in rows for value in row.values() if isinstance(value, dict)]
    return sorted({run.get("cpu_capability", "unknown") for run in recipes})


def write_accuracy_table(*, out, seed=0, runs=ACCURACY_RUNS):
    """Assemble accuracy.json and accuracy.md from the cached runs; return the rows."""
    out = Path(out)
    rows = []
    for dataset_name, model, epochs, recipes in runs:
        row = {"dataset": dataset_name, "model": model, "epochs": epochs, "seed": seed}
        for r in recipes:
            path = out / "runs" / (_run_key(dataset_name, model, r, epochs, seed) + ".json")
            if path.is_file():
                m = json.loads(path.read_text())
                row[r] = {
                    k: m[k]
                    for k in ("test_accuracy", "train_seconds", "inexact_grad_steps", "step_seconds_median", "threads")
                }
                row[r]["history"] = [h["test_accuracy"] for h in m["history"]]
                # Runs written before the key existed: not known.
                row[r]["cpu_capability"] = m.get("cpu_capability", "unknown")
        if any(r in row for r in recipes):
            rows.append(row)
    capabilities = run_capabilities(rows)
    _write(
        out / "accuracy.json",
        json.dumps({"rows": rows, "torch": torch.__version__, "cpu_capabilities": capabilities}, indent=1) + "\n",
    )
    quant = [r for r in ACCURACY_RECIPES if r != "fp32"]
    lines = [
        "| dataset | model | epochs | fp32 top-1 (%) | "
        + " | ".join(f"{r} (%)" for r in quant)
        + " | "
        + " | ".join(f"{r} - fp32" for r in quant)
        + " |",
        "|---|---|---|---|" + "---|" * (2 * len(quant)),
    ]

    def acc(row, r):
        return f"{100 * row[r]['test_accuracy']:.2f}" if r in row else "-"

    def diff(row, r):
        if r in row and "fp32" in row:
            return f"{100 * (row[r]['test_accuracy'] - row['fp32']['test_accuracy']):+.2f}"
        return "-"

    for row in rows:
        lines.append(
            f"| {row['dataset']} | {row['model']} | {row['epochs']} | {acc(row, 'fp32')} | "
            + " | ".join(acc(row, r) for r in quant)
            + " | "
            + " | ".join(diff(row, r) for r in quant)
            + " |"
        )
    table = "\n".join(lines) + f"\n\n(torch CPU kernels: {', '.join(capabilities) or 'no runs'})\n"
    _write(out / "accuracy.md", table)
    print(table)
    return rows


#: Models of the speed benchmark: the image models on MNIST-shaped batches, a 2048-wide MLP, the GPT.
SPEED_MODELS = ("mlp", "lenet5", "resnet", "mlp2048", "gpt")


def _speed_case(name, batch_size, gen):
    """(constructor, input batch, targets) of one speed-benchmark model."""
    from .models import GPT, MLP

    if name == "gpt":
        vocab, context = 65, 64
        x = torch.randint(0, vocab, (batch_size, context), generator=gen)
        return (lambda: GPT(vocab=vocab, context=context)), x, torch.randint(0, vocab, x.shape, generator=gen)
    x = torch.rand(batch_size, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (batch_size,), generator=gen)
    if name == "mlp2048":
        return (lambda: MLP(input_shape=(1, 28, 28), num_classes=10, hidden=2048, depth=2)), x, y
    return (lambda: build_model(name, input_shape=(1, 28, 28), num_classes=10)), x, y


def _step_fn(model, opt, x, y):
    def step():
        out = model(x)
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def run_speed(
    *,
    out,
    models=SPEED_MODELS,
    batch_size=256,
    gpt_batch_size=12,
    steps=60,
    warmup=5,
    seed=0,
    recipes=("fp32", "ibm4"),
    device="cpu",
    malloc="system",
):
    """Median step time of each recipe on MNIST-shaped batches; write speed.json / speed.md; return rows.

    ``malloc`` only labels the results (``"kept"`` after :func:`keep_freed_memory`).
    """
    from . import kernels

    after, kernels.COMPILE_AFTER_CALLS = kernels.COMPILE_AFTER_CALLS, 0  # compile in the warm-up, not timed
    try:
        return _run_speed(out, models, batch_size, gpt_batch_size, steps, warmup, seed, recipes, device, malloc)
    finally:
        kernels.COMPILE_AFTER_CALLS = after


def _run_speed(out, models, batch_size, gpt_batch_size, steps, warmup, seed, recipes, device, malloc):
    out = Path(out)
    rows = []
    for model_name in models:
        gen = torch.Generator().manual_seed(seed)
        batch = gpt_batch_size if model_name == "gpt" else batch_size
        build, x, y = _speed_case(model_name, batch, gen)
        x, y = x.to(device), y.to(device)
        fns = {}
        for r in recipes:
            torch.manual_seed(seed)
            model = prepare_model(build(), get_recipe(r)).to(device)
            fns[r] = _step_fn(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), x, y)
        times = {r: [] for r in recipes}
        # Wall time of the warm-up steps: torch.compile's compilation (its C++ compiler runs in child
        # processes, outside this process's CPU time) happens there, outside the timed steps.
        warm = dict.fromkeys(recipes, 0.0)
        for i in range(warmup + steps):
            for r in recipes:  # interleaved: load changes hit every recipe alike
                if device != "cpu":
                    torch.cuda.synchronize()
                w0 = time.perf_counter()
                t0 = time.process_time() if device == "cpu" else time.perf_counter()
                fns[r]()
                if device != "cpu":
                    torch.cuda.synchronize()
                t1 = time.process_time() if device == "cpu" else time.perf_counter()
                if i >= warmup:
                    times[r].append(t1 - t0)
                else:
                    warm[r] += time.perf_counter() - w0
        med = {r: sorted(t)[len(t) // 2] for r, t in times.items()}
        row = {
            "model": model_name,
            "batch_size": batch,
            "steps": steps,
            **{f"{r}_ms": 1e3 * med[r] for r in recipes},
            **{f"{r}_warmup_s": warm[r] for r in recipes},
        }
        for r in recipes:
            if r != "fp32":
                row[f"{r}_ratio"] = med[r] / med["fp32"]
        rows.append(row)
        print(f"[bench speed] {row}", file=sys.stderr)
    meta = {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device,
        "clock": "process CPU time" if device == "cpu" else "wall",
        "malloc": malloc,
    }
    _write(out / "speed.json", json.dumps({"rows": rows, **meta}, indent=1) + "\n")
    lines = [
        "| model | batch | "
        + " | ".join(f"{r} step (ms)" for r in recipes)
        + " | "
        + " | ".join(f"{r} / fp32" for r in recipes if r != "fp32")
        + " |",
        "|---|---|" + "---|" * (2 * len(recipes) - 1),
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['batch_size']} | "
            + " | ".join(f"{row[f'{r}_ms']:.2f}" for r in recipes)
            + " | "
            + " | ".join(f"{row[f'{r}_ratio']:.2f}x" for r in recipes if r != "fp32")
            + " |"
        )
    table = "\n".join(lines) + (
        f"\n\n({meta['clock']}, {meta['threads']} torch thread(s), {device}, "
        f"malloc {malloc}, median of {steps} interleaved steps)\n"
    )
    _write(out / "speed.md", table)
    print(table)
    return rows


def run_gpt(*, data_dir, out, steps, seed=0, recipes=GPT_RECIPES, fresh=False, log=print):
    """Train the GPT with each recipe (cached per run); write gpt.json / gpt.md under ``out``; return the rows."""
    from .lm import load_text, train_lm

    out = Path(out)
    dataset = load_text("tinyshakespeare", data_dir)
    for r in recipes:
        path = out / "runs" / f"gpt-{r}-n{steps}-s{seed}.json"
        if path.is_file() and not fresh:
            continue
        log(f"[bench gpt] training {r}, {steps} steps, seed {seed}")
        metrics, sample = train_lm(dataset=dataset, recipe=get_recipe(r), steps=steps, seed=seed, log=log)
        metrics["sample"] = str(path.with_suffix(".txt"))
        _write(path.with_suffix(".txt"), sample)
        _write(path, json.dumps(metrics, indent=1) + "\n")
    rows = []
    for r in GPT_RECIPES:
        path = out / "runs" / f"gpt-{r}-n{steps}-s{seed}.json"
        if path.is_file():
            m = json.loads(path.read_text())
            rows.append({k: m[k] for k in ("recipe", "steps", "seed", "val_loss", "train_loss", "train_seconds")})
    fp32 = next((row["val_loss"] for row in rows if row["recipe"] == "fp32"), None)
    lines = ["| recipe | steps | seed | val loss (nats/char) | vs fp32 | train loss | training time (s) |"]
    lines.append("|---|---|---|---|---|---|---|")
    for row in rows:
        diff = "" if fp32 is None or row["recipe"] == "fp32" else f"{row['val_loss'] - fp32:+.3f}"
        lines.append(
            f"| {row['recipe']} | {row['steps']} | {row['seed']} | {row['val_loss']:.3f} | {diff} | "
            f"{row['train_loss']:.3f} | {row['train_seconds']:.0f} |"
        )
    table = "\n".join(lines) + f"\n\n({torch.get_num_threads()} torch thread(s), torch {torch.__version__})\n"
    _write(out / "gpt.json", json.dumps({"rows": rows}, indent=1) + "\n")
    _write(out / "gpt.md", table)
    print(table)
    return rows


def _subset(prog, option, text, valid):
    """The comma-separated names of ``text``, all in ``valid``; else one error line and ``[]``."""
    names = [name for name in text.split(",") if name]
    if not names or any(name not in valid for name in names):
        print(f"{prog}: error: {option} {text!r}: choose from {', '.join(valid)}", file=sys.stderr)
        return []
    return names


def main(argv=None, prog=None):
    """Entry point of ``python -m golden.bench {accuracy,speed,gpt}``; returns the exit status."""
    p = OneLineParser(
        prog=prog or "python -m golden.bench", error_prefix=prog or "golden.bench", description=__doc__.split("\n\n")[0]
    )
    prog = p.error_prefix
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("accuracy", help="test accuracy of every recipe against fp32", error_prefix=f"{prog} accuracy")
    a.add_argument("--data-dir", required=True, help="MNIST idx directory")
    a.add_argument("--out", default="build/golden/accuracy")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--threads", type=positive_int, default=None)
    a.add_argument(
        "--only",
        action="append",
        metavar="DATASET:MODEL",
        help="train only these runs (repeatable); the table still lists every cached run",
    )
    a.add_argument("--recipes", default=None, help=f"comma-separated subset of {', '.join(ACCURACY_RECIPES)} to train")
    a.add_argument("--fresh", action="store_true", help="retrain runs that have a cached result")
    s = sub.add_parser("speed", help="training step time, ibm4 against fp32", error_prefix=f"{prog} speed")
    s.add_argument("--out", default="build/golden/speed")
    s.add_argument("--batch-size", type=positive_int, default=256)
    s.add_argument("--steps", type=positive_int, default=60)
    s.add_argument(
        "--models", default=",".join(SPEED_MODELS), help=f"comma-separated subset of {', '.join(SPEED_MODELS)}"
    )
    s.add_argument("--threads", type=positive_int, default=1)
    s.add_argument("--device", default="cpu")
    s.add_argument(
        "--system-malloc",
        action="store_true",
        help="leave glibc's heap trimming on (freed tensors page-fault again when re-allocated)",
    )
    g = sub.add_parser("gpt", help="GPT on Tiny Shakespeare: fp32, ibm4, luq, mxfp4, nvfp4", error_prefix=f"{prog} gpt")
    g.add_argument("--data-dir", default=None, help="Tiny Shakespeare directory or input.txt")
    g.add_argument("--out", default="build/golden/gpt")
    g.add_argument("--steps", type=positive_int, default=2000)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=positive_int, default=1)
    g.add_argument("--recipes", default=",".join(GPT_RECIPES), help="comma-separated subset to train")
    g.add_argument("--fresh", action="store_true", help="retrain runs that have a cached result")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        if args.what == "accuracy":
            valid = {f"{d}:{m}" for d, m, _, _ in ACCURACY_RUNS}
            bad = [o for o in args.only or () if o not in valid]
            if bad:
                print(f"{prog}: error: unknown --only {bad[0]!r}; valid: {', '.join(sorted(valid))}", file=sys.stderr)
                return 2
            recipes = None if args.recipes is None else _subset(prog, "--recipes", args.recipes, ACCURACY_RECIPES)
            if recipes == []:
                return 2
            run_accuracy(
                data_dir=args.data_dir,
                out=args.out,
                seed=args.seed,
                only=args.only,
                recipes=recipes,
                fresh=args.fresh,
            )
        elif args.what == "gpt":
            recipes = _subset(prog, "--recipes", args.recipes, GPT_RECIPES)
            if not recipes:
                return 2
            keep_freed_memory()
            run_gpt(
                data_dir=args.data_dir,
                out=args.out,
                steps=args.steps,
                seed=args.seed,
                recipes=recipes,
                fresh=args.fresh,
                log=lambda line: print(line, file=sys.stderr),
            )
        else:
            if args.device.startswith("cuda"):
                if not torch.cuda.is_available():
                    print(f"{prog}: error: --device {args.device}: no CUDA device available", file=sys.stderr)
                    return 2
                torch.backends.cuda.matmul.allow_tf32 = False
                torch.backends.cudnn.allow_tf32 = False
            models = _subset(prog, "--models", args.models, SPEED_MODELS)
            if not models:
                return 2
            malloc = "system" if args.system_malloc or not keep_freed_memory() else "kept"
            run_speed(
                out=args.out,
                models=models,
                batch_size=args.batch_size,
                steps=args.steps,
                device=args.device,
                malloc=malloc,
            )
    except DataError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "golden.bench"))
