"""verify.native: the native Verilator harness against the cocotb path on the same builds, and golden.

The default suite compares on two arrays whose native builds tests/verify/test_gemm.py
needs anyway (``--sim verilator`` is the native path): fp16 2x3 (out_data is 96 bits,
a Verilator VlWide port) and the unified train 4x4 (mode inputs, the int4 and log
GEMMs); the cocotb builds of the same arrays are the two extra Verilator builds.
"""

import numpy as np
import pytest

from hw.kinds import GEMMS, KINDS, get_gemm
from verify import native
from verify.gemm import COCOTB_VERILATOR, NATIVE, SIMULATORS, ArrayBuild, Gemm, run_gemms
from verify.simulator import NativeBuild, SimulatorError

#: (GEMM, array, rows, cols) of the default suite; the slow sweep adds every dedicated array.
CASES = [("fp16", "dedicated", 2, 3), ("int4", "train", 4, 4), ("log", "train", 4, 4)]


def _batch(pe, rng, k_values=(13, 1, 40)):
    """GEMMs with partial tiles, K = 1, a K longer than the tile spacing, and both signednesses."""
    gemm = get_gemm(pe)
    batch = []
    for index, k in enumerate(k_values):
        signs = {name: bool(index % 2) for name in gemm.signedness}
        batch.append(Gemm(pe, **gemm.random_inputs(rng, 5 + index, k, 7 - index, **signs), **signs))
    return batch


def _reference(gemm):
    """The golden result of a :class:`Gemm` (with its block scales where the GEMM is scaled)."""
    gemm_type = get_gemm(gemm.pe)
    signs = {name: getattr(gemm, name) for name in gemm_type.signedness}
    return gemm_type.reference(gemm.a, gemm.b, **signs, **gemm_type.scale_arguments(gemm.a_scales, gemm.b_scales))


def _same(pe, x, y):
    bits = get_gemm(pe).result_bits
    return x.dtype == y.dtype and np.array_equal(bits(x), bits(y))


def check_native_equals_cocotb_and_golden(pe, array, rows, cols):
    gemms = _batch(pe, np.random.default_rng(rows * 7 + cols))
    fast = run_gemms(gemms, rows=rows, cols=cols, sim=NATIVE, array=array)
    slow = run_gemms(gemms, rows=rows, cols=cols, sim=COCOTB_VERILATOR, array=array)
    for index, (gemm, x, y) in enumerate(zip(gemms, fast, slow)):
        assert _same(pe, x.c, y.c), f"GEMM {index}: native and cocotb differ"
        assert _same(pe, x.c, _reference(gemm)), f"GEMM {index}: differs from golden"
        assert x.cycles == y.cycles


@pytest.mark.parametrize("pe,array,rows,cols", CASES)
def test_native_equals_cocotb_and_golden(pe, array, rows, cols):
    check_native_equals_cocotb_and_golden(pe, array, rows, cols)


def test_train_array_mixed_batch():
    """Forward and backward GEMMs interleaved in one native run: the mode inputs change per GEMM."""
    rng = np.random.default_rng(5)
    pes = [gemm.name for gemm, _ in KINDS["train"].gemms]
    gemms = [g for pe in pes for g in _batch(pe, rng, (9,))] * 2
    results = run_gemms(gemms, rows=4, cols=4, sim=NATIVE, array="train")
    for gemm, result in zip(gemms, results):
        signs = {name: getattr(gemm, name) for name in get_gemm(gemm.pe).signedness}
        assert _same(gemm.pe, result.c, get_gemm(gemm.pe).reference(gemm.a, gemm.b, **signs))


def test_harness_reports_the_model_ports():
    build = ArrayBuild(kind="train", rows=4, cols=4, acc_width=KINDS["train"].acc_width_for(1), sim=NATIVE)
    build.ensure()
    harness = native.load(build.hdl.library)
    assert native.load(build.hdl.library) is harness  # loaded once per process
    assert set(harness.mode_names) == set(KINDS["train"].mode_inputs("int4"))
    assert harness.port_bytes["a_in"] >= 2 and harness.port_bytes["out_data"] >= 4 * 32 // 8
    cycles = 3
    zeros = np.zeros(cycles, np.uint8)
    with pytest.raises(ValueError, match="mode inputs"):
        harness.run(
            a_bytes=np.zeros((cycles, 2), np.uint8),
            b_bytes=np.zeros((cycles, 2), np.uint8),
            valid=zeros,
            clear=zeros,
            last=zeros,
            modes={},
            drain_cycles=1,
            expected_results=0,
            valid_len=1,
            data_len=16,
        )
    # Nothing valid, nothing drains: no records.
    valid, data, results, _ = harness.run(
        a_bytes=np.zeros((cycles, 2), np.uint8),
        b_bytes=np.zeros((cycles, 2), np.uint8),
        valid=zeros,
        clear=zeros,
        last=zeros,
        modes={name: zeros for name in harness.mode_names},
        drain_cycles=20,
        expected_results=0,
        valid_len=1,
        data_len=16,
    )
    assert valid.shape == (0, 1) and data.shape == (0, 16) and results == 0


