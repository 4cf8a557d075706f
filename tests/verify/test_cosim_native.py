"""The native datapath harness against the cocotb driver it ports: identical results and cycle counts.

The same operations (a forward GEMM with masks and codes, gradient loads, FP4
encodes, a masked backward GEMM into the gradient memory, a weight-gradient
GEMM; shapes that leave partial tiles) run on the tiny datapath through
:class:`verify.cosim.native.NativeDatapath` and
:class:`verify.cosim.remote.RemoteDatapath` (cocotb on Verilator); every
returned array, scalar and :class:`verify.cosim.driver.GemmStats` must be equal.
The native harness's two host-port modes (direct, the default, and clocked) must
agree with each other as well. Then a whole tiny co-simulation runs every way and
must record the same steps.
"""

import dataclasses

import numpy as np
import pytest

from hw.datapath.top import POST_GRAD, POST_MASK, POST_NONE
from hw.kinds.train import MODE_INT, MODE_LOG
from verify.cosim import PRESETS, run_cosim
from verify.cosim.build import DatapathBuild
from verify.cosim.driver import GemmStats, Geometry
from verify.cosim.native import NativeDatapath
from verify.cosim.remote import DatapathError, RemoteDatapath

GEOMETRY = Geometry(**PRESETS["tiny"]["geometry"])


def _operations(dp):
    """A fixed sequence of datapath operations; everything they return, in order."""
    rng = np.random.default_rng(16)
    out = []
    a, w = rng.integers(-7, 8, (6, 21)), rng.integers(-7, 8, (21, 7))
    bias = rng.integers(-3000, 3000, 7)
    out.append(
        dp.gemm(
            "fwd",
            a,
            w,
            mode=MODE_INT,
            a_signed=True,
            b_signed=True,
            bias=bias,
            post=POST_MASK,
            m0=23000,
            shift=20,
            base=5,
            stride=7,
            want_codes=True,
        )
    )
    out.append(
        dp.gemm(
            "fwd2",
            rng.integers(0, 16, (5, 9)),
            rng.integers(-7, 8, (9, 3)),
            mode=MODE_INT,
            a_signed=False,
            b_signed=True,
            bias=bias[:3],
        )
    )
    dp.clear_amax()
    dp.load_grad(rng.integers(-(1 << 44), 1 << 44, 42).tolist())
    out.append(dp.encode(42))
    dp.clear_amax()
    g = rng.integers(0, 16, (6, 9))
    out.append(
        dp.gemm(
            "dx",
            g,
            rng.integers(-7, 8, (9, 7)),
            mode=MODE_LOG,
            a_signed=False,
            b_signed=True,
            post=POST_GRAD,
            base=5,
            stride=7,
            use_mask=True,
        )
    )
    out.append(dp.encode(42))
    out.append(dp.gemm("dw", g.T, a[:, :9] & 0xF, mode=MODE_LOG, a_signed=False, b_signed=False, post=POST_NONE))
    # Multi-tile commands broken by a bias change and by the B buffer's depth (64 // 13 = 4 tiles).
    bias = np.repeat([7, 7, -5, -5, -5, -5, -5], 4)[:26]
    out.append(dp.gemm("tiles", *_int_operands(5, 13, 26), mode=MODE_INT, a_signed=True, b_signed=True, bias=bias))
    return out


def _int_operands(m, k, n, seed=3):
    rng = np.random.default_rng(seed)
    return rng.integers(-8, 8, (m, k)), rng.integers(-8, 8, (k, n))


