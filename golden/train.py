"""Command line: train a model with a recipe and write metrics, a plot, checkpoints and tensor captures.

``python -m golden.train --dataset {digits,mnist,fashion-mnist,cifar10} [--data-dir DIR]
--model {mlp,lenet5,resnet} --recipe {fp32,ibm4,ibm4-notpr,luq} --epochs E --seed S --metrics FILE.json``

``python -m golden.train --dataset tinyshakespeare [--data-dir DIR|FILE] --model gpt --recipe R
--max-steps N --seed S --metrics FILE.json`` trains a character-level GPT (:mod:`golden.lm`) and
writes ``val_loss`` (nats per character) and a generated text sample (``--sample``, default the
metrics path with ``.txt``).

Training is SGD with momentum on FP32 master weights, cross-entropy loss,
cosine learning-rate decay over all steps, mini-batches drawn from a
``torch.Generator`` seeded with ``--seed``: the same seed, thread count and
device give the same metrics (except wall-clock times). See ``--help`` and
docs/golden.md.
"""

import argparse
import ctypes
import dataclasses
import functools
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fourbit.util.cli import OneLineParser, check_output_file, non_negative_int, positive_int, run_main
from fourbit.util.files import write_atomically, write_files_atomically, write_text_atomically

from .data import DATASETS, DataError, load_dataset
from .layers import QuantConfig
from .lm import TEXT_DATASETS, load_text, train_lm
from .models import MODELS, build_model
from .recipes import RECIPES, get_recipe, prepare_model

__all__ = ["OPTIMIZERS", "TrainingDiverged", "train", "main"]


class TrainingDiverged(RuntimeError):
    """The loss (or a PACT clip) became non-finite; the message names the last good checkpoint."""


class _Progress:
    """A one-line progress bar on stderr: step, loss and throughput."""

    def __init__(self, enabled, total, label):
        self.enabled, self.total, self.label = enabled, total, label
        self.start = self.last = time.perf_counter()

    def update(self, done, loss, samples):
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and done < self.total):
            return
        self.last = now
        width = 24
        filled = int(width * done / max(self.total, 1))
        rate = samples / max(now - self.start, 1e-9)
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
            f"loss {loss:.4f} {rate:,.0f} img/s"
        )
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")


def _evaluate(model, x, y, batch_size):
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            out = model(x[i : i + batch_size])
            loss_sum += float(F.cross_entropy(out, y[i : i + batch_size], reduction="sum"))
            correct += int((out.argmax(1) == y[i : i + batch_size]).sum())
    model.train()
    return loss_sum / len(y), correct / len(y)


def _plot(history, step_losses, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [h["epoch"] for h in history]
    if step_losses:
        steps_per_epoch = max(1, len(step_losses) / max(len(history), 1))
        ax_l.plot(
            [(i + 1) / steps_per_epoch for i in range(len(step_losses))],
            step_losses,
            lw=0.5,
            alpha=0.5,
            label="train (step)",
        )
    ax_l.plot(epochs, [h["train_loss"] for h in history], "o-", label="train (epoch mean)")
    ax_l.plot(epochs, [h["test_loss"] for h in history], "s-", label="test")
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("cross-entropy loss")
    ax_l.set_yscale("log")
    ax_l.legend()
    ax_a.plot(epochs, [100 * h["train_accuracy"] for h in history], "o-", label="train")
    ax_a.plot(epochs, [100 * h["test_accuracy"] for h in history], "s-", label="test")
    ax_a.set_xlabel("epoch")
    ax_a.set_ylabel("top-1 accuracy (%)")
    ax_a.legend()
    fig.suptitle(title)
    fig.tight_layout()
    write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100), make_parents=True)
    plt.close(fig)


OPTIMIZERS = ("sgd", "adam")


def _kept(checkpoint):
    if checkpoint and Path(checkpoint).is_file():
        return f"last good checkpoint kept: {checkpoint}"
    return "no checkpoint written yet"


