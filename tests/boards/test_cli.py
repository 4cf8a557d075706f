"""Fast checks of the board tools: bad input, report parsing, the host protocol client (no P&R here)."""

import os

import numpy as np
import pytest

from boards.host import Board, BoardError, BoardInfo, run_gemm
from boards.host import main as host_main
from boards.platforms import BOARDS, BoardTop, uart_divisor
from boards.sweep import headline, table
from boards.sweep import main as sweep_main
from boards.synth import _log_utilization, _run_build, netlist_resources, synthesize
from boards.synth import main as synth_main
from hw import tiling
from hw.engine import GemmEngine
from hw.engine.protocol import Command, Flag, Status, info_reply
from hw.kinds import KINDS as ARRAY_KINDS
from hw.kinds.base import FPGAFit
from verify.gemm import GemmError


def _run(main, *args, capsys):
    """``main(args)`` in-process: (exit status, stderr lines)."""
    try:
        status = main(list(args))
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err.strip().splitlines()


def test_unknown_board_lists_supported(capsys):
    assert _run(synth_main, "--board", "arty", capsys=capsys) == (
        2,
        ["python -m boards.synth: error: unknown board 'arty' (supported: icebreaker, ulx3s)"],
    )
    with pytest.raises(ValueError, match="supported: icebreaker, ulx3s"):
        synthesize("arty")


@pytest.mark.parametrize(
    "args,message",
    [
        (("--pe", "bf16"), "unknown PE kind 'bf16'"),
        (("--rows", "0"), "expected a positive integer"),
    ],
)
def test_synth_bad_input(args, message, capsys):
    status, err = _run(synth_main, "--board", "icebreaker", *args, capsys=capsys)
    assert status == 2 and len(err) == 1 and message in err[0]


def test_sweep_unknown_board(capsys):
    status, err = _run(sweep_main, "--boards", "arty", "--report-only", capsys=capsys)
    assert status == 2 and "supported: icebreaker, ulx3s" in err[0]


def test_host_bad_input(tmp_path, capsys):
    status, err = _run(host_main, "--port", str(tmp_path / "ttyNONE"), "--pe", "int4", capsys=capsys)
    assert status == 2 and len(err) == 1 and "ttyNONE" in err[0]
    status, err = _run(host_main, "--port", "x", "--pe", "int8", capsys=capsys)
    assert status == 2 and "invalid choice" in err[0]
    status, err = _run(host_main, "--port", "x", "--pe", "int4", "--a", "A.npy", capsys=capsys)
    assert status == 2 and "give both --a and --b" in err[0]


@pytest.mark.parametrize(
    "args,message",
    [
        (("--m", "100000000"), "M=100000000 exceeds the limit of 65536"),
        (("--m", "5000", "--k", "5000"), "M*K=25000000 elements exceed the limit of 16777216"),
        (("--m", "512", "--k", "512", "--n", "1024"), "M*K*N=268435456 MACs exceed the limit of 134217728"),
        (("--timeout", "-1"), "--timeout must be a positive number of seconds, not -1.0"),
        (("--timeout", "nan"), "--timeout must be a positive number of seconds"),
        (("--baud", "0"), "unsupported baud rate 0 (standard rates: "),
        (("--baud", "12345"), "unsupported baud rate 12345 (standard rates: "),
    ],
)
def test_host_refuses_before_making_operands(args, message, capsys):
    """Too big a GEMM, a bad timeout or baud rate: one line, exit 2, before any operand is drawn or port opened."""
    status, err = _run(host_main, "--port", "/nonexistent/tty", "--pe", "int4", *args, capsys=capsys)
    assert status == 2 and len(err) == 1 and message in err[0], err
    assert "limit" not in message or "the UART would stream for hours" in err[0]
    assert "baud" not in message or "115200" in err[0]


def test_host_refuses_a_port_that_is_not_a_serial_port(tmp_path, capsys):
    regular = tmp_path / "not-a-tty"
    regular.write_bytes(b"")
    for port in ("/dev/null", str(regular)):
        status, err = _run(host_main, "--port", port, "--pe", "int4", "--m", "2", "--k", "2", "--n", "2", capsys=capsys)
        assert (status, err) == (
            2,
            [f"python -m boards.host: error: {port} is not a serial port (not a terminal device)"],
        )


