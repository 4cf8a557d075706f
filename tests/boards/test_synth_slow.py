"""Real place and route (slow: minutes with the WebAssembly tools): ``make test-boards-slow``."""

import json

import pytest

from boards.synth import DoesNotFit, synthesize


pytestmark = pytest.mark.slow


def test_icebreaker_small_build(tmp_path):
    report = synthesize("icebreaker", pe="int4", rows=1, cols=1, out=tmp_path)
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert (tmp_path / "top.bin").stat().st_size > 0
    assert report["device"] == "iCE40UP5K-SG48"
    assert report["array"] == {"pe": "int4", "rows": 1, "cols": 1, "macs": 1, "acc_width": 24, "depth": 256}
    for field in ("luts", "ffs", "dsps", "brams"):
        assert isinstance(report[field], int)
    assert 0 < report["luts"] <= report["utilization"]["ICESTORM_LC"]["available"]
    assert report["fmax_mhz"] > 12.0  # the board clock is met


def test_too_big_array_reports_utilization(tmp_path):
    with pytest.raises(DoesNotFit) as info:
        synthesize("icebreaker", pe="fp16", rows=4, cols=4, out=tmp_path)
    message = str(info.value)
    assert "fp16 4x4 does not fit on icebreaker (iCE40UP5K-SG48): nextpnr reported" in message
    used, available = info.value.utilization["ICESTORM_LC"]
    assert used > available == 5280
    assert f"ICESTORM_LC {used}/{available}" in message
    assert not (tmp_path / "report.json").exists()
