"""Independent check of ``python -m verify.gemm``: random .npy files in, the CLI as a
subprocess, results compared bit for bit with this file's own numpy reference
(no golden, no hw code), on non-square arrays and both simulators. Also the
CLI's bad-input behaviour.

Standalone: ``python tests/verify/test_gemm_cli.py [--sim icarus|verilator|verilator-cocotb] [--seed N]``.
"""

import argparse
import pathlib
import re
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


# -- the independent reference ---------------------------------------------------------------------


def ref_int(a, b):
    return a.astype(np.int64) @ b.astype(np.int64)


def ref_log(g, x):
    """sum_k (-1)^s * x * 4^(e-1), 0 where e = 0 (SPEC section 2)."""
    g = g.astype(np.int64)
    e, s = g & 7, g >> 3
    multiplier = np.where(e == 0, 0, np.where(s == 1, -1, 1) * (4 ** np.maximum(e - 1, 0)))
    return multiplier @ x.astype(np.int64)


def ref_fp16(a, b):
    """float32 accumulation in ascending k, one rounding per add (numpy float32 is IEEE RNE);
    binary16 products are exact in binary32. NaNs as the canonical 0x7FC00000, K = 0 gives +0."""
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    m, k = a.shape
    acc = np.zeros((m, b.shape[1]), np.float32)
    with np.errstate(all="ignore"):
        for i in range(k):
            product = a32[:, i : i + 1] * b32[i : i + 1, :]
            acc = product if i == 0 else (acc + product).astype(np.float32)
    bits = acc.view(np.uint32).copy()
    bits[np.isnan(acc)] = 0x7FC00000
    return bits


def random_operands(pe, rng, m, k, n, *, a_signed=True, b_signed=True):
    def ints(shape, signed):
        return (rng.integers(-8, 8, shape) if signed else rng.integers(0, 16, shape)).astype(np.int8)

    if pe == "int4":
        return ints((m, k), a_signed), ints((k, n), b_signed)
    if pe == "log":
        return rng.integers(0, 16, (m, k)).astype(np.uint8), ints((k, n), b_signed)
    patterns = rng.integers(0, 1 << 16, (m, k)).astype(np.uint16)
    # Half finite values of moderate size, half any bit pattern (inf, NaN, subnormals).
    moderate = (rng.integers(0, 2, (m, k)) << 15) | (rng.integers(10, 20, (m, k)) << 10) | rng.integers(0, 1024, (m, k))
    a = np.where(rng.random((m, k)) < 0.8, moderate, patterns).astype(np.uint16).view(np.float16)
    patterns = rng.integers(0, 1 << 16, (k, n)).astype(np.uint16)
    moderate = (rng.integers(0, 2, (k, n)) << 15) | (rng.integers(10, 20, (k, n)) << 10) | rng.integers(0, 1024, (k, n))
    b = np.where(rng.random((k, n)) < 0.8, moderate, patterns).astype(np.uint16).view(np.float16)
    return a, b


def run_cli(tmp, *args):
    return subprocess.run(
        [sys.executable, "-m", "verify.gemm", *map(str, args)], cwd=REPO, capture_output=True, text=True
    )


def check_cli(tmp, pe, rows, cols, sim, rng, m, k, n, *, a_signed=True, b_signed=True, dataflow=None):
    a, b = random_operands(pe, rng, m, k, n, a_signed=a_signed, b_signed=b_signed)
    tmp = pathlib.Path(tmp)
    np.save(tmp / "a.npy", a)
    np.save(tmp / "b.npy", b)
    out = tmp / "c.npy"
    out.unlink(missing_ok=True)
    result = run_cli(
        tmp,
        "--pe",
        pe,
        "--rows",
        rows,
        "--cols",
        cols,
        "--a",
        tmp / "a.npy",
        "--b",
        tmp / "b.npy",
        "--out",
        out,
        "--a-signed",
        int(a_signed),
        "--b-signed",
        int(b_signed),
        "--sim",
        sim,
        *(("--dataflow", dataflow) if dataflow else ()),
    )
    assert result.returncode == 0, result.stderr
    c = np.load(out)
    if pe == "fp16":
        assert c.dtype == np.float32 and c.shape == (m, n)
        return np.array_equal(c.view(np.uint32), ref_fp16(a, b))
    assert c.dtype == np.int64 and c.shape == (m, n)
    return np.array_equal(c, ref_int(a, b) if pe == "int4" else ref_log(a, b))


