"""GEMMs on the generated arrays through cocotb (Icarus and Verilator), bit for bit against golden.reference.

The default suite keeps the Verilator builds few (one per array used below,
cached under build/gemm); the ``slow`` tests (``make verify-arrays-long``)
sweep more sizes, K up to 1024 and every kind on both simulators.
"""

import numpy as np
import pytest
import torch

from golden.formats.fp16 import float_to_fp32_bits
from golden.reference import fp16_gemm, int_gemm, log_gemm
from verify.gemm import Gemm, GemmError, run_gemm, run_gemms


def _ints(rng, shape, signed):
    return (rng.integers(-8, 8, shape) if signed else rng.integers(0, 16, shape)).astype(np.int8)


def check_int4(a, b, *, rows, cols, sim, a_signed=True, b_signed=True, array="dedicated"):
    result = run_gemm("int4", a, b, rows=rows, cols=cols, sim=sim, a_signed=a_signed, b_signed=b_signed, array=array)
    expected = int_gemm(torch.from_numpy(a), torch.from_numpy(b), a_signed=a_signed, b_signed=b_signed)
    assert result.c.dtype == np.int64
    assert np.array_equal(result.c, expected.numpy())
    return result


def check_log(g, x, *, rows, cols, sim, b_signed=True, array="dedicated"):
    result = run_gemm("log", g, x, rows=rows, cols=cols, sim=sim, b_signed=b_signed, array=array)
    expected = log_gemm(torch.from_numpy(g), torch.from_numpy(x), x_signed=b_signed)
    assert result.c.dtype == np.int64
    assert np.array_equal(result.c, expected.numpy())
    return result


def check_fp16(a, b, *, rows, cols, sim):
    result = run_gemm("fp16", a, b, rows=rows, cols=cols, sim=sim)
    expected = float_to_fp32_bits(fp16_gemm(torch.from_numpy(a), torch.from_numpy(b))).numpy()
    assert result.c.dtype == np.float32
    assert np.array_equal(result.c.view(np.uint32).astype(np.int64), expected)
    return result


# -- int4 ---------------------------------------------------------------------------------------

INT4_SIZES = [
    ("icarus", 1, 1),
    ("icarus", 2, 3),
    ("icarus", 3, 2),
    ("icarus", 4, 4),
    ("icarus", 8, 8),
    ("verilator", 3, 2),
]


@pytest.mark.parametrize("sim,rows,cols", INT4_SIZES)
def test_int4_random(sim, rows, cols):
    rng = np.random.default_rng(rows * 31 + cols)
    # Partial tiles on both edges; every signedness combination across the sizes.
    a_signed, b_signed = bool(rows % 2), bool((rows + cols) % 2 == 0)
    m, k, n = 2 * rows + 1, 13, 2 * cols + 1
    check_int4(
        _ints(rng, (m, k), a_signed),
        _ints(rng, (k, n), b_signed),
        rows=rows,
        cols=cols,
        sim=sim,
        a_signed=a_signed,
        b_signed=b_signed,
    )


def golden_of(gemm):
    a, b = torch.from_numpy(gemm.a), torch.from_numpy(gemm.b)
    if gemm.pe == "int4":
        return int_gemm(a, b, a_signed=gemm.a_signed, b_signed=gemm.b_signed).numpy()
    if gemm.pe == "log":
        return log_gemm(a, b, x_signed=gemm.b_signed).numpy()
    return float_to_fp32_bits(fp16_gemm(a, b)).numpy().astype(np.uint32).view(np.float32)


