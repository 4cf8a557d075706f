"""The training-step energy (report.step), the per-op workloads and the registers / arithmetic / control split."""

import numpy as np
import pytest

from report import step
from report.energy import cell_classes, is_control_port
from report.stimulus import array_stream, stream, synthetic_gemms

HD = "sky130_fd_sc_hd__"


def _cell(kind, **pins):
    return {"type": HD + kind, "connections": {p: [b] for p, b in pins.items()}}


def test_cell_classes_follow_the_cones(sky130):
    """Registers, the arithmetic cone from a data input to a data register, and the control rest."""
    netlist = {
        "ports": {
            "clk": {"direction": "input", "bits": [2]},
            "a": {"direction": "input", "bits": [3]},
            "valid": {"direction": "input", "bits": [4]},
            "y": {"direction": "output", "bits": [9]},
        },
        "cells": {
            "a_q": _cell("dfxtp_1", CLK=2, D=3, Q=5),
            "valid_q": _cell("dfxtp_1", CLK=2, D=4, Q=6),
            "enable": _cell("inv_1", A=6, Y=7),  # control only
            "zero": _cell("inv_1", A=5, Y=11),  # reads data, drives only a clock gate's enable
            "gate_and": _cell("and2_1", A=7, B=11, X=12),
            "icg": _cell("dlclkp_1", CLK=2, GATE=12, GCLK=8),
            "product": _cell("and2_1", A=5, B=6, X=10),  # data (and a control bit) into the accumulator
            "acc": _cell("dfxtp_1", CLK=8, D=10, Q=9),
        },
    }
    classes = cell_classes(netlist, sky130)
    assert classes == {
        "a_q": "registers",
        "valid_q": "registers",
        "icg": "registers",
        "acc": "registers",
        "product": "arithmetic",
        "enable": "control",
        "zero": "control",
        "gate_and": "control",
    }
    # the same netlist with `a` declared control has no arithmetic at all
    assert "arithmetic" not in cell_classes(netlist, sky130, data_ports=[]).values()
    assert is_control_port("valid") and is_control_port("b_signed") and not is_control_port("a_in")


def test_per_op_workloads_are_their_op_alone():
    gemms = synthetic_gemms()
    assert np.array_equal(stream("train_mac", "fwd", gemms, 300)["a"], stream("train_mac", "forward", gemms, 300)["a"])
    dx = stream("train_mac", "dx", gemms, 300)
    assert dx["mode"].all() and dx["b_signed"].all()  # backward mode, INT4 weights: the dX GEMM only
    dw = array_stream("train", 4, 4, "dw", gemms, 100)
    assert dw["mode"].all() and not dw["b_signed"].any()  # UINT4 activations: the dW GEMM only
    with pytest.raises(ValueError, match="not run on"):
        stream("int4_mac", "dx", gemms, 10)


def _fake_units(per_op):
    def energy(pj):
        return {"pj_per_mac": pj, "registers_pj": pj / 2, "arithmetic_pj": pj / 4, "control_pj": pj / 4}

    units = {name: {"step_energy": {w: energy(per_op[w, name]) for w in ws}} for name, ws in step.STEP_UNITS.items()}
    return units


