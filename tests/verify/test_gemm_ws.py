"""GEMMs on the generated weight-stationary arrays (hw.ws_array) through verify.gemm ``--dataflow ws``:
every GEMM of every kind, the captured GEMMs of a golden training step, bit for bit, on Icarus, the
cocotb driver on Verilator and the native harness. The native path is also compared with cocotb."""

import numpy as np
import pytest

from hw.kinds import GEMMS, KINDS, get_gemm
from verify.gemm import COCOTB_VERILATOR, NATIVE, Gemm, GemmError, run_gemms

from .test_gemm import _gemm, training_step  # noqa: F401 (the fixture: one captured ibm4 training step)

WS = "ws"


def _random_batch(kind, rng, m=7, k=9, n=5):
    """Every GEMM the kind's array runs, with both signedness modes: partial blocks of A and B, K > R."""
    batch = []
    for gemm, _ in kind.gemms:
        for signed in (True, False):
            a, b = gemm.random_operands(rng, m, k, n, a_signed=signed, b_signed=signed)
            batch.append(Gemm(gemm.name, a, b, a_signed=signed, b_signed=signed))
    return batch


def _check(batch, results):
    for index, (g, result) in enumerate(zip(batch, results)):
        gemm = get_gemm(g.pe)
        want = gemm.reference(g.a, g.b, a_signed=g.a_signed, b_signed=g.b_signed)
        assert result.c.dtype == want.dtype
        assert np.array_equal(gemm.result_bits(result.c), gemm.result_bits(want)), f"GEMM {index} ({g.pe})"


WS_KINDS = [kind for kind in KINDS.values() if kind.weight_stationary]


@pytest.mark.parametrize("kind", WS_KINDS, ids=lambda kind: kind.name)
def test_every_gemm_on_icarus(kind):
    batch = _random_batch(kind, np.random.default_rng(kind.order))
    _check(batch, run_gemms(batch, rows=2, cols=3, sim="icarus", array=kind.name, dataflow=WS))


@pytest.mark.parametrize("kind", [k for k in WS_KINDS if len(k.gemms) > 1], ids=lambda kind: kind.name)
def test_native_equals_cocotb_and_golden(kind):
    """The native harness and the cocotb driver on Verilator drain the same results, equal to golden."""
    batch = _random_batch(kind, np.random.default_rng(40 + kind.order), m=9, k=13, n=5)
    fast = run_gemms(batch, rows=3, cols=2, sim=NATIVE, array=kind.name, dataflow=WS)
    slow = run_gemms(batch, rows=3, cols=2, sim=COCOTB_VERILATOR, array=kind.name, dataflow=WS)
    _check(batch, fast)
    for x, y in zip(fast, slow):
        assert np.array_equal(x.c, y.c) and x.cycles == y.cycles


@pytest.mark.parametrize("sim", ["icarus", NATIVE])
def test_training_step_on_train_ws_array(training_step, sim):  # noqa: F811
    """Forward INT4 and backward FP4 GEMMs of the step back to back on one weight-stationary array
    of the unified kind (the kind that runs every captured GEMM)."""
    kind = next(k for k in KINDS.values() if {r["kind"] for r in training_step} <= {g.name for g, _ in k.gemms})
    results = run_gemms([_gemm(r) for r in training_step], rows=4, cols=4, sim=sim, array=kind.name, dataflow=WS)
    for record, result in zip(training_step, results):
        assert np.array_equal(result.c, record["c"]), f"layer {record['layer']} {record['op']}"


def test_training_step_on_dedicated_ws_arrays(training_step):  # noqa: F811
    for pe, (rows, cols) in zip(sorted({r["kind"] for r in training_step}), ((3, 2), (2, 3))):
        records = [r for r in training_step if r["kind"] == pe]
        results = run_gemms([_gemm(r) for r in records], rows=rows, cols=cols, sim="icarus", dataflow=WS)
        for record, result in zip(records, results):
            assert np.array_equal(result.c, record["c"]), f"layer {record['layer']} {record['op']}"


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", NATIVE])
@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 3), (4, 4)])
def test_sizes_and_k_long(sim, rows, cols):
    rng = np.random.default_rng(500 + rows * 17 + cols)
    for kind in WS_KINDS:
        batch = [
            g
            for k in (0, 1, rows, rows + 1, 3 * rows - 1, 64)
            for g in _random_batch(kind, rng, m=2 * rows * 2 + 3, k=k, n=cols + 2)
        ]
        _check(batch, run_gemms(batch, rows=rows, cols=cols, sim=sim, array=kind.name, dataflow=WS))


def test_every_gemm_is_covered():
    covered = {g.pe for kind in WS_KINDS for g in _random_batch(kind, np.random.default_rng(0))}
    assert covered == {name for name, gemm in GEMMS.items() if any(k.runs(gemm) for k in WS_KINDS)}


def test_output_stationary_only_kind_is_refused():
    for kind in (k for k in KINDS.values() if not k.weight_stationary):
        batch = _random_batch(kind, np.random.default_rng(1))
        with pytest.raises(GemmError, match="output-stationary only"):
            run_gemms(batch, rows=2, cols=2, sim="icarus", array=kind.name, dataflow=WS)
