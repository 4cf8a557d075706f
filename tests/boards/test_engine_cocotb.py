"""The UART GEMM engine end to end in cocotb: host driver -> UART model -> board top -> golden/.

The simulated top is :class:`boards.platforms.ClockedEngine`, the board top
without its pin buffers: with each kind's board clock divider (fp16 runs
from the board clock divided by 2, as on the boards). Small arrays and
buffers (depth 8, so K > 8 exercises the ACCUMULATE chunks; M and N not
multiples of R and C exercise the zero-padded edge tiles), every array kind,
on Icarus and Verilator.
"""

import hashlib
import json
import pathlib

import pytest

from boards.platforms import BAUD, BOARDS, ClockedEngine
from rtl_gen.generate import to_verilog
from verify.simulator import HDLBuild, SimulationFailed

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = REPO_ROOT / "build" / "boards" / "sim"
DIVISOR = 8  # engine clock cycles per UART bit
DEPTH = 8


def case(pe, m, k, n, *, a_signed=True, b_signed=True, seed=0):
    return {"pe": pe, "m": m, "k": k, "n": n, "a_signed": a_signed, "b_signed": b_signed, "seed": seed}


CASES = {
    "int4": [
        case("int4", 5, 11, 4, seed=1),
        case("int4", 3, 3, 2, a_signed=False, seed=2),
        case("int4", 2, 17, 5, b_signed=False, seed=3),
        case("int4", 2, 0, 3),
    ],
    "log": [case("log", 4, 9, 4, seed=4), case("log", 3, 5, 3, b_signed=False, seed=5)],
    "fp16": [case("fp16", 3, 10, 4, seed=6)],
    "train": [case("int4", 3, 9, 4, a_signed=False, seed=7), case("log", 3, 9, 4, seed=8)],
    # K = 40: a partial last block (padded by the host), run in ACCUMULATE chunks of depth 8
    # that do not line up with the blocks; random scales include products beyond binary32.
    "mxfp4": [case("mxfp4", 3, 40, 3, seed=11), case("mxfp4", 2, 64, 2, seed=12)],
    "nvfp4": [case("nvfp4", 3, 40, 3, seed=13)],
    # The lean FPGA array sized for K = 12 (13-bit results, 18 products without overflow):
    # K = 40 runs as three GEMMs the host adds up, each in ACCUMULATE chunks of depth 8.
    "int4-lean": [
        case("int4", 5, 11, 4, seed=1),
        case("int4", 3, 3, 2, a_signed=False, seed=2),
        case("int4", 2, 17, 5, b_signed=False, seed=3),
        case("int4", 2, 0, 3),
        case("int4", 3, 40, 4, a_signed=False, b_signed=False, seed=10),
    ],
    "log-lean": [case("log", 4, 9, 4, seed=4), case("log", 3, 5, 3, b_signed=False, seed=5)],
}
#: Declared K of the lean engines simulated here.
LEAN_MAX_K = 12


#: ``python -m boards.host`` arguments for the tty test (int4 on Icarus only:
#: K = 10 > depth 8 and M, N not multiples of the 2x3 array).
HOST_CLI = ["--pe", "int4", "--m", "3", "--k", "10", "--n", "4", "--seed", "9"]


def _simulate(kind, sim, rows, cols, tmp_path, host_cli=None, lean=False):
    # The ULX3S's divider (the iCEBreaker's is the same but for the block kinds' 4: the same
    # phase counter, its constraint in test_cli); the board clock is chosen for DIVISOR.
    clock_div = BOARDS["ulx3s"].clock_div(kind)
    top = ClockedEngine(
        kind=kind,
        rows=rows,
        cols=cols,
        board_hz=DIVISOR * clock_div * BAUD,
        depth=DEPTH,
        clock_div=clock_div,
        lean=lean,
        max_k=LEAN_MAX_K if lean else None,
    )
    assert top.engine.divisor == DIVISOR
    text = to_verilog(top, "gemm_engine")
    build = HDLBuild(
        toplevel="gemm_engine",
        sim=sim,
        directory=BUILD / f"{kind}{'_lean' if lean else ''}_{rows}x{cols}_d{DEPTH}_div{clock_div}" / sim,
        verilog=text,
        stamp=hashlib.sha256(text.encode()).hexdigest(),  # a changed design is rebuilt
        verilator_args=("-Wno-fatal",),
    )
    env = {
        "FOURBIT_UART_BIT_CLOCKS": str(DIVISOR * clock_div),
        "FOURBIT_ENGINE_CASES": json.dumps(CASES[f"{kind}-lean" if lean else kind]),
    }
    if host_cli is not None:
        env["FOURBIT_HOST_CLI"] = json.dumps(host_cli)
    try:
        result = build.test("boards.engine_tb", name="sim", env=env, test_dir=tmp_path)
    except SimulationFailed as error:
        pytest.fail(f"{error}\n{error.result.log_tail()}")
    assert result.tests == 3
    assert result.skipped == (0 if host_cli else 1)


@pytest.mark.parametrize(
    "kind,rows,cols", [("int4", 2, 3), ("log", 2, 2), ("fp16", 2, 2), ("train", 2, 3), ("mxfp4", 2, 2), ("nvfp4", 1, 2)]
)
def test_engine_icarus(kind, rows, cols, tmp_path):
    _simulate(kind, "icarus", rows, cols, tmp_path, host_cli=HOST_CLI if kind == "int4" else None)


# Verilator compiles take minutes on a loaded 2-core machine: fp16 runs with the slow tests.
@pytest.mark.parametrize("kind,rows,cols", [("int4", 3, 2), pytest.param("fp16", 1, 2, marks=pytest.mark.slow)])
def test_engine_verilator(kind, rows, cols, tmp_path):
    _simulate(kind, "verilator", rows, cols, tmp_path)


# The lean FPGA engines (hw.fpga_array): as slow as the other Icarus engines, so with the slow tests.
@pytest.mark.slow
@pytest.mark.parametrize("kind,rows,cols", [("int4", 2, 3), ("log", 2, 2)])
def test_lean_engine_icarus(kind, rows, cols, tmp_path):
    _simulate(kind, "icarus", rows, cols, tmp_path, lean=True)
