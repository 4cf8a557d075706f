"""Independent SPEC section 7 check of the MXFP4 / NVFP4 GEMMs: ``python -m verify.gemm`` as a subprocess
on both simulators, bit for bit against the exact scalar model tests/golden/blockfp_spec_model.py (which
knows only the SPEC) and against ``golden.reference.block_gemm``. Nothing from hw or verify is imported:
only the public SPEC interfaces (the CLI, ``golden.formats.block_quantize`` / ``block_decode``,
``golden.reference.block_gemm``). Also the CLI's bad-input cases (through ``verify.gemm.main`` in
process, the CLI's entry point, to spare a Python start per case).
"""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from golden.formats import block_decode, block_quantize
from golden.reference import block_gemm

from ..golden import blockfp_spec_model as spec

REPO = pathlib.Path(__file__).resolve().parents[2]
BS = spec.BLOCK_SIZE


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "verify.gemm", *map(str, args)], cwd=REPO, capture_output=True, text=True
    )


def save(tmp, **matrices):
    paths = {}
    for name, matrix in matrices.items():
        paths[name] = tmp / f"{name}.npy"
        np.save(paths[name], matrix)
    return paths


def gemm_cli(tmp, fmt, rows, cols, sim, a, a_scales, b, b_scales):
    p = save(tmp, a=a, sa=a_scales, b=b, sb=b_scales)
    out = tmp / "c.npy"
    out.unlink(missing_ok=True)
    result = run_cli(
        "--pe", fmt, "--rows", rows, "--cols", cols, "--a", p["a"], "--a-scales", p["sa"], "--b", p["b"],
        "--b-scales", p["sb"], "--out", out, "--sim", sim,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    c = np.load(out)
    assert c.dtype == np.float32 and c.shape == (a.shape[0], b.shape[1])
    return c.view(np.uint32)


def extreme_operands(fmt, rng, m=5, k=None, n=3):
    """Random codes and scales with the SPEC 7 corner cases planted: a block term that overflows to +inf
    followed by one that overflows to -inf (NaN), a zero block, scales that underflow to subnormals and
    zero; K not a multiple of the block size, M and N not multiples of the arrays used."""
    bs = BS[fmt]
    k = 2 * bs + 6 if k is None else k
    blocks = -(-k // bs)
    a = rng.integers(0, 16, (m, k)).astype(np.uint8)
    b = rng.integers(0, 16, (k, n)).astype(np.uint8)
    if fmt == "mxfp4":
        a_scales = rng.integers(100, 150, (m, blocks)).astype(np.uint8)
        b_scales = rng.integers(100, 150, (blocks, n)).astype(np.uint8)
        a[0, :bs], a[0, bs : 2 * bs], b[: 2 * bs, 0] = 0x7, 0xF, 0x7
        a_scales[0, :2], b_scales[:2, 0] = 254, 254  # 36 * 32 / 4 * 2^254: +inf, then -inf
        a_scales[2], b_scales[:, 2] = 1, 3  # 2^-250: underflow to zero
        a_scales[3] = 20  # 2^(20 + ~125 - 254): subnormal terms
    else:
        a_scales = rng.integers(0, 0x7F, (m, blocks)).astype(np.uint8)
        b_scales = rng.integers(0x80, 0xFF, (blocks, n)).astype(np.uint8)  # negative scales
        a_scales[0], b_scales[:, 0] = 0x7E, 0x7E  # 448 * -448
        a_scales[2], b_scales[:, 2] = 0x01, 0x81  # 2^-9 * -2^-9
        a_scales[3, :1] = 0x00
    a[1, :bs] = 0  # a zero block
    return a, a_scales, b, b_scales


def expected(fmt, a, a_scales, b, b_scales):
    want = np.array(
        spec.block_gemm_bits(a.tolist(), a_scales.tolist(), b.tolist(), b_scales.tolist(), fmt, n=b.shape[1]),
        dtype=np.uint32,
    ).reshape(a.shape[0], b.shape[1])
    golden = block_gemm(
        torch.from_numpy(a), torch.from_numpy(a_scales), torch.from_numpy(b), torch.from_numpy(b_scales), fmt
    )
    assert np.array_equal(golden.numpy().view(np.uint32), want), "golden.reference.block_gemm differs from SPEC 7"
    return want


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
@pytest.mark.parametrize("sim,rows,cols", [("icarus", 3, 2), ("verilator", 2, 2)])
def test_cli_extreme_scales_bit_exact(tmp_path, fmt, sim, rows, cols):
    rng = np.random.default_rng(len(fmt) + rows)
    operands = extreme_operands(fmt, rng)
    want = expected(fmt, *operands)
    if fmt == "mxfp4":  # the planted cases are there
        assert want[0, 0] == spec.CANONICAL_NAN and ((want & 0x7F800000) == 0).any()
    assert np.array_equal(gemm_cli(tmp_path, fmt, rows, cols, sim, *operands), want)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_cli_quantized_tensors_bit_exact(tmp_path, fmt):
    """Real values quantized with block_quantize (blocks along K of each operand), run on icarus."""
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((4, 37)), rng.standard_normal((37, 5))
    a, a_scales, ga = block_quantize(torch.from_numpy(x), fmt, axis=1)
    b, b_scales, _ = block_quantize(torch.from_numpy(w), fmt, axis=0)
    operands = [t.numpy() for t in (a, a_scales, b, b_scales)]
    # The quantizer and decoder are the SPEC's.
    want_a = spec.quantize_rows(x.tolist(), fmt)
    assert a.tolist() == want_a[0] and a_scales.tolist() == want_a[1] and ga == want_a[2]
    assert block_decode(a, a_scales, ga, fmt, axis=1).tolist() == spec.decode_rows(*want_a, fmt)
    assert np.array_equal(gemm_cli(tmp_path, fmt, 3, 2, "icarus", *operands), expected(fmt, *operands))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
@pytest.mark.parametrize("sim,rows,cols", [("icarus", 2, 2), ("verilator", 3, 2), ("icarus", 1, 1)])
def test_cli_extreme_scales_bit_exact_more_arrays(tmp_path, fmt, sim, rows, cols):
    rng = np.random.default_rng(100 + rows * cols)
    for k in (3 * BS[fmt] + 1, 1, 0):
        operands = extreme_operands(fmt, rng, m=7, k=k, n=5)
        assert np.array_equal(gemm_cli(tmp_path, fmt, rows, cols, sim, *operands), expected(fmt, *operands))


# -- bad input: one error line, exit status 2, nothing written (in process: the checks run before any build) --


def run_main(capsys, *args):
    """``python -m verify.gemm ARGS`` in this process: (exit status, stderr lines)."""
    from verify.gemm import main

    status = main([str(arg) for arg in args])
    return status, capsys.readouterr().err.strip().splitlines()


def _bad_case(capsys, tmp, fmt, **override):
    a = np.zeros((2, 20), np.uint8)
    b = np.zeros((20, 3), np.uint8)
    blocks = -(-20 // BS[fmt])
    ok = 127 if fmt == "mxfp4" else 0x38
    matrices = {"a": a, "sa": np.full((2, blocks), ok, np.uint8), "b": b, "sb": np.full((blocks, 3), ok, np.uint8)}
    matrices.update({k: v for k, v in override.items() if v is not None})
    paths = save(tmp, **matrices)
    args = ["--pe", fmt, "--rows", 2, "--cols", 2, "--a", paths["a"], "--b", paths["b"], "--out", tmp / "c.npy"]
    if "sa" not in override or override["sa"] is not None:
        args += ["--a-scales", paths["sa"]]
    if "sb" not in override or override["sb"] is not None:
        args += ["--b-scales", paths["sb"]]
    return run_main(capsys, *args)


BAD = {
    "missing a scales": ("mxfp4", {"sa": None}, "needs --a-scales and --b-scales"),
    "missing both scales": ("nvfp4", {"sa": None, "sb": None}, "needs --a-scales and --b-scales"),
    "a scales shape": ("mxfp4", {"sa": np.zeros((2, 2), np.uint8)}, "A's scales must be 2 x 1"),
    "b scales shape": ("nvfp4", {"sb": np.zeros((1, 3), np.uint8)}, "B's scales must be 2 x 3"),
    "float codes": ("mxfp4", {"a": np.zeros((2, 20), np.float32)}, "integer E2M1 codes"),
    "float scales": ("nvfp4", {"sb": np.zeros((2, 3), np.float64)}, "integer e4m3 scale codes"),
    "codes above 15": ("nvfp4", {"b": np.full((20, 3), 16, np.uint8)}, "outside 0..15"),
    "scales above 255": ("mxfp4", {"sa": np.full((2, 1), 256, np.int16)}, "outside 0..255"),
    "e8m0 255": ("mxfp4", {"sb": np.full((1, 3), 255, np.uint8)}, "NaN e8m0 code 0xff"),
    "e4m3 0x7f": ("nvfp4", {"sa": np.full((2, 2), 0x7F, np.uint8)}, "NaN e4m3 code 0x7f"),
    "e4m3 0xff": ("nvfp4", {"sb": np.full((2, 3), 0xFF, np.uint8)}, "NaN e4m3 code 0xff"),
    "inner dimensions": ("mxfp4", {"b": np.zeros((19, 3), np.uint8)}, "inner dimensions differ"),
}


@pytest.mark.parametrize("case", list(BAD), ids=lambda case: case.replace(" ", "-"))
def test_bad_input(tmp_path, capsys, case):
    fmt, override, match = BAD[case]
    status, lines = _bad_case(capsys, tmp_path, fmt, **override)
    assert status == 2, lines
    assert len(lines) == 1 and lines[0].startswith("verify.gemm: error:") and match in lines[0], lines
    assert not (tmp_path / "c.npy").exists()


def test_bad_input_from_the_command_line(tmp_path):
    """The same as a subprocess: one line, status 2, no traceback."""
    paths = save(tmp_path, a=np.zeros((2, 20), np.uint8), b=np.zeros((20, 3), np.uint8))
    result = run_cli(
        "--pe", "nvfp4", "--rows", 2, "--cols", 2, "--a", paths["a"], "--b", paths["b"], "--out", tmp_path / "c.npy"
    )
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "verify.gemm: error: --pe nvfp4 needs --a-scales and --b-scales (its block-scale codes)"
    ]


@pytest.mark.parametrize("pe", ["int4", "fp16"])
def test_scales_refused_for_the_other_gemms(tmp_path, capsys, pe):
    dtype = np.float16 if pe == "fp16" else np.int8
    paths = save(tmp_path, a=np.zeros((2, 2), dtype), b=np.zeros((2, 2), dtype), sa=np.zeros((2, 1), np.uint8))
    status, lines = run_main(
        capsys, "--pe", pe, "--rows", 2, "--cols", 2, "--a", paths["a"], "--b", paths["b"], "--a-scales", paths["sa"],
        "--out", tmp_path / "c.npy",
    )  # fmt: skip
    assert status == 2 and len(lines) == 1, lines
    assert lines[0] == f"verify.gemm: error: --a-scales apply only to the block-scaled GEMMs, not to --pe {pe}"