def check_batch(gemms, *, rows, cols, sim, array="dedicated", dataflow="os"):
    """Run ``gemms`` in one simulation; every result bit for bit equal to golden."""
    results = run_gemms(gemms, rows=rows, cols=cols, sim=sim, array=array, dataflow=dataflow)
    for index, (gemm, result) in enumerate(zip(gemms, results)):
        expected = golden_of(gemm)
        assert result.c.dtype == expected.dtype, index
        assert np.array_equal(
            result.c.view(np.uint32) if gemm.pe == "fp16" else result.c,
            expected.view(np.uint32) if gemm.pe == "fp16" else expected,
        ), f"GEMM {index}"
    return results


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_int4_extremes_k512(sim):
    rng = np.random.default_rng(512)
    k = 512
    # All -8 (the largest positive products, -8 * -8), mixed with random rows.
    a = np.full((4, k), -8, np.int8)
    a[3] = _ints(rng, k, True)
    b = np.full((k, 3), -8, np.int8)
    b[:, 2] = 7
    results = check_batch(
        [
            Gemm("int4", a, b),
            # All 15 unsigned: 225 per product, 115200 per output.
            Gemm("int4", np.full((3, k), 15, np.int8), np.full((k, 2), 15, np.int8), a_signed=False, b_signed=False),
            # UINT4 15 x INT4 -8: the most negative product.
            Gemm("int4", np.full((3, k), 15, np.int8), np.full((k, 2), -8, np.int8), a_signed=False),
        ],
        rows=3,
        cols=2,
        sim=sim,
    )
    assert (results[0].c[:3, :2] == 64 * k).all()
    assert (results[1].c == 225 * k).all() and (results[2].c == -120 * k).all()


def _lean_batch(rng, k):
    """Every signedness mode (random, partial tiles), the K extremes, K = 0: one run on one array."""
    gemms = [
        Gemm("int4", _ints(rng, (5, 7), a_signed), _ints(rng, (7, 4), b_signed), a_signed=a_signed, b_signed=b_signed)
        for a_signed in (False, True)
        for b_signed in (False, True)
    ]
    gemms += [
        Gemm("int4", np.full((3, k), -8, np.int8), np.full((k, 2), -8, np.int8)),
        Gemm("int4", np.full((3, k), 15, np.int8), np.full((k, 2), 15, np.int8), a_signed=False, b_signed=False),
        Gemm("int4", np.full((3, k), 15, np.int8), np.full((k, 2), -8, np.int8), a_signed=False),
        Gemm("int4", np.full((3, k), 0, np.int8), np.full((k, 2), 0, np.int8), a_signed=False, b_signed=False),
        Gemm("int4", np.zeros((3, 0), np.int8), np.zeros((0, 4), np.int8), a_signed=False),
    ]
    return gemms


@pytest.mark.parametrize("sim,rows,cols", [("icarus", 2, 3), pytest.param("verilator", 3, 2, marks=pytest.mark.slow)])
def test_lean_fpga_int4(sim, rows, cols):
    """The lean FPGA array (hw.fpga_array): every mode switched between GEMMs of one run, K = 512 extremes."""
    rng = np.random.default_rng(40 + rows)
    results = check_batch(_lean_batch(rng, 512), rows=rows, cols=cols, sim=sim, dataflow="os-lean")
    assert (results[4].c == 64 * 512).all() and (results[5].c == 225 * 512).all()
    assert (results[6].c == -120 * 512).all() and not results[7].c.any() and not results[8].c.any()


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_lean_fpga_log(sim):
    rng = np.random.default_rng(44)
    g = rng.integers(0, 16, (5, 9)).astype(np.uint8)
    g[0] = 7  # e = 7: the largest shift
    g[1] = 15
    gemms = [Gemm("log", g, _ints(rng, (9, 4), b_signed), b_signed=b_signed) for b_signed in (False, True)]
    gemms.append(Gemm("log", np.full((2, 64), 7, np.uint8), np.full((64, 3), 15, np.int8), b_signed=False))
    check_batch(gemms, rows=2, cols=3, sim=sim, dataflow="os-lean")


def test_lean_fpga_refuses_a_kind_without_a_lean_rule():
    with pytest.raises(GemmError, match="no lean FPGA array"):
        run_gemm("fp16", np.zeros((2, 2), np.float16), np.zeros((2, 2), np.float16), rows=2, cols=2, dataflow="os-lean")


def test_k_zero():
    result = run_gemm("int4", np.zeros((3, 0), np.int8), np.zeros((0, 4), np.int8), rows=2, cols=3, sim="icarus")
    assert result.c.shape == (3, 4) and result.c.dtype == np.int64 and not result.c.any()
    result = run_gemm("fp16", np.zeros((2, 0), np.float16), np.zeros((0, 2), np.float16), rows=2, cols=3, sim="icarus")
    assert result.c.shape == (2, 2) and not result.c.view(np.uint32).any()  # +0.0


# -- log (FP4 x INT4) ----------------------------------------------------------------------------


