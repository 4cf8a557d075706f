"""Real builds with the YoWASP tools: a small engine on each board (seconds), a misfit (slow)."""

import json
import subprocess
import sys

import pytest

from boards.synth import DoesNotFit, synthesize
from verify.runner import REPO_ROOT

REPORT_FIELDS = {"device": str, "luts": int, "ffs": int, "dsps": int, "brams": int, "fmax_mhz": float}


@pytest.mark.parametrize(
    "board,device,lut_bel,suffix",
    [
        ("icebreaker", "iCE40UP5K-SG48", "ICESTORM_LC", "bin"),
        ("ulx3s", "LFE5U-85F-BG381", "TRELLIS_COMB", "bit"),
    ],
)
def test_small_build_cli(board, device, lut_bel, suffix, tmp_path):
    """What `make synth BOARD=...` runs, on a 1x1 array: bitstream and report.json."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "boards.synth",
            "--board",
            board,
            "--pe",
            "int4",
            "--rows",
            "1",
            "--cols",
            "1",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert f"{board} ({device}): int4 1x1 array" in result.stdout
    # The progress line points at the logs that hold the tools' output.
    assert (
        f"tool logs in {tmp_path.resolve() / 'top.rpt'} (Yosys) and {tmp_path.resolve() / 'top.tim'}" in result.stderr
    )
    assert (tmp_path / "top.rpt").stat().st_size > 0 and (tmp_path / "top.tim").stat().st_size > 0
    report = json.loads((tmp_path / "report.json").read_text())
    for field, kind in REPORT_FIELDS.items():
        assert isinstance(report[field], kind), field
    assert report["device"] == device and report["dsps"] == 0
    assert report["array"] == {"pe": "int4", "rows": 1, "cols": 1, "macs": 1, "acc_width": 24, "depth": 256}
    assert 0 < report["luts"] <= report["utilization"][lut_bel]["available"]
    assert report["clock_div"] == 1 and report["clock_mhz"] == report["board_clock_mhz"]
    assert report["timing_met"] and report["fmax_mhz"] > report["clock_mhz"]
    assert (tmp_path / f"top.{suffix}").stat().st_size > 0


def test_fp16_runs_from_the_divided_clock(tmp_path):
    """nextpnr times the fp16 engine against the 6 MHz it gets on the iCEBreaker, not the 12 MHz board clock."""
    report = synthesize("icebreaker", pe="fp16", rows=1, cols=1, out=tmp_path)
    assert (report["board_clock_mhz"], report["clock_div"], report["clock_mhz"]) == (12.0, 2, 6.0)
    assert report["timing_met"] and report["clock_mhz"] < report["fmax_mhz"] < report["board_clock_mhz"]


@pytest.mark.parametrize(
    "board,lut_bel,available", [("icebreaker", "ICESTORM_LC", 5280), ("ulx3s", "TRELLIS_COMB", 83640)]
)
def test_pack_only_fit_check(board, lut_bel, available, tmp_path):
    report = synthesize(board, pe="int4", rows=1, cols=1, out=tmp_path, pack_only=True)
    assert report["stage"] == "pack" and "fmax_mhz" not in report
    assert 0 < report["utilization"][lut_bel]["used"] <= report["utilization"][lut_bel]["available"] == available
    assert not (tmp_path / "report.json").exists()
    assert not (tmp_path / "top.bin").exists() and not (tmp_path / "top.bit").exists()


@pytest.mark.slow
def test_too_big_array_reports_utilization(tmp_path):
    with pytest.raises(DoesNotFit) as info:
        synthesize("icebreaker", pe="fp16", rows=4, cols=4, out=tmp_path)
    message = str(info.value)
    assert "fp16 4x4 does not fit on icebreaker (iCE40UP5K-SG48): nextpnr reported" in message
    used, available = info.value.utilization["ICESTORM_LC"]
    assert used > available == 5280
    assert f"ICESTORM_LC {used}/{available}" in message
    assert not (tmp_path / "report.json").exists()
