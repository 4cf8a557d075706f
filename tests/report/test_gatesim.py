"""The gate-level flow on field tools (liberty-parser, Yosys cell models, vcdvcd) against the hand-written one.

``data/old_flow_toggles.json.gz`` holds, per unit, the mapped netlist, the
operand stream and what the hand-written flow (its own Liberty parser,
Verilog cell models generated from Liberty functions and VCD reader, deleted
since) counted and computed on them; the replay must agree net for net.
"""

import gzip
import json
import pathlib

import numpy as np
import pytest

from report import gatesim
from report.energy import netlist_energy

from .conftest import need

FIXTURE = pathlib.Path(__file__).parent / "data" / "old_flow_toggles.json.gz"


@pytest.fixture(scope="module")
def recorded():
    with gzip.open(FIXTURE, "rt") as f:
        return json.load(f)


@pytest.mark.parametrize("name", ["int4_mac", "log_mac", "fp16_mac", "cal_add8", "cal_mul8"])
def test_reproduces_the_hand_written_flow(name, recorded, sky130, tmp_path):
    need("iverilog")
    assert recorded["liberty_sha256"] == sky130.sha256
    unit = recorded["units"][name]
    ports = [tuple(p) for p in unit["inputs"]]
    stim = np.array(unit["stimulus"], dtype=object)
    t = gatesim.simulate(
        unit["netlist"], unit["top"], sky130, ports, stim, period_ns=unit["period_ns"], warmup=unit["warmup"]
    )
    assert t.cycles == unit["cycles"]
    assert t.rises == {int(b): n for b, n in unit["rises"].items()}
    assert t.falls == {int(b): n for b, n in unit["falls"].items()}
    assert t.outputs == unit["outputs"]
    energy = netlist_energy(unit["netlist"], sky130, t).as_dict()
    # the recorded (two-way) figures, and the three-way split of the same logic energy
    assert {k: energy[k] for k in unit["energy"]} == pytest.approx(unit["energy"], rel=1e-12)
    assert energy["arithmetic_pj"] + energy["control_pj"] == pytest.approx(energy["logic_pj"], rel=1e-12)


def clock_gated_register():
    """clk, en -> dlclkp (GCLK) -> dfrtp (async active-low reset) : d -> q.

    Net bits: 2 clk, 3 en, 4 d, 5 rst_n, 6 gclk, 7 q.
    """
    return {
        "ports": {
            "clk": {"direction": "input", "bits": [2]},
            "en": {"direction": "input", "bits": [3]},
            "d": {"direction": "input", "bits": [4]},
            "rst_n": {"direction": "input", "bits": [5]},
            "q": {"direction": "output", "bits": [7]},
        },
        "cells": {
            "icg": {"type": "sky130_fd_sc_hd__dlclkp_1", "connections": {"CLK": [2], "GATE": [3], "GCLK": [6]}},
            "r": {"type": "sky130_fd_sc_hd__dfrtp_1", "connections": {"CLK": [6], "D": [4], "RESET_B": [5], "Q": [7]}},
        },
    }


def test_clock_gating_cell_and_reset_flop(sky130, tmp_path):
    """A clock-gating cell (a statetable the hand-written models refused) gates the clock and its energy counts."""
    need("iverilog")
    rng = np.random.default_rng(5)
    cycles, warmup = 60, 4
    en, d = rng.integers(0, 2, cycles), rng.integers(0, 2, cycles)
    rst_n = np.ones(cycles, np.int64)
    rst_n[[20, 21]] = 0  # asynchronous reset pulse
    stim = np.stack([en, d, rst_n], axis=1)
    net = clock_gated_register()
    t = gatesim.simulate(net, "gated", sky130, [("en", 1), ("d", 1), ("rst_n", 1)], stim, warmup=warmup)
    # en and d change at the falling edge; the latch passes en while clk is low, so the
    # next rising edge is gated by it: after row i, q is 0 (reset), d[i] (enabled) or held,
    # and the sample taken before row i + 1 is applied shows it.
    q, after = None, []
    for i in range(cycles):
        q = 0 if not rst_n[i] else int(d[i]) if en[i] else q
        after.append(q)
    assert t.outputs["q"][warmup + 1 :] == after[warmup:-1]
    # one GCLK pulse per enabled rising edge in the window
    pulses = int(en[warmup:].sum())
    assert abs(t.rises[6] - pulses) <= 1 and abs(t.falls[6] - pulses) <= 1
    e = netlist_energy(net, sky130, t)
    icg = sky130.cell("sky130_fd_sc_hd__dlclkp_1")
    assert icg.is_sequential and icg.clock_gating == "latch_posedge"
    assert e.logic_pj == 0.0 and e.registers_pj == pytest.approx(e.total_pj)
    # the cell's own internal energy: per CLK transition and per GCLK pulse
    ungated = netlist_energy({**net, "cells": {"r": net["cells"]["r"]}}, sky130, t)
    assert e.internal_pj > ungated.internal_pj > 0


def test_statetable_cell_that_is_not_a_clock_gate_is_refused(sky130):
    cell = sky130.cell("sky130_fd_sc_hd__dlclkp_1")
    odd = type(cell)(**{**vars(cell), "clock_gating": None})
    with pytest.raises(gatesim.SimError, match="statetable"):
        gatesim._clock_gate_group(odd)