def test_compose_is_counts_times_measured_energy():
    per_op = {}
    for name, ws in step.STEP_UNITS.items():
        for k, w in enumerate(ws):
            per_op[w, name] = 1.0 + k + len(name) / 10
    counts = {
        "gemms": [
            {"layer": "3", "op": "fwd", "shape": "8x4x2", "macs": 64, "outputs": 16},
            {"layer": "3", "op": "dx", "shape": "8x2x4", "macs": 64, "outputs": 32},
            {"layer": "3", "op": "dw", "shape": "2x8x4", "macs": 64, "outputs": 8},
        ],
        "elements": {"requant": 16, "post_fwd": 16, "grad": 48, "post_bwd": 48, "encode": 16},
        "fp32_layers": [{"layer": "1", "shape": "8x3x4", "fwd": 96, "dx": 0, "dw": 96, "params": 16}],
        "bytes": {"4-bit": 1.0, "baseline": 2.0},
        "params": 100,
    }
    out = step.compose(_fake_units(per_op), counts)
    arr4, arr16 = step.ARRAYS["4-bit"], step.ARRAYS["baseline"]
    gemm4 = 64 * sum(per_op[op, arr4] for op in ("fwd", "dx", "dw"))
    post4 = (
        16 * per_op["requant", "requantizer"] + 48 * per_op["grad", "grad_post"] + 16 * per_op["encode", "fp4_encoder"]
    )
    gemm16 = 64 * sum(per_op[op, arr16] for op in ("fwd", "dx", "dw"))
    post16 = 16 * per_op["post_fwd", "fp16_post"] + 48 * per_op["post_bwd", "fp16_post"]
    assert out["sides"]["4-bit"]["uj"] == pytest.approx((gemm4 + post4) * 1e-6, rel=1e-12)
    assert out["sides"]["baseline"]["uj"] == pytest.approx((gemm16 + post16) * 1e-6, rel=1e-12)
    assert out["ratio"] == pytest.approx((gemm16 + post16) / (gemm4 + post4), rel=1e-12)
    assert out["sides"]["4-bit"]["gemm_share"] == pytest.approx(gemm4 / (gemm4 + post4), rel=1e-12)
    assert out["sides"]["4-bit"]["registers_uj"] == pytest.approx(out["sides"]["4-bit"]["uj"] / 2, rel=1e-12)
    fp32 = out["fp32_layers"]
    assert fp32["macs"] == 192
    extra = 192 * np.mean([per_op[op, arr16] for op in ("fwd", "dx", "dw")]) * 1e-6
    assert fp32["ratio_with_them"] == pytest.approx(
        (out["sides"]["baseline"]["uj"] + extra) / (out["sides"]["4-bit"]["uj"] + extra), rel=1e-12
    )
    # a missing measurement is named, not guessed
    units = _fake_units(per_op)
    del units["fp4_encoder"]["step_energy"]["encode"]
    assert step.compose(units, counts)["missing"] == ["fp4_encoder encode"]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """A real golden-training capture of the digits MLP (ibm4), one epoch, step 3."""
    from golden.train import main

    out = tmp_path_factory.mktemp("cap")
    path = out / "cap.npz"
    argv = ["--dataset", "digits", "--model", "mlp", "--recipe", "ibm4", "--epochs", "1", "--seed", "0"]
    argv += ["--metrics", str(out / "cap.json"), "--capture", str(path), "--capture-steps", "3"]
    assert main([*argv, "--threads", "1", "--progress", "off"]) == 0
    return str(path)


def test_counts_and_element_streams_of_a_real_capture(capture):
    from golden.capture import load_capture

    records = {(r["layer"], r["op"]): r for r in load_capture(capture)}
    counts = step.step_counts(capture)
    fwd, dx, dw = (records["3", op] for op in ("fwd", "dx", "dw"))
    assert [g["macs"] for g in counts["gemms"]] == [
        fwd["a"].shape[0] * fwd["a"].shape[1] * fwd["b"].shape[1],
        dx["a"].shape[0] * dx["a"].shape[1] * dx["b"].shape[1],
        dw["a"].shape[0] * dw["a"].shape[1] * dw["b"].shape[1],
    ]
    assert counts["elements"]["requant"] == fwd["c"].size == records["4", "requant"]["acc"].size
    assert counts["elements"]["encode"] == dx["a"].size
    assert counts["elements"]["grad"] == dx["a"].size + dx["c"].size == counts["elements"]["post_bwd"]
    assert [layer["layer"] for layer in counts["fp32_layers"]] == ["1", "5"]
    assert counts["fp32_layers"][0]["dx"] == 0 and counts["fp32_layers"][1]["dx"] > 0  # no dX for the input layer
    streams = step.element_streams(capture, 200)
    assert set(streams) == set(step.ELEMENT_WORKLOADS)
    assert all(len(v) == 200 for s in streams.values() for v in s.values())
    rq = records["4", "requant"]
    assert set(streams["requant"]["total"]) <= set(rq["acc"].ravel().tolist())
    assert (streams["requant"]["m0"] == rq["m0"]).all() and (streams["requant"]["shift"] == rq["shift"]).all()
    assert set(streams["grad"]["value"]) <= set(dx["c"].ravel().tolist())
    enc = streams["encode"]
    # the host's fixed point: |words| within amax, amax the tensor's, 48-bit signed
    assert (np.abs(enc["value"]) <= enc["amax"]).all() and enc["amax"][0] < 1 << 47
    assert enc["amax"][0] == np.abs(step._fixed(dx["a_float"].ravel(), step.LOSS_FRACTION_BITS)).max()
    assert streams["post_fwd"]["relu"].all() and not streams["post_bwd"]["relu"].any()


def test_step_needs_a_liberty_and_a_capture(tmp_path, capsys):
    from report.__main__ import main

    assert main(["--step", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["report: error: --step needs --liberty and --capture (a captured training step)"]
    assert not (tmp_path / "out").exists()