@pytest.mark.parametrize("sim,rows,cols", [("icarus", 2, 3), ("icarus", 3, 2), ("verilator", 2, 3)])
def test_log_random_and_e7(sim, rows, cols):
    rng = np.random.default_rng(rows * 7 + cols)
    # FP4 codes at e = 7 everywhere (both signs), INT4 -8 and UINT4 15 operands, K = 512.
    k = 512
    g = np.where(rng.random((3, k)) < 0.5, 0x7, 0xF).astype(np.uint8)
    g[0] = 0x7
    results = check_batch(
        [
            Gemm("log", rng.integers(0, 16, (7, 11)).astype(np.uint8), _ints(rng, (11, 5), True)),
            Gemm("log", g, np.full((k, 4), 15, np.int8), b_signed=False),
            Gemm("log", g, np.full((k, 4), -8, np.int8)),
        ],
        rows=rows,
        cols=cols,
        sim=sim,
    )
    assert (results[1].c[0] == 15 * 4096 * k).all() and (results[2].c[0] == -8 * 4096 * k).all()


# -- fp16 ----------------------------------------------------------------------------------------


def _fp16_operands(rng):
    a = (rng.standard_normal((5, 17)) * 30).astype(np.float16)
    b = (rng.standard_normal((17, 4)) * 30).astype(np.float16)
    a[0] = np.float16(65504.0)  # max normal: the largest products
    b[:, 0] = np.float16(65504.0)
    a[0, 6], b[6, 3] = np.float16(np.inf), np.float16(2.0)  # overflowed operand: inf
    a[1] = rng.integers(1, 0x400, 17).astype(np.uint16).view(np.float16)  # subnormals
    b[:, 1] = rng.integers(0x8001, 0x8400, 17).astype(np.uint16).view(np.float16)
    a[2, 4], b[4, 2] = np.float16(np.inf), np.float16(0.0)  # inf * 0 -> NaN
    a[3, 5], b[5, 3] = np.float16(-0.0), np.float16(3.0)  # signed zero first
    a[4, 0], b[0, 3] = np.float16(np.nan), np.float16(1.0)
    return a, b


@pytest.mark.parametrize("sim,rows,cols", [("icarus", 2, 3), ("verilator", 2, 3)])
def test_fp16_random_and_specials(sim, rows, cols):
    a, b = _fp16_operands(np.random.default_rng(16))
    result = check_fp16(a, b, rows=rows, cols=cols, sim=sim)
    bits = result.c.view(np.uint32)
    assert bits[0, 3] == 0x7F800000  # inf propagates
    assert bits[2, 2] == 0x7FC00000  # inf * 0: canonical NaN


# -- one real golden training step ---------------------------------------------------------------


@pytest.fixture(scope="module")
def training_step(tmp_path_factory):
    """Capture the integer GEMMs of one ibm4 training step of a small MLP on the digits data."""
    import torch.nn.functional as F

    from golden.capture import TensorCapture, attach_capture, load_capture
    from golden.data import load_dataset
    from golden.models import MLP
    from golden.recipes import get_recipe, prepare_model

    data = load_dataset("digits")
    torch.manual_seed(0)
    model = prepare_model(
        MLP(input_shape=data.input_shape, num_classes=data.num_classes, hidden=16, depth=2), get_recipe("ibm4")
    )
    capture = TensorCapture([0])
    attach_capture(model, capture)
    with capture.step(0):
        loss = F.cross_entropy(model(data.train_x[:12]), data.train_y[:12])
        loss.backward()
    path = tmp_path_factory.mktemp("capture") / "step0.npz"
    capture.save(path)
    records = [r for r in load_capture(path) if r["kind"] in ("int4", "log")]
    ops = {(r["op"], r["kind"]) for r in records}
    assert {("fwd", "int4"), ("dx", "log"), ("dw", "log")} <= ops, ops
    phases = {r["op"]: r["phase"] for r in records if r["kind"] == "log"}
    assert phases == {"dx": 0, "dw": 1}  # TPR: phase 0 feeds dX, phase 1 feeds dW
    return records


def _golden(record):
    if record["kind"] == "int4":
        return int_gemm(
            torch.from_numpy(record["a"]),
            torch.from_numpy(record["b"]),
            a_signed=record["a_signed"],
            b_signed=record["b_signed"],
        ).numpy()
    return log_gemm(torch.from_numpy(record["a"]), torch.from_numpy(record["b"]), x_signed=record["b_signed"]).numpy()


