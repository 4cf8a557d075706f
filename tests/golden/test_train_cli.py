"""golden.train: CLI smoke runs, determinism, checkpoints, divergence and bad-input errors."""

import gzip
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from golden.data import DataError, load_dataset
from golden.recipes import get_recipe
from golden.train import TrainingDiverged, main, train

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "golden.train", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_cli_smoke_digits_writes_metrics_plot_checkpoint_capture(tmp_path):
    metrics = tmp_path / "m.json"
    r = _cli(
        "--dataset",
        "digits",
        "--model",
        "mlp",
        "--recipe",
        "ibm4",
        "--epochs",
        "2",
        "--seed",
        "3",
        "--metrics",
        str(metrics),
        "--max-steps",
        "15",
        "--checkpoint",
        str(tmp_path / "ck.pt"),
        "--capture",
        str(tmp_path / "cap.npz"),
        "--capture-steps",
        "0,13",
        "--threads",
        "1",
        "--recipe-opt",
        "keep_first=0",
    )
    assert r.returncode == 0, r.stderr
    m = json.loads(metrics.read_text())
    assert 0.0 <= m["test_accuracy"] <= 1.0 and m["train_seconds"] > 0 and m["recipe"] == "ibm4"
    assert m["steps"] == 15 and len(m["history"]) == 2 and m["quantized_layers"] == ["1", "3"]
    assert m["inexact_grad_steps"] == 0
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    state = torch.load(tmp_path / "ck.pt", weights_only=False)
    assert state["epoch"] == 2 and state["step"] == 15
    from golden.capture import load_capture, verify_capture

    assert {r["step"] for r in load_capture(tmp_path / "cap.npz")} == {0, 13}
    assert verify_capture(tmp_path / "cap.npz") > 0


def _digits_run(recipe, **kw):
    ds = load_dataset("digits")
    return train(
        dataset=ds,
        model_name="mlp",
        recipe=get_recipe(recipe),
        epochs=1,
        seed=11,
        batch_size=64,
        max_steps=6,
        log=lambda s: None,
        **kw,
    )


@pytest.mark.parametrize("recipe", ["ibm4", "luq"])
def test_same_seed_same_metrics(recipe):
    a, b = _digits_run(recipe), _digits_run(recipe)
    assert a["step_losses"] == b["step_losses"] and a["history"][0]["test_accuracy"] == b["history"][0]["test_accuracy"]
    ds = load_dataset("digits")
    c = train(
        dataset=ds,
        model_name="mlp",
        recipe=get_recipe(recipe),
        epochs=1,
        seed=12,
        batch_size=64,
        max_steps=6,
        log=lambda s: None,
    )
    assert c["step_losses"] != a["step_losses"]


def test_divergence_keeps_last_good_checkpoint(tmp_path):
    ds = load_dataset("digits")
    ck = tmp_path / "ck.pt"
    train(
        dataset=ds,
        model_name="mlp",
        recipe=get_recipe("fp32"),
        epochs=1,
        seed=0,
        batch_size=512,
        checkpoint=ck,
        log=lambda s: None,
    )
    state = torch.load(ck, weights_only=False)
    for group in state["optimizer"]["param_groups"]:
        group["lr"] = 1e30
    state["scheduler"]["base_lrs"] = [1e30] * len(state["scheduler"]["base_lrs"])
    torch.save(state, ck)
    before = ck.read_bytes()
    with pytest.raises(TrainingDiverged, match="last good checkpoint kept"):
        train(
            dataset=ds,
            model_name="mlp",
            recipe=get_recipe("fp32"),
            epochs=4,
            seed=0,
            batch_size=512,
            checkpoint=ck,
            resume=True,
            log=lambda s: None,
        )
    assert ck.read_bytes() == before


def test_cli_divergence_exits_3(tmp_path, capsys):
    r = main(
        [
            "--dataset",
            "digits",
            "--model",
            "mlp",
            "--recipe",
            "ibm4",
            "--epochs",
            "2",
            "--seed",
            "0",
            "--batch-size",
            "2000",
            "--lr",
            "1e30",
            "--metrics",
            str(tmp_path / "m.json"),
        ]
    )
    assert r == 3
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("golden.train: error: training diverged")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    "flag,value,valid",
    [
        ("--recipe", "int2", "fp32, ibm4, ibm4-full, ibm4-notpr, luq, mxfp4, nvfp4"),
        ("--model", "vgg", "mlp, lenet5, resnet, gpt"),
        ("--dataset", "imagenet", "digits, mnist, fashion-mnist, cifar10, tinyshakespeare"),
    ],
)
def test_unknown_names_list_valid_ones(tmp_path, capsys, flag, value, valid):
    args = {"--dataset": "digits", "--model": "mlp", "--recipe": "fp32"}
    args[flag] = value
    r = main(
        [a for kv in args.items() for a in kv] + ["--epochs", "1", "--seed", "0", "--metrics", str(tmp_path / "m.json")]
    )
    assert r == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("golden.train: error: unknown") and err.endswith(f"valid: {valid}") and "\n" not in err