def train(
    *,
    dataset,
    model_name,
    recipe,
    epochs,
    seed,
    batch_size=128,
    lr=0.05,
    momentum=0.9,
    weight_decay=5e-4,
    optimizer="sgd",
    device="cpu",
    checkpoint=None,
    resume=False,
    capture=None,
    max_steps=None,
    progress=False,
    log=print,
):
    """Train and return the metrics dict (see :func:`main` for the meaning of the arguments).

    Parameters
    ----------
    dataset : golden.data.Dataset
    model_name : str
    recipe : golden.recipes.Recipe
    epochs : int
    seed : int
    checkpoint : path or None
        Written atomically after every epoch; on divergence the last good one is kept.
    resume : bool
        Continue from ``checkpoint``.
    capture : golden.capture.TensorCapture or None
    max_steps : int or None
        Stop after this many steps in total (quick runs and tests).
    optimizer : {"sgd", "adam"}
        SGD with momentum (default) or Adam (``momentum`` is then beta1), on the FP32 master weights.
    """
    from .capture import attach_capture
    from .layers import describe_fp32, fp32_modules, quantized_layers

    torch.manual_seed(seed)
    model = prepare_model(
        build_model(model_name, input_shape=dataset.input_shape, num_classes=dataset.num_classes), recipe
    ).to(device)
    fp32 = fp32_modules(model) if recipe.quant is not None else []
    if recipe.quant is not None:
        log(f"recipe {recipe.name}: {len(quantized_layers(model))} quantized layers; in float:")
        for line in describe_fp32(fp32):
            log(f"  {line}")
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(momentum, 0.999), weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    n_train = len(dataset.train_y)
    steps_per_epoch = math.ceil(n_train / batch_size)
    total_steps = steps_per_epoch * epochs
    if max_steps is not None:
        total_steps = min(total_steps, max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / max(total_steps, 1)))
    )
    gen = torch.Generator().manual_seed(seed)
    history, step_losses, step_seconds = [], [], []
    start_epoch, step = 0, 0
    if resume:
        if checkpoint is None or not Path(checkpoint).is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint}")
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        history, step_losses = state["history"], state["step_losses"]
        start_epoch, step = state["epoch"], state["step"]
    if capture is not None:
        attach_capture(model, capture)

    train_x, train_y = dataset.train_x.to(device), dataset.train_y.to(device)
    test_x, test_y = dataset.test_x.to(device), dataset.test_y.to(device)
    train_seconds = 0.0
    model.train()
    for epoch in range(start_epoch, epochs):
        if max_steps is not None and step >= max_steps:
            break
        t_epoch = time.perf_counter()
        perm = torch.randperm(n_train, generator=gen).to(device)
        bar = _Progress(progress, steps_per_epoch, f"epoch {epoch + 1}/{epochs}")
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(steps_per_epoch):
            if max_steps is not None and step >= max_steps:
                break
            idx = perm[i * batch_size : (i + 1) * batch_size]
            xb, yb = train_x[idx], train_y[idx]
            t0 = time.perf_counter()
            try:
                if capture is not None:
                    with capture.step(step):
                        out = model(xb)
                        loss = F.cross_entropy(out, yb)
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                else:
                    out = model(xb)
                    loss = F.cross_entropy(out, yb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise FloatingPointError(f"non-finite loss {loss_value}")
            except FloatingPointError as e:
                bar.close()
                raise TrainingDiverged(
                    f"training diverged at epoch {epoch + 1}, step {step}: {e}; {_kept(checkpoint)}"
                ) from None
            opt.step()
            sched.step()
            step_seconds.append(time.perf_counter() - t0)
            step += 1
            loss_sum += loss_value * len(yb)
            correct += int((out.argmax(1) == yb).sum())
            seen += len(yb)
            step_losses.append(loss_value)
            bar.update(i + 1, loss_value, seen)
        bar.close()
        epoch_train = time.perf_counter() - t_epoch
        train_seconds += epoch_train
        try:
            bad = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
            if bad:
                raise FloatingPointError(f"non-finite parameters {', '.join(bad[:3])}")
            test_loss, test_acc = _evaluate(model, test_x, test_y, 1000)
            if not math.isfinite(test_loss):
                raise FloatingPointError(f"non-finite test loss {test_loss}")
        except FloatingPointError as e:
            raise TrainingDiverged(f"training diverged in epoch {epoch + 1}: {e}; {_kept(checkpoint)}") from None
        history.append(
            {
                "epoch": epoch + 1,
                "steps": step,
                "train_loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1),
                "test_loss": test_loss,
                "test_accuracy": test_acc,
                "seconds": epoch_train,
            }
        )
        log(
            f"epoch {epoch + 1}/{epochs}: train loss {history[-1]['train_loss']:.4f} "
            f"acc {100 * history[-1]['train_accuracy']:.2f}% | test loss {test_loss:.4f} "
            f"acc {100 * test_acc:.2f}% | {epoch_train:.1f}s"
        )
        if checkpoint is not None:
            state = {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "generator": gen.get_state(),
                "history": history,
                "step_losses": step_losses,
                "epoch": epoch + 1,
                "step": step,
                "model_name": model_name,
                "recipe": recipe.name,
                "seed": seed,
            }
            write_atomically(checkpoint, functools.partial(torch.save, state), make_parents=True)

    if not history:
        test_loss, test_acc = _evaluate(model, test_x, test_y, 1000)
        history.append(
            {
                "epoch": 0,
                "steps": step,
                "train_loss": float("nan"),
                "train_accuracy": float("nan"),
                "test_loss": test_loss,
                "test_accuracy": test_acc,
                "seconds": 0.0,
            }
        )
    qlayers = quantized_layers(model)
    steps_sorted = sorted(step_seconds[1:] or step_seconds)
    return {
        "test_accuracy": history[-1]["test_accuracy"],
        "test_loss": history[-1]["test_loss"],
        "train_seconds": train_seconds,
        "recipe": recipe.name,
        "recipe_config": _recipe_dict(recipe),
        "model": model_name,
        "dataset": dataset.name,
        "seed": seed,
        "epochs": epochs,
        "steps": step,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "step_seconds_median": steps_sorted[len(steps_sorted) // 2] if steps_sorted else None,
        "quantized_layers": [m.fourbit_name for m in qlayers],
        "fp32_modules": [list(row) for row in fp32],
        "input_paths": {m.fourbit_name: dict(m.input_paths) for m in qlayers},
        "inexact_grad_steps": sum(m.inexact_grad_steps for m in qlayers),
        "history": history,
        "step_losses": step_losses,
        "device": str(device),
        "threads": torch.get_num_threads(),
        # The vector ISA of torch's CPU kernels (AVX2, AVX512, ...): FP32 reductions round
        # differently under each, so FP32 parts of a run reproduce bit for bit only on the same one.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
    }


def _recipe_dict(recipe):
    if recipe.quant is None:
        return None
    d = {f.name: getattr(recipe.quant, f.name) for f in dataclasses.fields(recipe.quant)}
    if "grad_format" in d:  # a QuantConfig (a BlockConfig holds plain values only)
        d["grad_format"] = recipe.quant.grad_format.name
        d["sawb_c"] = list(d["sawb_c"])
    return d


def _parser(prog=None):
    p = OneLineParser(
        prog=prog or "python -m golden.train",
        error_prefix=prog or "golden.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, metavar="NAME", help=f"one of: {', '.join([*DATASETS, *TEXT_DATASETS])}")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="directory with the data set files (not for digits); for a text set also the text file itself",
    )
    p.add_argument("--model", required=True, metavar="NAME", help=f"one of: {', '.join(MODELS)}")
    p.add_argument("--recipe", required=True, metavar="NAME", help=f"one of: {', '.join(RECIPES)}")
    p.add_argument(
        "--recipe-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a QuantConfig field of the recipe (repeatable), e.g. tpr=0, "
        "sawb_c=12.68,12.80, rounding=stochastic, keep_first=1; for mxfp4/nvfp4 a BlockConfig field: "
        "grad_rounding=stochastic, hadamard=1, weight_tiles=0",
    )
    p.add_argument("--epochs", type=positive_int, help="training epochs (>= 1; image data sets, required there)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--metrics", required=True, metavar="FILE.json", help="metrics JSON to write")
    p.add_argument("--plot", metavar="FILE.png", help="loss/accuracy plot (default: metrics path with .png)")
    p.add_argument("--batch-size", type=positive_int, help="default 128 (images), 12 (text)")
    p.add_argument("--lr", type=float, help="default 0.05 (images, SGD), 1e-3 (text, AdamW)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, help="default 5e-4 (images), 0.1 (text)")
    p.add_argument(
        "--optimizer",
        default="sgd",
        metavar="NAME",
        help=f"one of: {', '.join(OPTIMIZERS)} (default sgd; adam uses --momentum as beta1)",
    )
    p.add_argument(
        "--max-steps", type=non_negative_int, help="stop after this many steps in total (text: the steps, required)"
    )
    lm = p.add_argument_group("text data sets (--model gpt)")
    lm.add_argument("--context", type=positive_int, default=64, help="characters per window (default 64)")
    lm.add_argument("--layers", type=positive_int, default=4, help="transformer blocks (default 4)")
    lm.add_argument("--heads", type=positive_int, default=4, help="attention heads (default 4)")
    lm.add_argument("--dim", type=positive_int, default=128, help="embedding width (default 128)")
    lm.add_argument("--dropout", type=float, default=0.0, help="dropout probability (default 0)")
    lm.add_argument("--warmup", type=non_negative_int, default=100, help="linear warm-up steps (default 100)")
    lm.add_argument("--eval-interval", type=positive_int, default=250, help="steps between evaluations")
    lm.add_argument("--eval-batches", type=positive_int, default=20, help="windows per evaluation, in batches")
    lm.add_argument("--text-limit", type=positive_int, help="use only the first N characters (quick runs)")
    lm.add_argument("--sample", metavar="FILE.txt", help="generated text (default: metrics path with .txt)")
    lm.add_argument("--sample-chars", type=non_negative_int, default=500, help="characters to generate")
    p.add_argument("--checkpoint", metavar="FILE.pt", help="checkpoint written after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--capture", metavar="FILE.npz", help="record the integer GEMMs of --capture-steps")
    p.add_argument(
        "--capture-steps",
        default="0",
        metavar="N[,N...]",
        help="0-based global steps (default 0), each below the run's number of steps",
    )
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="progress bar on stderr (auto: when stderr is a terminal)",
    )
    return p


#: Prefix of this tool's error and warning lines (``fourbit train`` when run as that).
_prog = "golden.train"


def _fail(msg, code=2):
    print(f"{_prog}: error: {msg}", file=sys.stderr)
    return code


def _parse_capture_steps(text):
    """``"0,5"`` -> ``[0, 5]``; raises ValueError with the one-line reason."""
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--capture-steps {text!r}: expected comma-separated integers") from None
    negative = [step for step in steps if step < 0]
    if negative:
        raise ValueError(f"--capture-steps {text!r}: steps are 0-based, not {negative[0]}")
    return steps


def planned_steps(n_train, batch_size, epochs, max_steps):
    """The number of steps :func:`train` runs: ``epochs`` epochs of ``ceil(n_train / batch_size)``, at most
    ``max_steps``."""
    total = math.ceil(n_train / batch_size) * epochs
    return total if max_steps is None else min(total, max_steps)


def keep_freed_memory():
    """Keep freed heap memory in this process (glibc ``mallopt``); True if set.

    PyTorch's CPU allocator does not cache: every temporary tensor is a
    malloc/free, and glibc serves big blocks by mmap and trims the heap, so a
    re-allocated temporary page-faults afresh on every step. Raising the mmap
    and trim thresholds (what the glibc tunables ``MALLOC_MMAP_THRESHOLD_`` /
    ``MALLOC_TRIM_THRESHOLD_`` do; Intel's PyTorch CPU guide swaps in jemalloc
    or tcmalloc for the same reason) keeps those pages mapped, for every recipe
    alike.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def main(argv=None, prog=None):
    """Entry point of ``python -m golden.train``; returns the exit status."""
    global _prog
    args = _parser(prog).parse_args(argv)
    _prog = prog or "golden.train"
    keep_freed_memory()  # the CLI trains as fast as `make bench-train` measures
    if args.model not in MODELS:
        return _fail(f"unknown model {args.model!r}; valid: {', '.join(MODELS)}")
    if args.dataset not in DATASETS and args.dataset not in TEXT_DATASETS:
        return _fail(f"unknown dataset {args.dataset!r}; valid: {', '.join([*DATASETS, *TEXT_DATASETS])}")
    text = args.dataset in TEXT_DATASETS
    if text != (args.model == "gpt"):
        return _fail(
            f"--model gpt trains on a text data set ({', '.join(TEXT_DATASETS)}) and the image models on an "
            f"image data set ({', '.join(DATASETS)}); got --model {args.model} --dataset {args.dataset}"
        )
    if text:
        return _main_text(args, list(sys.argv[1:] if argv is None else argv))
    if args.epochs is None:
        return _fail("--epochs is required for an image data set")
    args.batch_size = 128 if args.batch_size is None else args.batch_size
    args.lr = 0.05 if args.lr is None else args.lr
    args.weight_decay = 5e-4 if args.weight_decay is None else args.weight_decay
    if args.optimizer not in OPTIMIZERS:
        return _fail(f"unknown optimizer {args.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    options = {}
    for item in args.recipe_opt:
        key, sep, value = item.partition("=")
        if not sep:
            return _fail(f"--recipe-opt {item!r}: expected KEY=VALUE")
        options[key.strip()] = value.strip()
    try:
        recipe = get_recipe(args.recipe, options)
    except (ValueError, TypeError) as e:
        return _fail(str(e))
    try:
        capture_steps = _parse_capture_steps(args.capture_steps)
    except ValueError as e:
        return _fail(str(e))
    # Output paths are checked now, not after the whole run.
    for option, path in (("--metrics", args.metrics), ("--plot", args.plot), ("--capture", args.capture)):
        problem = path and check_output_file(path, option, make_parents=True)
        if problem:
            return _fail(problem)
    if args.resume and not args.checkpoint:
        return _fail("--resume needs --checkpoint")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return _fail(f"--device {device}: no CUDA device available")
        # TF32 would round the integer-valued matmuls: keep them exact.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    elif device != "cpu":
        return _fail(f"unknown device {device!r}; valid: cpu, cuda, cuda:N, auto")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.data_dir and args.dataset == "digits":
        # scikit-learn ships digits: a --data-dir would be ignored without a word.
        print(f"{_prog}: warning: --data-dir does not apply to --dataset digits (ignored)", file=sys.stderr)
    try:
        dataset = load_dataset(args.dataset, args.data_dir)
    except DataError as e:
        return _fail(str(e))
    capture = None
    if args.capture:
        if recipe.quant is None:
            return _fail("--capture needs a quantized recipe (fp32 has no integer GEMMs)")
        if not isinstance(recipe.quant, QuantConfig):
            return _fail(f"--capture records the int4 and log GEMMs of ibm4-style recipes; {recipe.name} has none")
        steps = planned_steps(len(dataset.train_y), args.batch_size, args.epochs, args.max_steps)
        beyond = [step for step in capture_steps if step >= steps]
        if beyond:
            return _fail(
                f"--capture-steps {beyond[0]} is beyond the run: it has {steps} steps (0..{steps - 1}; "
                f"{len(dataset.train_y)} samples / batch {args.batch_size} x {args.epochs} epochs"
                + (f", --max-steps {args.max_steps}" if args.max_steps is not None else "")
                + ")"
            )
        from .capture import TensorCapture

        capture = TensorCapture(capture_steps)
    progress = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    print(
        f"training {args.model} on {args.dataset} ({len(dataset.train_y)} train / {len(dataset.test_y)} test) "
        f"with recipe {recipe.name}, {args.epochs} epochs, seed {args.seed}, device {device}",
        file=sys.stderr,
    )
    try:
        metrics = train(
            dataset=dataset,
            model_name=args.model,
            recipe=recipe,
            epochs=args.epochs,
            seed=args.seed,
            batch_size=args.batch_size,
            lr=args.lr,
            momentum=args.momentum,
            weight_decay=args.weight_decay,
            optimizer=args.optimizer,
            device=device,
            checkpoint=args.checkpoint,
            resume=args.resume,
            capture=capture,
            max_steps=args.max_steps,
            progress=progress,
            log=lambda s: print(s, file=sys.stderr),
        )
    except TrainingDiverged as e:
        return _fail(str(e), 3)
    except (FileNotFoundError, RuntimeError, ValueError) as e:
        return _fail(str(e))
    metrics["command"] = ["python", "-m", "golden.train", *list(sys.argv[1:] if argv is None else argv)]
    write_text_atomically(args.metrics, json.dumps(metrics, indent=1) + "\n", make_parents=True)
    plot = args.plot or str(Path(args.metrics).with_suffix(".png"))
    _plot(
        metrics["history"],
        metrics["step_losses"],
        plot,
        f"{args.model} / {args.dataset} / {recipe.name}: test top-1 {100 * metrics['test_accuracy']:.2f}%",
    )
    if capture is not None:
        capture.save(args.capture)
    print(
        f"test accuracy {100 * metrics['test_accuracy']:.2f}%, {metrics['train_seconds']:.1f}s training; "
        f"metrics -> {args.metrics}, plot -> {plot}" + (f", capture -> {args.capture}" if capture else ""),
        file=sys.stderr,
    )
    return 0


def _main_text(args, argv):
    """``main`` for a text data set: the GPT of :mod:`golden.lm`."""
    for option, value in (("--epochs", args.epochs), ("--capture", args.capture), ("--checkpoint", args.checkpoint)):
        if value is not None:
            return _fail(f"{option} does not apply to a text data set (train for --max-steps steps)")
    if args.resume:
        return _fail("--resume does not apply to a text data set")
    if args.optimizer != "sgd":
        return _fail("--optimizer does not apply to a text data set (it trains with AdamW)")
    if args.max_steps is None:
        return _fail("--max-steps is required for a text data set")
    if not 0.0 <= args.dropout < 1.0:
        return _fail(f"--dropout {args.dropout}: must be in [0, 1)")
    if args.dim % args.heads:
        return _fail(f"--dim {args.dim} is not a multiple of --heads {args.heads}")
    options = {}
    for item in args.recipe_opt:
        key, sep, value = item.partition("=")
        if not sep:
            return _fail(f"--recipe-opt {item!r}: expected KEY=VALUE")
        options[key.strip()] = value.strip()
    try:
        recipe = get_recipe(args.recipe, options)
    except (ValueError, TypeError) as e:
        return _fail(str(e))
    sample_path = args.sample or str(Path(args.metrics).with_suffix(".txt"))
    for option, path in (("--metrics", args.metrics), ("--sample", sample_path)):
        problem = check_output_file(path, option, make_parents=True)
        if problem:
            return _fail(problem)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return _fail(f"--device {device}: no CUDA device available")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    elif device != "cpu":
        return _fail(f"unknown device {device!r}; valid: cpu, cuda, cuda:N, auto")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        dataset = load_text(args.dataset, args.data_dir, limit=args.text_limit)
    except DataError as e:
        return _fail(str(e))
    if min(len(dataset.train_ids), len(dataset.val_ids)) <= args.context + 1:
        return _fail(f"--context {args.context}: a split of {args.dataset} is too short for it")
    print(
        f"training gpt on {args.dataset} ({len(dataset.train_ids)} train / {len(dataset.val_ids)} validation "
        f"characters, vocabulary {len(dataset.vocab)}) with recipe {recipe.name}, {args.max_steps} steps, "
        f"seed {args.seed}, device {device}",
        file=sys.stderr,
    )
    try:
        metrics, sample = train_lm(
            dataset=dataset,
            recipe=recipe,
            steps=args.max_steps,
            seed=args.seed,
            batch_size=12 if args.batch_size is None else args.batch_size,
            context=args.context,
            layers=args.layers,
            heads=args.heads,
            dim=args.dim,
            dropout=args.dropout,
            lr=1e-3 if args.lr is None else args.lr,
            momentum=args.momentum,
            weight_decay=0.1 if args.weight_decay is None else args.weight_decay,
            warmup=args.warmup,
            eval_interval=args.eval_interval,
            eval_batches=args.eval_batches,
            sample_chars=args.sample_chars,
            device=device,
            log=lambda s: print(s, file=sys.stderr),
        )
    except FloatingPointError as e:
        return _fail(f"training diverged: {e}", 3)
    metrics["sample"] = sample_path
    metrics["command"] = ["python", "-m", "golden.train", *argv]
    for path in (args.metrics, sample_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_files_atomically(
        ".", {args.metrics: json.dumps(metrics, indent=1) + "\n", sample_path: sample}, make_parents=True
    )
    print(
        f"validation loss {metrics['val_loss']:.4f} nats/char, {metrics['train_seconds']:.1f}s training; "
        f"metrics -> {args.metrics}, sample -> {sample_path}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "golden.train"))