def _assert_same(native, cocotb, where="result"):
    assert type(native) is type(cocotb), f"{where}: {type(native).__name__} vs {type(cocotb).__name__}"
    if isinstance(native, np.ndarray):
        assert native.dtype == cocotb.dtype and native.shape == cocotb.shape, where
        assert np.array_equal(native, cocotb), f"{where}: values differ"
    elif isinstance(native, (tuple, list)):
        assert len(native) == len(cocotb), where
        for i, (x, y) in enumerate(zip(native, cocotb, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(native, GemmStats):
        assert dataclasses.asdict(native) == dataclasses.asdict(cocotb), where
    else:
        assert native == cocotb, where


def test_native_operations_equal_cocotb(tmp_path):
    with NativeDatapath(DatapathBuild(GEOMETRY, sim="verilator")) as dp:
        native = _operations(dp)
    with RemoteDatapath(DatapathBuild(GEOMETRY, sim="verilator-cocotb"), tmp_path) as dp:
        cocotb = _operations(dp)
    _assert_same(native, cocotb)
    # The operations exercised what they should: masks, codes, saturation, a non-zero gradient scale.
    (_total, codes, inside, sat), stats = native[0]
    assert sat.any() and not sat.all()
    assert inside.any() and not inside.all() and codes.any() and stats.tiles == 2 * 2
    assert native[2][3] > 0 and native[4][3] > 0
    assert dp.totals["compute_cycles"] > 0 and dp.totals["io_cycles"] > 0


def test_multi_tile_gemm_totals_and_cycles():
    # POST_NONE GEMMs stream every column tile of a row block that fits the B buffer in one command:
    # the totals are the exact products (+ bias), and each tile after the first costs
    # max(k, 2R - 1) busy cycles instead of a whole command (manifest timing).
    R = GEOMETRY.rows
    with NativeDatapath(DatapathBuild(GEOMETRY, sim="verilator")) as dp:
        for k in (3, 2 * R - 1, 15):  # 4 * k words fit the B buffer (k_depth 64)
            a, b = _int_operands(R, k, 4 * GEOMETRY.cols, seed=k)
            bias = np.full(b.shape[1], -(1 << 30))
            (total, one_tile), (total4, four_tiles) = (
                dp.gemm("w", a, b[:, :n], mode=MODE_INT, a_signed=True, b_signed=True, bias=bias[:n])
                for n in (GEOMETRY.cols, b.shape[1])
            )
            assert np.array_equal(total4, a @ b + bias) and np.array_equal(total, total4[:, : GEOMETRY.cols])
            assert (one_tile.tiles, four_tiles.tiles) == (1, 4)
            assert four_tiles.compute_cycles == one_tile.compute_cycles + 3 * max(k, 2 * R - 1)
            # The same tiles one per command (codes wanted) cost a whole command each.
            (_, *_), singles = dp.gemm("s", a, b, mode=MODE_INT, a_signed=True, b_signed=True, want_codes=True)
            assert singles.compute_cycles == 4 * one_tile.compute_cycles


def test_direct_host_ports_equal_clocked():
    # The direct host ports (the default) skip the idle clocks of host transfers; the clocked ones
    # clock the model once per host word as the cocotb driver does. Same results and cycle counts.
    build = DatapathBuild(GEOMETRY, sim="verilator")
    results, clocks = {}, {}
    for mode in ("direct", "clocked"):
        with NativeDatapath(build, host_ports=mode) as dp:
            results[mode] = _operations(dp)
            clocks[mode] = dp.clocks()
        assert dp.host_ports == mode
    _assert_same(results["direct"], results["clocked"])
    # Direct mode simulates fewer clocks: the operand words, result rows and code words it moved.
    assert clocks["direct"] < clocks["clocked"]
    with pytest.raises(ValueError, match="unknown host_ports 'fast'"):
        NativeDatapath(build, host_ports="fast")


def test_native_cosim_records_equal_cocotb():
    def records(sim, **options):
        report = run_cosim(**{**PRESETS["tiny"], "steps": 2}, sim=sim, **options)
        return [{key: value for key, value in r.items() if not key.endswith("seconds")} for r in report["steps"]]

    native, cocotb = records("verilator"), records("verilator-cocotb")
    assert native == cocotb
    assert all(r["match"] for r in native)
    assert records("verilator", host_ports="clocked") == native


def test_native_refuses_bad_operations():
    with NativeDatapath(DatapathBuild(GEOMETRY, sim="verilator")) as dp:
        with pytest.raises(ValueError, match=r"K = 65 exceeds the operand buffer depth k_depth = 64"):
            dp.gemm("big", np.zeros((2, 65)), np.zeros((65, 2)), mode=MODE_INT, a_signed=True, b_signed=True)
        with pytest.raises(ValueError, match=r"values outside the 4-bit codes"):
            dp.gemm("wide", np.full((2, 3), 16), np.zeros((3, 2)), mode=MODE_INT, a_signed=True, b_signed=True)
        with pytest.raises(ValueError, match=r"grad_depth = 64"):
            dp.load_grad([1] * 65)
        # A configuration the port cannot hold is refused by the harness, not truncated.
        with pytest.raises(DatapathError, match=r"^shift: value 64 does not fit 6 bits$"):
            dp.gemm("shift", np.ones((2, 3)), np.ones((3, 2)), mode=MODE_INT, a_signed=True, b_signed=True, shift=64)
    with pytest.raises(ValueError, match="needs a native build"):
        NativeDatapath(DatapathBuild(GEOMETRY, sim="verilator-cocotb"))