# Non-square arrays, partial tiles on both edges; builds shared with tests/verify/test_gemm.py.
CASES = [("int4", 3, 2, dict(a_signed=False, b_signed=True)), ("log", 2, 3, dict(b_signed=False)), ("fp16", 2, 3, {})]


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("pe,rows,cols,modes", CASES)
def test_cli_matches_independent_reference(tmp_path, sim, pe, rows, cols, modes):
    rng = np.random.default_rng(zlib.crc32(f"{pe} {sim}".encode()))
    assert check_cli(tmp_path, pe, rows, cols, sim, rng, 7, 19, 5, **modes)


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("pe,rows,cols,modes", CASES)
def test_cli_weight_stationary_matches_independent_reference(tmp_path, sim, pe, rows, cols, modes):
    """``--dataflow ws``: the same GEMMs on the weight-stationary arrays (K = 19 > R: several chunks)."""
    rng = np.random.default_rng(zlib.crc32(f"ws {pe} {sim}".encode()))
    assert check_cli(tmp_path, pe, rows, cols, sim, rng, 7, 19, 5, dataflow="ws", **modes)


# -- bad input ------------------------------------------------------------------------------------


def _bad(tmp_path, a, b, *extra, pe="int4"):
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    out = tmp_path / "c.npy"
    result = run_cli(
        tmp_path,
        "--pe",
        pe,
        "--rows",
        2,
        "--cols",
        2,
        "--a",
        tmp_path / "a.npy",
        "--b",
        tmp_path / "b.npy",
        "--out",
        out,
        *extra,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("verify.gemm: error:"), result.stderr
    assert not out.exists() and not list(tmp_path.glob(".c.npy*"))
    return lines[0]


I8 = np.zeros((2, 3), np.int8)


@pytest.mark.parametrize(
    "case,match",
    [
        (lambda t: _bad(t, I8, np.zeros((4, 2), np.int8)), "inner dimensions differ"),
        (lambda t: _bad(t, np.full((2, 3), 9, np.int8), np.zeros((3, 2), np.int8)), "outside INT4 range"),
        (lambda t: _bad(t, np.full((2, 3), -1, np.int8), np.zeros((3, 2), np.int8), "--a-signed", 0), "UINT4"),
        (lambda t: _bad(t, I8.astype(np.float32), np.zeros((3, 2), np.int8)), "integer codes"),
        (lambda t: _bad(t, np.zeros(3, np.int8), np.zeros((3, 2), np.int8)), "2-D"),
        (lambda t: _bad(t, np.full((2, 3), 16, np.uint8), np.zeros((3, 2), np.int8), pe="log"), "FP4 codes"),
        (lambda t: _bad(t, I8, np.zeros((3, 2), np.int8), pe="fp16"), "float16"),
        (
            lambda t: _bad(
                t, np.zeros((2, 3), np.float16), np.zeros((3, 2), np.float16), "--array", "train", pe="fp16"
            ),
            "train array",
        ),
        (lambda t: _bad(t, I8, I8.T, "--sim", "xsim"), "invalid choice"),
        (lambda t: _bad(t, I8, I8.T, "--dataflow", "rs"), "invalid choice"),
        (lambda t: _bad(t, I8, I8.T, "--a-signed", 2), "expected 0 or 1"),
    ],
)
def test_bad_input(tmp_path, case, match):
    assert match in case(tmp_path)


def test_missing_file_and_directory(tmp_path):
    result = run_cli(
        tmp_path,
        "--pe",
        "int4",
        "--rows",
        2,
        "--cols",
        2,
        "--a",
        tmp_path / "nope.npy",
        "--b",
        tmp_path / "nope.npy",
        "--out",
        tmp_path / "c.npy",
    )
    assert result.returncode == 2 and "no such file" in result.stderr
    np.save(tmp_path / "a.npy", I8)
    result = run_cli(
        tmp_path,
        "--pe",
        "int4",
        "--rows",
        0,
        "--cols",
        2,
        "--a",
        tmp_path / "a.npy",
        "--b",
        tmp_path / "a.npy",
        "--out",
        tmp_path / "c.npy",
    )
    assert result.returncode == 2 and "positive integer" in result.stderr
    result = run_cli(
        tmp_path,
        "--pe",
        "int4",
        "--rows",
        2,
        "--cols",
        2,
        "--a",
        tmp_path / "a.npy",
        "--b",
        tmp_path / "a.npy",
        "--out",
        tmp_path / "no" / "c.npy",
    )
    assert result.returncode == 2 and "does not exist" in result.stderr


# -- limits, file types, inapplicable options, progress and summary lines (issue 13) ----------------


def _gemm_args(tmp_path, *, rows=2, cols=2, pe="int4", a=None, b=None):
    np.save(tmp_path / "a.npy", I8 if a is None else a)
    np.save(tmp_path / "b.npy", I8.T if b is None else b)
    return ["--pe", pe, "--rows", rows, "--cols", cols, "--a", tmp_path / "a.npy", "--b", tmp_path / "b.npy"]


def _refused(tmp_path, result):
    """One ``verify.gemm: error:`` line, exit 2, no output file."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("verify.gemm: error:"), result.stderr
    assert not (tmp_path / "c.npy").exists() and not list(tmp_path.glob(".c.npy*"))
    return lines[0]


@pytest.mark.parametrize(
    "rows,cols,match",
    [
        (100000, 2, "--rows: 100000 is above the limit of 64"),
        (1, 100000, "--cols: 100000 is above the limit of 64"),
        (64, 64, "4096 PEs, above the limit of 1024"),
    ],
)
def test_array_size_limit_refused_with_reason(tmp_path, rows, cols, match):
    args = _gemm_args(tmp_path, rows=rows, cols=cols)
    line = _refused(tmp_path, run_cli(tmp_path, *args, "--out", tmp_path / "c.npy"))
    assert match in line and "largest tested array is 16x16" in line


def test_text_file_named_npy_is_not_a_npy_file(tmp_path):
    args = _gemm_args(tmp_path)
    (tmp_path / "a.npy").write_text("1,2,3\n4,5,6\n")
    line = _refused(tmp_path, run_cli(tmp_path, *args, "--out", tmp_path / "c.npy"))
    assert "is not a .npy file" in line and "allow_pickle" not in line


def test_out_naming_a_directory_is_refused(tmp_path):
    (tmp_path / "c.npy").mkdir()
    result = run_cli(tmp_path, *_gemm_args(tmp_path), "--out", tmp_path / "c.npy")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "is a directory" in lines[0]


@pytest.mark.parametrize(
    "pe,option,a,b",
    [
        ("log", "--a-signed", np.zeros((2, 3), np.uint8), I8.T),
        ("fp16", "--a-signed", np.zeros((2, 3), np.float16), np.zeros((3, 2), np.float16)),
        ("fp16", "--b-signed", np.zeros((2, 3), np.float16), np.zeros((3, 2), np.float16)),
    ],
)
def test_inapplicable_signedness_warns_and_still_runs(tmp_path, pe, option, a, b):
    args = _gemm_args(tmp_path, rows=1, cols=1, pe=pe, a=a, b=b)
    result = run_cli(tmp_path, *args, "--out", tmp_path / "c.npy", option, 0)
    assert result.returncode == 0, result.stderr
    assert f"verify.gemm: warning: {option} does not apply to --pe {pe} (ignored)" in result.stderr.splitlines()
    assert (tmp_path / "c.npy").exists()


def test_build_line_then_summary_line(tmp_path, monkeypatch, capsys):
    """A build prints one progress line first; a cached run only the summary; C.npy as before."""
    import verify.gemm as gemm

    started = time.perf_counter()
    monkeypatch.setattr(gemm, "BUILD_ROOT", tmp_path / "cache")
    args = [str(x) for x in _gemm_args(tmp_path, rows=1, cols=1)] + ["--out", str(tmp_path / "c.npy")]
    assert gemm.main(args) == 0
    first = capsys.readouterr()
    lines = first.err.strip().splitlines()
    assert first.out == "" and len(lines) == 2, first.err
    assert lines[0].startswith("verify.gemm: building the 1x1 int4 array for icarus (first run; cached in ")
    assert lines[1].startswith(f"verify.gemm: {tmp_path / 'c.npy'}: int4 2x3x2 on 1x1 (dedicated, icarus): ")
    assert gemm.main(args) == 0
    second = capsys.readouterr().err.strip().splitlines()
    assert len(second) == 1 and second[0].startswith("verify.gemm: ") and "building" not in second[0]
    assert "PE-MACs" not in second[0]
    assert np.array_equal(np.load(tmp_path / "c.npy"), np.zeros((2, 2), np.int64))
    # --verbose: the whole process's wall time and the GEMM's 2 * 3 * 2 MACs over it.
    assert gemm.main([*args, "--verbose"]) == 0
    (verbose,) = capsys.readouterr().err.strip().splitlines()
    match = re.search(r", process (\d+\.\d\d) s: (\d+\.\d) x 10\^6 PE-MACs/s$", verbose)
    assert match, verbose
    # The process has lived at least as long as this test (a build and three runs), and not for days.
    assert time.perf_counter() - started - 0.01 <= float(match[1]) < 86400 and match[2] == "0.0"


def main():
    parser = argparse.ArgumentParser(description="independent bit-exact check of python -m verify.gemm")
    parser.add_argument("--sim", default="icarus", choices=["icarus", "verilator", "verilator-cocotb"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataflow", default=None, choices=["os", "ws"], help="default: verify.gemm's (os)")
    args = parser.parse_args()
    import tempfile

    rng = np.random.default_rng(args.seed)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for pe, rows, cols, modes in CASES:
            m, k, n = (int(v) for v in rng.integers(1, 40, 3))
            ok = check_cli(tmp, pe, rows, cols, args.sim, rng, m, k, n, dataflow=args.dataflow, **modes)
            print(f"{pe:5s} {m}x{k}x{n} on {rows}x{cols} ({args.sim}): {'bit-exact' if ok else 'MISMATCH'}")
            failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
