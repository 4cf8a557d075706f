"""Character-level language modelling: Tiny Shakespeare, a GPT, its training loop and text samples.

Data
----
``tinyshakespeare``: ``input.txt`` (Karpathy's 1.1 MB Tiny Shakespeare) in
``--data-dir`` (default ``../shared/data/tinyshakespeare``), or ``--data-dir``
naming the text file itself. The vocabulary is the sorted set of the file's
characters; the standard split is the first 90% of the characters to train
and the last 10% to validate (as nanoGPT's ``shakespeare_char``).

Training
--------
nanoGPT's recipe: random windows of ``context + 1`` characters (a
``torch.Generator`` seeded with ``--seed``), AdamW (betas ``(momentum,
0.99)``, decoupled weight decay on the 2-D weights only), linear warm-up over
the first ``warmup`` steps then cosine decay to ``lr / 10``, gradient-norm
clipping at 1. ``val_loss`` is the mean cross-entropy in nats per character
over ``eval_batches`` fixed validation windows (drawn from a generator of its
own, seed 0, so every recipe and seed sees the same windows).
"""

import dataclasses
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import DataError
from .layers import describe_fp32
from .models import GPT

__all__ = ["TEXT_DATASETS", "TextDataset", "load_text", "train_lm", "generate", "DEFAULT_TEXT_DIRS"]

#: Text data set name -> file name inside its directory.
TEXT_DATASETS = {"tinyshakespeare": "input.txt"}
#: Where each text data set is looked for without ``--data-dir`` (relative to the working directory).
DEFAULT_TEXT_DIRS = {"tinyshakespeare": "../shared/data/tinyshakespeare"}
#: Seed of the generator that draws the validation windows (the same for every run).
VAL_SEED = 0


@dataclasses.dataclass(frozen=True)
class TextDataset:
    """A character-level corpus split 90/10.

    Attributes
    ----------
    name : str
    vocab : str
        The sorted distinct characters; token ``i`` is ``vocab[i]``.
    train_ids, val_ids : torch.Tensor
        int64 token ids of the first 90% / last 10% of the characters.
    """

    name: str
    vocab: str
    train_ids: torch.Tensor
    val_ids: torch.Tensor

    def encode(self, text):
        """Token ids (int64) of ``text``; characters outside the vocabulary raise ValueError."""
        index = {c: i for i, c in enumerate(self.vocab)}
        missing = sorted(set(text) - set(index))
        if missing:
            raise ValueError(f"characters outside the vocabulary: {''.join(missing)!r}")
        return torch.tensor([index[c] for c in text], dtype=torch.int64)

    def decode(self, ids):
        """The text of a sequence of token ids."""
        return "".join(self.vocab[i] for i in ids.tolist())


def load_text(name, data_dir=None, *, limit=None):
    """Load a text data set by name; raises :class:`golden.data.DataError`.

    Parameters
    ----------
    name : str
        One of :data:`TEXT_DATASETS`.
    data_dir : path, optional
        Directory with the file, or the text file itself (default :data:`DEFAULT_TEXT_DIRS`).
    limit : int, optional
        Use only the first ``limit`` characters (quick runs and tests); the split is of those.
    """
    if name not in TEXT_DATASETS:
        raise DataError(f"unknown text dataset {name!r}; valid: {', '.join(TEXT_DATASETS)}")
    path = Path(data_dir if data_dir is not None else DEFAULT_TEXT_DIRS[name])
    if path.is_dir():
        path = path / TEXT_DATASETS[name]
    if not path.is_file():
        raise DataError(f"{name}: no text file at {path} (expected {TEXT_DATASETS[name]} or a path to the file)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{name}: cannot read {path}: {e}") from None
    if limit is not None:
        text = text[:limit]
    if len(text) < 100:
        raise DataError(f"{name}: {path} holds {len(text)} characters; need at least 100")
    vocab = "".join(sorted(set(text)))
    codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).to(torch.int64)
    table = torch.tensor([ord(c) for c in vocab], dtype=torch.int64)
    ids = torch.searchsorted(table, codes)  # vocab is sorted by code point
    cut = int(0.9 * len(ids))
    return TextDataset(name, vocab, ids[:cut].clone(), ids[cut:].clone())


def _windows(ids, starts, context):
    offsets = torch.arange(context + 1)
    chunk = ids[starts[:, None] + offsets]
    return chunk[:, :-1], chunk[:, 1:]


def _batch(ids, batch_size, context, gen):
    if len(ids) <= context + 1:
        raise DataError(f"a split of {len(ids)} characters is too short for context {context}")
    starts = torch.randint(len(ids) - context - 1, (batch_size,), generator=gen)
    return _windows(ids, starts, context)


def evaluate_lm(model, ids, *, batch_size, context, batches, device):
    """Mean cross-entropy (nats per character) over ``batches`` fixed windows of ``ids``."""
    gen = torch.Generator().manual_seed(VAL_SEED)
    model.eval()
    total = 0.0
    with torch.no_grad():
        for _ in range(batches):
            x, y = _batch(ids, batch_size, context, gen)
            logits = model(x.to(device))
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.to(device).reshape(-1)))
    model.train()
    return total / batches


