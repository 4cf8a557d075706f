"""Hardware-in-the-loop training on the simulated datapath: a tiny MLP, bit-exact every step.

The co-simulation builds the datapath with Verilator once (cached under
build/cosim) and trains a 64-8-10 MLP on digits for 3 steps through it; the
test fails if any master-weight bit differs from the golden run.
"""

import pytest
import torch

from verify.cosim import PRESETS, run_cosim
from verify.cosim.__main__ import main
from verify.cosim.host import build_models, same_bits


def test_tiny_mlp_bit_exact():
    steps = []
    report = run_cosim(**PRESETS["tiny"], on_step=steps.append)
    assert len(report["steps"]) == PRESETS["tiny"]["steps"] == len(steps)
    for r in report["steps"]:
        assert r["match"], f"step {r['step']}: master weights differ from golden"
        assert r["loss"] == r["loss_golden"]
        assert r["compute_cycles"] > 0 and {g["name"] for g in r["gemms"]} == {"1.fwd", "3.fwd", "3.dx", "3.dw", "1.dw"}


def test_same_bits_sees_one_ulp():
    a, b = build_models(n_in=4, hidden=3, n_out=2)
    assert same_bits(a, b)
    with torch.no_grad():
        w = b[1].weight
        w[0, 0] = torch.nextafter(w[0, 0], torch.tensor(1.0))
    assert not same_bits(a, b)


def test_rejects_network_beyond_the_datapath():
    params = {**PRESETS["tiny"], "geometry": {**PRESETS["tiny"]["geometry"], "k_depth": 32}}
    with pytest.raises(ValueError, match=r"K = 64 exceeds the operand buffer depth k_depth = 32"):
        run_cosim(**params)
    params = {**PRESETS["tiny"], "batch": 40}
    with pytest.raises(ValueError, match=r"grad_depth = 64"):
        run_cosim(**params)


def test_cli_bad_input(capsys):
    assert main(["--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["--preset", "tiny", "--hidden", "100"]) == 2
    assert "exceeds" in capsys.readouterr().err


def test_measured_fmax_matches_preset_geometry_with_default_widths(tmp_path):
    import json

    from verify.cosim.__main__ import measured_fmax

    preset_geometry = {"rows": 8, "cols": 8, "k_depth": 64, "grad_depth": 512, "mask_depth": 512}
    assert measured_fmax("digits", preset_geometry, build_root=tmp_path) == (None, None)
    record = {"geometry": {**preset_geometry, "acc_width": 32, "grad_width": 48}, "fmax_mhz": 30.2, "device": "ECP5"}
    (tmp_path / "fmax_digits.json").write_text(json.dumps(record))
    mhz, source = measured_fmax("digits", preset_geometry, build_root=tmp_path)
    assert mhz == 30.2 and "ECP5" in source
    # Another geometry is not this measurement.
    assert measured_fmax("digits", {**preset_geometry, "rows": 4}, build_root=tmp_path) == (None, None)