def test_missing_and_incomplete_data_dir(tmp_path, capsys):
    assert (
        main(
            [
                "--dataset",
                "mnist",
                "--model",
                "mlp",
                "--recipe",
                "fp32",
                "--epochs",
                "1",
                "--seed",
                "0",
                "--metrics",
                str(tmp_path / "m.json"),
            ]
        )
        == 2
    )
    assert "needs --data-dir" in capsys.readouterr().err
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x03"))
    with pytest.raises(DataError, match=r"lacks train-labels-idx1-ubyte\[.gz\], t10k-images"):
        load_dataset("fashion-mnist", tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        load_dataset("mnist", tmp_path / "nope")
    with pytest.raises(DataError, match="data_batch_1"):
        load_dataset("cifar10", tmp_path)


def test_idx_loader_reads_a_small_set(tmp_path):
    import numpy as np

    def idx(arr, magic_dims):
        header = bytes([0, 0, 8, len(magic_dims)]) + b"".join(int(d).to_bytes(4, "big") for d in magic_dims)
        return header + arr.astype(np.uint8).tobytes()

    imgs = np.arange(2 * 4 * 4).reshape(2, 4, 4) % 256
    for prefix in ("train", "t10k"):
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(idx(imgs, imgs.shape))
        (tmp_path / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(np.array([3, 4]), (2,))))
    ds = load_dataset("mnist", tmp_path)
    assert ds.input_shape == (1, 4, 4) and ds.train_y.tolist() == [3, 4]
    assert float(ds.train_x[0, 0, 0, 1]) == pytest.approx(1 / 255)


def test_resnet_trains_with_capture_checked_against_matrix_gemms(tmp_path):
    from golden.capture import TensorCapture, verify_capture

    ds = load_dataset("digits")
    cap = TensorCapture([1])
    m = train(
        dataset=ds,
        model_name="resnet",
        recipe=get_recipe("ibm4"),
        epochs=1,
        seed=0,
        batch_size=32,
        max_steps=2,
        capture=cap,
        log=lambda s: None,
    )
    assert len(m["quantized_layers"]) == 8 and math.isfinite(m["history"][-1]["test_loss"])
    cap.save(tmp_path / "r.npz")
    # stride-2 convs and 1x1 shortcuts: every fast GEMM was checked against its im2col form while capturing
    assert verify_capture(tmp_path / "r.npz") == 3 * 8  # fwd, dx, dw; BatchNorm follows every conv


def test_bench_speed_smoke(tmp_path):
    from golden.bench import run_speed

    rows = run_speed(out=tmp_path, models=("mlp",), batch_size=8, steps=2, warmup=1)
    assert rows[0]["ibm4_ratio"] > 0 and (tmp_path / "speed.md").read_text().startswith("| model |")


@pytest.mark.parametrize("kind", ["py", "bin"])
def test_cifar10_loader_reads_both_batch_formats(tmp_path, kind):
    import pickle

    import numpy as np

    sub = tmp_path / f"cifar-10-batches-{kind}"
    sub.mkdir()
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        data = np.full((2, 3072), i, dtype=np.uint8)
        labels = [i % 10, (i + 1) % 10]
        if kind == "py":
            with open(sub / name, "wb") as f:
                pickle.dump({b"data": data, b"labels": labels}, f)
        else:
            rows = np.concatenate([np.array(labels, dtype=np.uint8)[:, None], data], axis=1)
            rows.tofile(sub / f"{name}.bin")
    ds = load_dataset("cifar10", tmp_path)
    assert ds.train_x.shape == (10, 3, 32, 32) and ds.test_x.shape == (2, 3, 32, 32)
    assert ds.train_y.tolist()[:4] == [0, 1, 1, 2] and float(ds.test_x[0, 0, 0, 0]) == pytest.approx(5 / 255)


# -- bad input refused up front, one line each (issue 13) ------------------------------------------