@pytest.mark.parametrize("given", [("--rows", "3"), ("--cols", "3"), ("--rows", "3", "--cols", "")])
def test_synth_refuses_half_a_size_before_building(given, tmp_path, capsys):
    """`make synth BOARD=ulx3s ROWS=3` would build the default width and overwrite the last bitstream."""
    (tmp_path / "top.bit").write_bytes(b"previous")
    status, err = _run(synth_main, "--board", "ulx3s", *given, "--out", str(tmp_path), capsys=capsys)
    assert status == 2 and len(err) == 1 and "give both --rows and --cols" in err[0]
    assert [p.name for p in tmp_path.iterdir()] == ["top.bit"] and (tmp_path / "top.bit").read_bytes() == b"previous"


def test_host_out_checked_before_the_board_is_opened(tmp_path, capsys):
    port = str(tmp_path / "ttyNONE")
    status, err = _run(host_main, "--port", port, "--pe", "int4", "--out", str(tmp_path), capsys=capsys)
    assert (status, err) == (2, [f"python -m boards.host: error: --out {tmp_path} is a directory, not a file"])
    missing = tmp_path / "no" / "c.npy"
    status, err = _run(host_main, "--port", port, "--pe", "int4", "--out", str(missing), capsys=capsys)
    assert status == 2 and err == [
        f"python -m boards.host: error: --out {missing}: directory {missing.parent} does not exist"
    ]


def test_sweep_sizes_are_checked_integers(capsys):
    status, err = _run(sweep_main, "--sizes", "0", "--report-only", capsys=capsys)
    assert status == 2 and err == [
        "python -m boards.sweep: error: argument --sizes: expected a positive integer, not '0'"
    ]


def test_board_top_validates_eagerly():
    with pytest.raises(ValueError, match="unknown array kind"):
        BoardTop(kind="int8", rows=2, cols=2)
    with pytest.raises(ValueError, match="rows must be >= 1"):
        BoardTop(kind="int4", rows=0, cols=2)
    with pytest.raises(ValueError, match="divisor must be >= 4"):
        GemmEngine(kind="int4", rows=1, cols=1, divisor=2)
    with pytest.raises(ValueError, match="clock_div must be >= 1"):
        BoardTop(kind="int4", rows=1, cols=1, clock_div=0)
    with pytest.raises(TypeError, match="clock_div must be an integer"):
        BoardTop(kind="int4", rows=1, cols=1, clock_div=2.0)


@pytest.mark.parametrize(
    "board,constraint",
    [
        ("icebreaker", "set_frequency core.divided_clk 6.0"),
        ("ulx3s", 'FREQUENCY NET "core.divided_clk" 12500000.0 HZ;'),
    ],
)
def test_divided_engine_clock_is_constrained(board, constraint):
    """fp16 runs at half the board clock by default, and nextpnr is told so."""
    spec = BOARDS[board]
    assert spec.clock_div("fp16") == 2 and spec.clock_div("int4") == 1
    plan = spec.platform().prepare(BoardTop(kind="fp16", rows=1, cols=1, clock_div=2), name="top")
    constraints = plan.files["top.pcf" if spec.family == "ice40" else "top.lpf"]
    assert constraint in constraints
    # The UART divisor follows the engine's clock: 6 MHz / 115200 = 52.1, 12.5 MHz / 115200 = 108.5 (109).
    assert uart_divisor(spec.platform().default_clk_frequency, 2) == {"icebreaker": 52, "ulx3s": 109}[board]
    assert "divided_clk" not in spec.platform().prepare(BoardTop(kind="int4", rows=1, cols=1), name="top").files.get(
        "top.pcf", ""
    )