def test_simulators_and_config():
    assert SIMULATORS[:2] == ("icarus", "verilator") and COCOTB_VERILATOR in SIMULATORS
    text = native.harness_config("x_array", ("clk", "rst", "a_in", "b_in", "valid", "mode", "out_data", "a_signed"))
    assert '#include "Vx_array.h"' in text and "#define FOURBIT_TOP Vx_array" in text
    assert "FOURBIT_MODE_PORTS(X) X(mode) X(a_signed)\n" in text


def test_native_cache_key_covers_the_harness(tmp_path):
    harness = tmp_path / "h.cpp"
    harness.write_bytes(native.HARNESS.read_bytes())

    def build(**options):
        return NativeBuild(
            toplevel="top", directory=tmp_path / "b", verilog="module top; endmodule\n", stamp="s", **options
        )

    key = build(harness=harness, config="").cache_key()
    assert build(harness=harness, config="// other").cache_key() == key  # derived from the design (stamp)
    assert build(harness=harness, config="", cflags=("-O3",)).cache_key() != key
    harness.write_text(harness.read_text() + "\n// changed\n")
    assert build(harness=harness, config="").cache_key() != key
    with pytest.raises(SimulatorError, match="native library"):
        build(harness=harness, config="").test("verify.array_tb")


@pytest.mark.slow
@pytest.mark.parametrize("pe", list(GEMMS))
@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 2), (5, 9)])
def test_native_equals_cocotb_dedicated_long(pe, rows, cols):
    check_native_equals_cocotb_and_golden(pe, "dedicated", rows, cols)


def test_threaded_run_records_what_a_serial_run_does():
    """A schedule cut at tile starts into parts run on separate models in threads: every column drains
    the same values in order (a cycle where two parts' drains overlap becomes two records)."""
    from hw import tiling

    kind = KINDS["train"]
    build = ArrayBuild(kind="train", rows=4, cols=4, acc_width=kind.acc_width_for(1), sim=NATIVE)
    build.ensure()
    harness = native.load(build.hdl.library)
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 16, (13, 9)).astype(np.uint64), rng.integers(0, 16, (9, 10)).astype(np.uint64)
    plan = tiling.schedule(a, b, 4, 4)
    options = dict(
        a_bytes=tiling.pack_rows(plan.a_words, kind.a_width),
        b_bytes=tiling.pack_rows(plan.b_words, kind.b_width),
        valid=plan.valid,
        clear=plan.clear,
        last=plan.last,
        modes={name: np.zeros(plan.cycles, np.uint8) for name in harness.mode_names},
        drain_cycles=4 * 4 + 4 + 8,
        expected_results=plan.results_per_column * 4,
        valid_len=1,
        data_len=16,
    )

    def columns(record):
        valid, data = tiling.unpack_rows(record[0], 4, 1), tiling.unpack_rows(record[1], 4, 32)
        return [data[valid[:, j] == 1, j] for j in range(4)]

    serial = harness.run(**options, threads=1)
    assert serial[2] == plan.results_per_column * 4
    for threads in (2, 5, 100):
        parallel = harness.run(**options, threads=threads)
        assert parallel[2] == serial[2]
        for j, (x, y) in enumerate(zip(columns(parallel), columns(serial))):
            assert np.array_equal(x, y), (threads, j)


def test_split_cuts_at_tile_starts():
    starts = np.arange(0, 100, 10)
    assert native._split(100, starts, 1) == [(0, 100)]
    assert native._split(100, starts, 2) == [(0, 50), (50, 100)]
    parts = native._split(100, starts, 30)
    assert parts[0][0] == 0 and parts[-1][1] == 100 and all(begin in starts for begin, _ in parts)
    assert native._split(5, np.array([0]), 4) == [(0, 5)]
    assert 1 <= native.default_threads(10) == 1 and native.default_threads(1 << 30) <= 4