def _train_args(tmp_path, *extra, recipe="ibm4"):
    base = ["--dataset", "digits", "--model", "mlp", "--recipe", recipe, "--seed", "0"]
    return [*base, "--metrics", str(tmp_path / "m.json"), *extra]


def _refused(capsys, tmp_path, argv):
    """Exit 2 with one ``golden.train: error:`` line, nothing trained, no file written."""
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse type errors
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and err.startswith("golden.train: error: "), err
    assert list(tmp_path.iterdir()) == [], "output written"
    return err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--epochs", "0"], "--epochs: expected a positive integer, not '0'"),
        (["--epochs", "1", "--capture", "CAP", "--capture-steps", "-1"], "steps are 0-based, not -1"),
        (["--epochs", "1", "--capture", "CAP", "--capture-steps", "x"], "expected comma-separated integers"),
        # digits: 1437 training samples / batch 128 = 12 steps per epoch
        (["--epochs", "1", "--capture", "CAP", "--capture-steps", "0,12"], "--capture-steps 12 is beyond the run"),
        (["--epochs", "2", "--max-steps", "3", "--capture", "CAP", "--capture-steps", "3"], "it has 3 steps"),
        (["--epochs", "1", "--recipe", "nvfp4", "--recipe-opt", "hadamard=maybe"], "expected a value like False"),
        (["--epochs", "1", "--recipe", "mxfp4", "--recipe-opt", "tpr=0"], "unknown recipe option 'tpr'"),
        (["--epochs", "1", "--recipe", "mxfp4", "--capture", "CAP"], "--capture records the int4 and log GEMMs"),
    ],
)
def test_bad_values_refused_before_training(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    out.mkdir()
    extra = [str(out / "c.npz") if item == "CAP" else item for item in extra]
    err = _refused(capsys, out, _train_args(out, *extra))
    assert message in err


def test_capture_steps_beyond_the_run_names_the_count(tmp_path, capsys):
    err = _refused(
        capsys, tmp_path, _train_args(tmp_path, "--epochs", "1", "--capture", "c.npz", "--capture-steps", "99")
    )
    assert "it has 12 steps (0..11; 1437 samples / batch 128 x 1 epochs)" in err


def test_metrics_naming_a_directory_refused_before_training(tmp_path, capsys):
    (tmp_path / "m.json").mkdir()
    assert main(_train_args(tmp_path, "--epochs", "1")) == 2
    err = capsys.readouterr().err
    assert err == f"golden.train: error: --metrics {tmp_path / 'm.json'} is a directory, not a file\n"


def test_data_dir_with_digits_warns(tmp_path, capsys):
    args = _train_args(tmp_path, "--epochs", "1", "--max-steps", "1", "--data-dir", str(tmp_path), recipe="fp32")
    assert main([*args, "--progress", "off"]) == 0
    err = capsys.readouterr().err
    assert "golden.train: warning: --data-dir does not apply to --dataset digits (ignored)" in err.splitlines()
    assert (tmp_path / "m.json").exists()


def test_truncated_idx_file_names_it_with_plain_sizes(tmp_path):
    header = bytes([0, 0, 8, 1]) + (10000).to_bytes(4, "big")
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(header + bytes(9000))
    from golden.data import _read_idx

    with pytest.raises(DataError) as error:
        _read_idx(path)
    message = str(error.value)
    assert message == (
        f"{path} is truncated: its header says (10000,), 10000 data bytes (10008 bytes in all), "
        "the file has 9000 (9008 in all)"
    )
    assert "np." not in message


def test_truncated_mnist_file_is_one_line_exit_2(tmp_path, capsys):
    import numpy as np

    def idx(arr):
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        return header + arr.astype(np.uint8).tobytes()

    for prefix in ("train", "t10k"):
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(idx(np.zeros((2, 4, 4))))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(idx(np.zeros(2)))
    truncated = tmp_path / "t10k-images-idx3-ubyte"
    truncated.write_bytes(truncated.read_bytes()[:-5])
    out = tmp_path / "out"
    args = ["--dataset", "mnist", "--data-dir", str(tmp_path), "--model", "mlp", "--recipe", "fp32", "--epochs", "1"]
    assert main([*args, "--seed", "0", "--metrics", str(out / "m.json")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"golden.train: error: {truncated} is truncated: its header says (2, 4, 4), 32 data bytes "
        "(48 bytes in all), the file has 27 (43 in all)\n"
    )
    assert not out.exists()