# nextpnr-ice40 0.11 on int4 6x6 (build/boards/sweep/icebreaker/int4_6x6/top.tim), abridged.
MISFIT_LOG = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:    6314/   5280   119%
Info: \t        ICESTORM_RAM:      16/     30    53%
Info: \t               SB_IO:       3/     39     7%
Info: \t               SB_GB:       2/      8    25%
Info: \t        ICESTORM_PLL:       0/      1     0%
Info: \t         SB_WARMBOOT:       0/      1     0%
Info: \t        ICESTORM_DSP:       0/      8     0%
Info: \t      ICESTORM_HFOSC:       0/      1     0%
ERROR: Failed to expand region (0, 0) |_> (25, 31) of 6314 ICESTORM_LCs
"""


def test_log_utilization():
    found = _log_utilization(MISFIT_LOG)
    assert found["ICESTORM_LC"] == (6314, 5280) and found["ICESTORM_RAM"] == (16, 30)
    assert found["ICESTORM_DSP"] == (0, 8) and len(found) == 8


def test_overfull_build_is_stopped(tmp_path):
    """nextpnr-ecp5 keeps placing a design larger than the device: the build stops at the packed utilisation."""
    (tmp_path / "build_top.sh").write_text(
        "printf 'Info: Device utilisation:\\n' > top.tim\n"
        "printf 'Info: \\t        TRELLIS_COMB:  112120/  83640   134%%\\n' >> top.tim\n"
        "sleep 600\n"
    )
    status, over = _run_build(tmp_path, "build_top", dict(os.environ), poll_seconds=0.1)
    assert (status, over) == (None, {"TRELLIS_COMB": (112120, 83640)})
    (tmp_path / "build_top.sh").write_text("echo fine; exit 3\n")
    assert _run_build(tmp_path, "build_top", dict(os.environ), poll_seconds=0.1) == (3, {})
    assert (tmp_path / "build.log").read_text() == "fine\n"


def test_netlist_resources():
    cells = {
        f"c{i}": {"type": kind}
        for i, kind in enumerate(
            ["LUT4", "LUT4", "CCU2C", "TRELLIS_FF", "TRELLIS_FF", "MULT18X18D", "DP16KD", "TRELLIS_DPR16X4"]
        )
    }
    netlist = {"modules": {"top": {"cells": cells}, "LUT4": {"attributes": {"blackbox": 1}, "cells": cells}}}
    assert netlist_resources(netlist, "ecp5") == {"luts": 5, "ffs": 2, "dsps": 1, "brams": 1}
    ice = {
        f"c{i}": {"type": kind}
        for i, kind in enumerate(["SB_LUT4", "SB_CARRY", "SB_DFF", "SB_DFFESR", "SB_MAC16", "SB_RAM40_4K"])
    }
    assert netlist_resources({"modules": {"top": {"cells": ice}}}, "ice40") == {
        "luts": 1,
        "ffs": 2,
        "dsps": 1,
        "brams": 1,
    }


def test_sweep_table_and_headline():
    results = [
        {
            "board": "icebreaker",
            "pe": "int4",
            "rows": 2,
            "cols": 2,
            "macs": 4,
            "fits": True,
            "luts": 900,
            "ffs": 600,
            "dsps": 0,
            "brams": 2,
            "fmax_mhz": 30.0,
            "clock_mhz": 12.0,
            "utilization": {"ICESTORM_LC": {"used": 1000, "available": 5280}},
        },
        {
            "board": "icebreaker",
            "pe": "int4",
            "rows": 3,
            "cols": 3,
            "macs": 9,
            "fits": False,
            "utilization": {"ICESTORM_LC": {"used": 7364, "available": 5280}},
        },
    ]
    best = headline(results)
    assert list(best) == [("icebreaker", "int4")] and best[("icebreaker", "int4")]["gmacs"] == pytest.approx(0.12)
    text = table(results)
    assert "| icebreaker | int4 | 2x2 | 4 | 900 | 600 | 0 | 2 | 30.0 | yes (12 MHz) | 0.120 | yes |" in text
    assert "no: ICESTORM_LC 7364/5280" in text
    assert "| icebreaker | int4 | 2x2 | 4 | 900 of 5280 | 30.0 | 0.120 | 3x3 does not fit |" in text


def test_sweep_table_pack_only_and_divided_clock():
    results = [
        {
            "board": "ulx3s",
            "pe": "fp16",
            "rows": 2,
            "cols": 2,
            "macs": 4,
            "fits": True,
            "stage": "pnr",
            "luts": 5000,
            "ffs": 800,
            "dsps": 4,
            "brams": 4,
            "fmax_mhz": 17.6,
            "clock_mhz": 12.5,
            "board_clock_mhz": 25.0,
            "clock_div": 2,
            "timing_met": True,
            "utilization": {},
        },
        {
            "board": "ulx3s",
            "pe": "fp16",
            "rows": 3,
            "cols": 3,
            "macs": 9,
            "fits": True,
            "stage": "pack",
            "luts": 12000,
            "ffs": 1500,
            "dsps": 9,
            "brams": 5,
            "utilization": {},
        },
        {
            "board": "ulx3s",
            "pe": "fp16",
            "rows": 2,
            "cols": 2,
            "macs": 4,
            "fits": True,
            "stage": "pack",
            "luts": 5000,
            "ffs": 800,
            "dsps": 4,
            "brams": 4,
            "utilization": {},
        },
    ]
    text = table(results)
    assert "| 17.6 | yes (12.5 MHz = 25/2) | 0.070 | yes |" in text
    assert "| ulx3s | fp16 | 3x3 | 9 | 12000 | 1500 | 9 | 5 | | | | packs (not placed and routed) |" in text
    # A size also placed and routed does not list its pack-only check.
    assert "| ulx3s | fp16 | 2x2 | 4 | 5000 | 800 | 4 | 4 | | | | packs" not in text
    assert headline(results)[("ulx3s", "fp16")]["rows"] == 2


class ScriptedTransport:
    """Replies from a list; records what the host wrote."""

    def __init__(self, replies):
        self.replies, self.written = bytearray(b"".join(replies)), bytearray()

    def write(self, data):
        self.written += data

    def read(self, n):
        if len(self.replies) < n:
            raise BoardError("timeout")
        out, self.replies = bytes(self.replies[:n]), self.replies[n:]
        return out


def _info(kind, rows=2, cols=2, depth=8, acc_width=None):
    acc_width = ARRAY_KINDS[kind].default_acc_width if acc_width is None else acc_width
    return info_reply(kind=kind, rows=rows, cols=cols, acc_width=acc_width, depth=depth)


def test_board_info_roundtrip():
    board = Board(ScriptedTransport([_info("train", rows=3, cols=5, depth=300)]))
    info = board.info()
    assert (info.kind, info.rows, info.cols, info.acc_width, info.depth) == ("train", 3, 5, 32, 300)
    assert bytes(board.transport.written) == bytes([Command.INFO])


def test_board_refusal_is_an_error():
    board = Board(ScriptedTransport([_info("int4"), bytes([Status.OUT_OF_RANGE])]))
    with pytest.raises(BoardError, match="refused LOAD_A: status OUT_OF_RANGE"):
        board.load_a(np.zeros((3, 1), dtype=np.uint8))
    with pytest.raises(BoardError, match="not a fourbit GEMM engine"):
        Board(ScriptedTransport([b"\x00XY" + bytes(9)])).info()


def test_run_gemm_refuses_before_sending():
    a = np.zeros((2, 3), dtype=np.int8)
    board = Board(ScriptedTransport([_info("fp16")]))
    with pytest.raises(GemmError, match="runs fp16 GEMMs, not int4"):
        run_gemm(board, "int4", a, a.T.copy())
    # An 8-bit int4 accumulator cannot hold one product of -120..225.
    board = Board(ScriptedTransport([_info("int4", acc_width=8)]))
    with pytest.raises(GemmError, match="cannot hold one int4 product"):
        run_gemm(board, "int4", np.zeros((2, 3), dtype=np.int8), np.zeros((3, 2), dtype=np.int8))
    assert bytes(board.transport.written) == bytes([Command.INFO])


class EngineModel:
    """The engine's arithmetic in numpy (wrapping ``acc_width``-bit accumulators), as a :class:`Board`."""

    def __init__(self, *, acc_width, rows=2, cols=2, depth=8):
        self.inf = BoardInfo(kind="int4", rows=rows, cols=cols, acc_width=acc_width, depth=depth)
        self.acc = np.zeros((rows, cols), dtype=np.int64)
        self.runs = []

    def info(self):
        return self.inf

    def load_a(self, packed):
        self.a = tiling.unpack_rows(packed, self.inf.rows, 4)

    def load_b(self, packed):
        self.b = tiling.unpack_rows(packed, self.inf.cols, 4)

    def run(self, k, flags):
        signed = [bool(flags & Flag.A_SIGNED), bool(flags & Flag.B_SIGNED)]
        a, b = (tiling.sign_extend(x, 4) if s else x.astype(np.int64) for x, s in zip((self.a[:k], self.b[:k]), signed))
        start = self.acc if flags & Flag.ACCUMULATE else 0
        self.acc = start + a.T @ b
        self.runs.append(k)

    def read_c(self):
        return (self.acc & ((1 << self.inf.acc_width) - 1)).astype(np.uint64)