def generate(model, start, length, *, seed, device, temperature=1.0):
    """``length`` token ids sampled after the ids ``start`` (1-D), cropping to the model's context."""
    gen = torch.Generator(device=device).manual_seed(seed)
    ids = start.to(device)[None, :]
    model.eval()
    with torch.no_grad():
        for _ in range(length):
            logits = model(ids[:, -model.context :])[:, -1, :] / temperature
            nxt = torch.multinomial(F.softmax(logits.to(torch.float64), dim=-1), 1, generator=gen)
            ids = torch.cat([ids, nxt], dim=1)
    model.train()
    return ids[0, start.numel() :].cpu()


def _lr_at(step, total, lr, warmup):
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr / 10 + 0.5 * (lr - lr / 10) * (1 + math.cos(math.pi * progress))


def train_lm(
    *,
    dataset,
    recipe,
    steps,
    seed,
    batch_size=12,
    context=64,
    layers=4,
    heads=4,
    dim=128,
    dropout=0.0,
    lr=1e-3,
    momentum=0.9,
    weight_decay=0.1,
    warmup=100,
    eval_interval=250,
    eval_batches=20,
    sample_chars=500,
    device="cpu",
    log=print,
):
    """Train a GPT on ``dataset`` with ``recipe`` for ``steps`` steps; returns (metrics dict, sample text).

    See the module docstring for the recipe; ``log`` receives the FP32 listing and the evaluations.
    """
    from .layers import fp32_modules, quantized_layers
    from .recipes import prepare_model

    torch.manual_seed(seed)
    model = GPT(vocab=len(dataset.vocab), context=context, layers=layers, heads=heads, dim=dim, dropout=dropout)
    model = prepare_model(model, recipe).to(device)
    fp32 = fp32_modules(model) if recipe.quant is not None else []
    if recipe.quant is None:
        log(f"recipe {recipe.name}: every layer in FP32")
    else:
        log(f"recipe {recipe.name}: {len(quantized_layers(model))} quantized layers; in float:")
        for line in describe_fp32(fp32):
            log(f"  {line}")
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(momentum, 0.99),
    )
    gen = torch.Generator().manual_seed(seed)
    history, step_losses, step_seconds = [], [], []
    t_start = time.perf_counter()

    def record(step):
        val = evaluate_lm(
            model, dataset.val_ids, batch_size=batch_size, context=context, batches=eval_batches, device=device
        )
        train = evaluate_lm(
            model, dataset.train_ids, batch_size=batch_size, context=context, batches=eval_batches, device=device
        )
        if not (math.isfinite(val) and math.isfinite(train)):
            raise FloatingPointError(f"non-finite evaluation loss at step {step}")
        history.append({"steps": step, "train_loss": train, "val_loss": val, "seconds": time.perf_counter() - t_start})
        log(f"step {step}/{steps}: train loss {train:.4f} | val loss {val:.4f} | {history[-1]['seconds']:.0f}s")

    model.train()
    for step in range(steps):
        if step % eval_interval == 0 and step:
            record(step)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, steps, lr, warmup)
        x, y = _batch(dataset.train_ids, batch_size, context, gen)
        t0 = time.perf_counter()
        logits = model(x.to(device))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.to(device).reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"non-finite loss {value} at step {step}")
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step_seconds.append(time.perf_counter() - t0)
        step_losses.append(value)
    train_seconds = time.perf_counter() - t_start
    record(steps)
    start = dataset.encode("\n")
    sample = dataset.decode(generate(model, start, sample_chars, seed=seed, device=device)) if sample_chars else ""
    qlayers = quantized_layers(model)
    ordered = sorted(step_seconds[1:] or step_seconds)
    metrics = {
        "val_loss": history[-1]["val_loss"],
        "train_loss": history[-1]["train_loss"],
        "train_seconds": train_seconds,
        "recipe": recipe.name,
        "model": "gpt",
        "model_config": {"context": context, "layers": layers, "heads": heads, "dim": dim, "dropout": dropout},
        "dataset": dataset.name,
        "vocab_size": len(dataset.vocab),
        "train_chars": len(dataset.train_ids),
        "val_chars": len(dataset.val_ids),
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "optimizer": "adamw",
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "warmup": warmup,
        "eval_batches": eval_batches,
        "step_seconds_median": ordered[len(ordered) // 2] if ordered else None,
        "quantized_layers": [m.fourbit_name for m in qlayers],
        "fp32_modules": [list(row) for row in fp32],
        "input_paths": {m.fourbit_name: dict(m.input_paths) for m in qlayers},
        "inexact_grad_steps": sum(m.inexact_grad_steps for m in qlayers),
        "history": history,
        "step_losses": step_losses,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    return metrics, sample