def _gemm(record):
    return Gemm(
        record["kind"], record["a"], record["b"], a_signed=record.get("a_signed", True), b_signed=record["b_signed"]
    )


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_training_step_on_train_array(training_step, sim):
    """Forward INT4 and backward FP4 GEMMs of the step, back to back in one run of the
    unified 4 x 4 train array (its mode bit switches between GEMMs)."""
    results = run_gemms([_gemm(r) for r in training_step], rows=4, cols=4, sim=sim, array="train")
    for record, result in zip(training_step, results):
        where = f"layer {record['layer']} {record['op']}"
        assert np.array_equal(_golden(record), record["c"]), f"{where}: capture disagrees with golden.reference"
        assert np.array_equal(result.c, record["c"]), where


def test_training_step_on_dedicated_arrays(training_step):
    for kind, (rows, cols) in (("int4", (3, 2)), ("log", (2, 3))):
        records = [r for r in training_step if r["kind"] == kind]
        results = run_gemms([_gemm(r) for r in records], rows=rows, cols=cols, sim="icarus")
        for record, result in zip(records, results):
            assert np.array_equal(result.c, record["c"]), f"layer {record['layer']} {record['op']}"


# -- longer sweeps (make verify-arrays-long) -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 3), (3, 2), (4, 4), (8, 8)])
def test_sizes_all_kinds_long(sim, rows, cols):
    rng = np.random.default_rng(1000 + rows * 17 + cols)
    for k in (1, 2, 2 * rows - 2, 2 * rows - 1, 37):
        m, n = rows * 2 + 1, cols + 2
        check_int4(_ints(rng, (m, k), True), _ints(rng, (k, n), False), rows=rows, cols=cols, sim=sim, b_signed=False)
        check_log(rng.integers(0, 16, (m, k)).astype(np.uint8), _ints(rng, (k, n), True), rows=rows, cols=cols, sim=sim)
        check_int4(
            _ints(rng, (m, k), False),
            _ints(rng, (k, n), True),
            rows=rows,
            cols=cols,
            sim=sim,
            a_signed=False,
            array="train",
        )
    a, b = _fp16_operands(rng)
    check_fp16(a, b, rows=rows, cols=cols, sim=sim)


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_k_sweep_long(sim):
    rng = np.random.default_rng(77)
    for k in (1, 3, 64, 255, 512, 1024):
        check_int4(_ints(rng, (5, k), True), _ints(rng, (k, 3), True), rows=4, cols=4, sim=sim)
        check_log(
            rng.integers(0, 16, (5, k)).astype(np.uint8),
            _ints(rng, (k, 3), False),
            rows=4,
            cols=4,
            sim=sim,
            b_signed=False,
        )
        a = (rng.standard_normal((3, k)) * 4).astype(np.float16)
        b = (rng.standard_normal((k, 2)) * 4).astype(np.float16)
        check_fp16(a, b, rows=2, cols=3, sim=sim)


@pytest.mark.slow
def test_wide_accumulator_for_large_k():
    """K beyond the default 24-bit overflow bound (37282) selects a wider accumulator."""
    k = 40000
    result = check_int4(
        np.full((1, k), 15, np.int8),
        np.full((k, 1), 15, np.int8),
        rows=1,
        cols=1,
        sim="verilator",
        a_signed=False,
        b_signed=False,
    )
    assert result.acc_width > 24 and result.c[0, 0] == 225 * k


def test_fingerprint_covers_the_generator():
    """The build cache key hashes every hw module that hw.array needs (besides the
    standalone PEs that hw/__init__ re-exports, which the arrays do not use)."""
    import pathlib
    import subprocess
    import sys

    from verify.gemm import GENERATOR_SOURCES, REPO_ROOT

    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, hw.array; print('\\n'.join(m.__file__ for m in list(sys.modules.values()) "
            "if getattr(m, '__file__', None)))",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    hashed = {path.resolve() for pattern in GENERATOR_SOURCES for path in REPO_ROOT.glob(pattern)}
    re_exported = {
        (REPO_ROOT / "hw" / name).resolve() for name in ("__init__.py", "int4_mac.py", "log_mac.py", "fp16_mac.py")
    }
    for line in loaded.splitlines():
        path = pathlib.Path(line).resolve()
        if path.is_relative_to(REPO_ROOT / "hw") or path.is_relative_to(REPO_ROOT / "golden" / "formats"):
            assert path in hashed or path in re_exported, path