def test_run_gemm_splits_a_k_the_accumulators_might_not_hold():
    """K above the overflow bound of the reported width: GEMMs of K chunks, added by the host (exact)."""
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 16, (3, 20)).astype(np.int8), np.full((20, 3), 15, np.int8)
    board = EngineModel(acc_width=12)  # holds 9 products of -120..225
    c = run_gemm(board, "int4", a, b, a_signed=False, b_signed=False)
    assert np.array_equal(c, a.astype(np.int64) @ b)
    # K chunks of 9, 9 and 2 (each a GEMM: four 2x2 output tiles, RUNs of at most depth 8).
    assert board.runs == [8, 1] * 8 + [2] * 4


def test_boards_registry():
    assert set(BOARDS) == {"icebreaker", "ulx3s"}
    assert BOARDS["icebreaker"].device == "iCE40UP5K-SG48"
    assert BOARDS["ulx3s"].device == "LFE5U-85F-BG381"


def test_density_bad_input(capsys, tmp_path):
    from boards.density import main as density_main

    status, err = _run(density_main, "--kinds", "fp16", "--out", str(tmp_path), capsys=capsys)
    assert status == 2 and len(err) == 1 and "has no lean FPGA array" in err[0]
    status, err = _run(density_main, "--variants", "lean:x", "--out", str(tmp_path), capsys=capsys)
    assert status == 2 and len(err) == 1 and "unknown variant 'lean:x'" in err[0]


