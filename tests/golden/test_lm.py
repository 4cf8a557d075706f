"""Transformers under the 4-bit recipes: QMatMul against the reference GEMMs, convert on a GPT (nothing
silently FP32, the filter), the Tiny Shakespeare loader and the GPT training CLI (a tiny model, a few steps)."""

import json

import pytest
import torch
from torch import nn

from golden.formats import fp4_quantize, quantize_activation, quantize_probability
from golden.layers import QLinear, QMatMul, QuantConfig, convert, fp32_modules
from golden.lm import load_text
from golden.models import GPT
from golden.reference import int_gemm, log_gemm
from golden.train import main

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 40


@pytest.fixture()
def text_file(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text(TEXT)
    return path


def test_qmatmul_is_the_integer_and_log_gemms_of_the_codes():
    cfg = QuantConfig()
    mm = QMatMul(config=cfg, a_kind="probability", name="mix")
    gen = torch.Generator().manual_seed(0)
    a = torch.softmax(torch.randn(2, 3, 5, 7, generator=gen), -1).requires_grad_()
    b = torch.randn(2, 3, 7, 4, generator=gen, requires_grad=True)
    y = mm(a, b)
    gy = torch.randn(y.shape, generator=gen)
    y.backward(gy)
    ac = quantize_probability(a.detach()).to(torch.int64)
    bc, b_step = quantize_activation(b.detach())
    bc = bc.to(torch.int64)
    for i in range(2):
        for h in range(3):
            acc = int_gemm(ac[i, h], bc[i, h], a_signed=False)
            assert torch.equal(y[i, h], (acc.double() * (b_step / 15)).float())
    # one FP4 quantization of the whole gradient per TPR phase (a per-tensor GradScale), as a layer's
    c0, s0 = fp4_quantize(gy, phase=0)
    c1, s1 = fp4_quantize(gy, phase=1)
    for i in range(2):
        for h in range(3):
            da = log_gemm(c0[i, h], bc[i, h].t().contiguous(), x_signed=True)
            assert torch.equal(a.grad[i, h], (da.double() * (s0 * 4.0**-6 * b_step)).float())
            db = log_gemm(c1[i, h].t().contiguous(), ac[i, h], x_signed=False)
            assert torch.equal(b.grad[i, h], (db.double() * (s1 * 2.0**-1 * 4.0**-6 / 15)).float().t())


def test_convert_quantizes_every_gpt_gemm_and_lists_the_rest():
    model = convert(GPT(vocab=11, context=8, layers=2, heads=2, dim=8), QuantConfig())
    linears = [n for n, m in model.named_modules() if type(m) is nn.Linear]
    assert linears == ["head"]  # the last weight layer, kept as in the paper
    assert sum(isinstance(m, QLinear) for m in model.modules()) == 2 * 4
    assert sum(isinstance(m, QMatMul) for m in model.modules()) == 2 * 2
    rows = fp32_modules(model)
    reasons = {name: reason for name, _, reason in rows}
    assert reasons["head"] == "last weight layer (keep_last)"
    assert reasons["tok"] == "host float operation" and reasons["blocks.1.gelu"] == "host float operation"
    assert not [r for r in reasons.values() if r.startswith("no 4-bit")]
    out = model(torch.randint(0, 11, (3, 8)))
    out.sum().backward()
    assert out.shape == (3, 8, 11) and model.blocks[0].attn.qkv.input_paths == {"signed": 1}
    assert model.blocks[0].attn.qkv.weight.grad is not None


def test_convert_filter_and_unsupported_modules_are_listed():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(4, 8)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.conv = nn.Conv1d(8, 8, 3, padding=1)
            self.mid = nn.Linear(8, 8)
            self.skip = nn.Linear(8, 8)
            self.out = nn.Linear(8, 2)

    model = convert(Net(), QuantConfig(), filter=lambda module, name: name != "skip")
    assert isinstance(model.mid, QLinear) and type(model.skip) is nn.Linear
    assert type(model.attn.out_proj) is not QLinear  # its weight is read by MultiheadAttention itself
    reasons = {name: reason for name, _, reason in fp32_modules(model)}
    assert reasons["skip"] == "kept by the filter"
    assert reasons["attn"].startswith("no 4-bit version") and reasons["conv"].startswith("no 4-bit version")
    assert reasons["inp"].startswith("first") and reasons["out"].startswith("last")
    with pytest.raises(TypeError, match="filter"):
        convert(Net(), QuantConfig(), filter="skip")


def test_load_text_splits_90_10(text_file):
    ds = load_text("tinyshakespeare", text_file)
    assert ds.vocab == "".join(sorted(set(TEXT)))
    assert len(ds.train_ids) == int(0.9 * len(TEXT)) and len(ds.train_ids) + len(ds.val_ids) == len(TEXT)
    assert ds.decode(ds.train_ids[:20]) == TEXT[:20] and ds.decode(ds.val_ids[-5:]) == TEXT[-5:]
    assert torch.equal(ds.encode(TEXT[:30]), ds.train_ids[:30])
    same_dir = load_text("tinyshakespeare", text_file.parent)
    assert torch.equal(same_dir.val_ids, ds.val_ids)


@pytest.mark.parametrize("recipe", ["ibm4", "luq"])
def test_gpt_cli_writes_val_loss_and_sample(tmp_path, text_file, recipe, capsys):
    metrics = tmp_path / "out" / "m.json"
    args = ["--dataset", "tinyshakespeare", "--data-dir", str(text_file), "--model", "gpt", "--recipe", recipe]
    args += ["--max-steps", "3", "--seed", "1", "--metrics", str(metrics), "--layers", "1", "--heads", "2"]
    args += ["--dim", "16", "--context", "16", "--batch-size", "4", "--eval-batches", "1", "--sample-chars", "25"]
    assert main(args) == 0
    m = json.loads(metrics.read_text())
    assert m["steps"] == 3 and 0 < m["val_loss"] < 10 and m["recipe"] == recipe
    assert len(metrics.with_suffix(".txt").read_text()) == 25
    assert (
        "blocks.0.attn.mix" in m["quantized_layers"]
        and ["head", "Linear", "last weight layer (keep_last)"] in (m["fp32_modules"])
    )
    assert "host float operation: tok (Embedding)" in capsys.readouterr().err
    assert main(args) == 0  # deterministic
    assert json.loads(metrics.read_text())["val_loss"] == m["val_loss"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "mlp", "--max-steps", "2"], "--model gpt trains on a text data set"),
        (["--model", "gpt"], "--max-steps is required"),
        (["--model", "gpt", "--max-steps", "2", "--epochs", "1"], "--epochs does not apply"),
        (["--model", "gpt", "--max-steps", "2", "--dim", "10", "--heads", "4"], "not a multiple"),
    ],
)
def test_gpt_cli_bad_input_is_one_line(tmp_path, text_file, capsys, extra, message):
    args = ["--dataset", "tinyshakespeare", "--data-dir", str(text_file), "--recipe", "ibm4", "--seed", "0"]
    assert main([*args, "--metrics", str(tmp_path / "m.json"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "m.json").exists()


def test_missing_text_file_is_a_clear_error(tmp_path, capsys):
    args = ["--dataset", "tinyshakespeare", "--data-dir", str(tmp_path / "nope"), "--model", "gpt"]
    args += ["--recipe", "fp32", "--seed", "0", "--max-steps", "1", "--metrics", str(tmp_path / "m.json")]
    assert main(args) == 2
    assert "no text file" in capsys.readouterr().err


def test_activation_checkpointing_gives_the_same_gradients():
    from torch.utils.checkpoint import checkpoint

    from golden.models import TransformerBlock

    def grads(use_checkpoint):
        torch.manual_seed(3)
        model = nn.Sequential(nn.Linear(8, 8), TransformerBlock(8, 2, 6, 0.0), nn.Linear(8, 3))
        convert(model, QuantConfig())
        x = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(4))
        h = model[0](x)
        h = checkpoint(model[1], h, use_reentrant=False) if use_checkpoint else model[1](h)
        model[2](h).square().sum().backward()
        return [p.grad for p in model.parameters()]

    plain, recomputed = grads(False), grads(True)
    assert all(torch.equal(a, b) for a, b in zip(plain, recomputed, strict=True))