def test_density_synthesizes_and_resumes(capsys, tmp_path):
    """A real 1x1 point of each variant on ECP5 (seconds), then a rerun that synthesizes nothing."""
    from boards.density import main as density_main

    args = ("--families", "ecp5", "--sizes", "1", "--variants", "plain", "lean:256", "--out", str(tmp_path))
    assert density_main(list(args)) == 0
    first = capsys.readouterr()
    rows = [line for line in first.out.splitlines() if line.startswith("| ecp5")]
    assert len(rows) == 2 and all(int(row.split("|")[6]) > 0 for row in rows)  # LUT4s
    assert "16 / 17" in rows[1]  # K = 256: 16-bit PE accumulators, 17-bit results
    assert density_main(list(args)) == 0
    second = capsys.readouterr()
    assert second.out == first.out and second.err == ""


def test_block_kinds_divide_each_board_clock_by_its_own_divider():
    """The block kinds' binary32 path: the iCEBreaker's 12 MHz / 4, the ULX3S's 25 MHz / 2."""
    for pe in ("mxfp4", "nvfp4"):
        assert (BOARDS["icebreaker"].clock_div(pe), BOARDS["ulx3s"].clock_div(pe)) == (4, 2)
    plan = BOARDS["icebreaker"].platform().prepare(BoardTop(kind="mxfp4", rows=1, cols=1, clock_div=4), name="top")
    assert "set_frequency core.divided_clk 3.0" in plan.files["top.pcf"]
    with pytest.raises(ValueError, match=r"^FPGAFit \(icebreaker\): clock_div must be >= 1, not 0$"):
        FPGAFit(largest={}, clock_div={"icebreaker": 0})
