"""The energy model on hand-checkable netlists, against hand calculations from Liberty numbers.

Numbers below are copied from sky130_fd_sc_hd__tt_025C_1v80.lib (1.8 V;
pF, ns, nW, energies in pJ).  Internal-power lookups use an input transition
of 0.01 ns, the first index of every table, so only the load is interpolated.
"""

import numpy as np
import pytest

from report.energy import net_loads, netlist_energy
from report.gatesim import Toggles, simulate

V = 1.8
SLEW = 0.01
WIRE_FANOUT1 = 1.42e-05 * 23.2746  # wire_load("Small"): capacitance * fanout_length(1)
INV_A_CAP = 0.0023020  # inv_1 pin A capacitance
INV_LEAK = 0.0053266820  # inv_1 cell_leakage_power (nW)
INV_LOADS = (0.0005, 0.0013351650, 0.0035653330)  # index_2 of inv_1 Y power tables
INV_RISE = (0.0077341, 0.0092285, 0.0130076)  # rise_power, row index_1 = 0.01
INV_FALL = (-0.0020153, -0.0032337, -0.0066826)  # fall_power, row index_1 = 0.01
DFF_CLK_CAP, DFF_D_CAP = 0.0017940, 0.0016780
DFF_CLK_RISE, DFF_CLK_FALL = 0.0178184, 0.0227158  # CLK pin internal power at 0.01 ns
DFF_D_RISE, DFF_D_FALL = -0.0004267, 0.0054714  # D pin internal power at 0.01 ns
DFF_Q_RISE, DFF_Q_FALL = 0.0177646, 0.0190634  # Q internal power at (0.01 ns, 0.0005 pF)
DFF_LEAK = 0.0084386350


def lerp(x, x0, x1, y0, y1):
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def inverter_chain():
    """a -> inv -> inv -> inv -> y (net bits 2, 3, 4, 5)."""
    inv = "sky130_fd_sc_hd__inv_1"
    return {
        "ports": {"a": {"direction": "input", "bits": [2]}, "y": {"direction": "output", "bits": [5]}},
        "cells": {f"c{i}": {"type": inv, "connections": {"A": [2 + i], "Y": [3 + i]}} for i in range(3)},
        "netnames": {},
    }


def register():
    """clk, d -> dfxtp -> q (net bits 2 = clk, 3 = d, 4 = q)."""
    return {
        "ports": {
            "clk": {"direction": "input", "bits": [2]},
            "d": {"direction": "input", "bits": [3]},
            "q": {"direction": "output", "bits": [4]},
        },
        "cells": {"r": {"type": "sky130_fd_sc_hd__dfxtp_1", "connections": {"CLK": [2], "D": [3], "Q": [4]}}},
        "netnames": {},
    }


def test_loads_are_pin_caps_plus_wire_load(sky130):
    loads = net_loads(inverter_chain(), sky130)
    for bit in (2, 3, 4):
        assert loads[bit] == pytest.approx(INV_A_CAP + WIRE_FANOUT1, rel=1e-12)
    assert loads[5] == 0.0
    assert net_loads(inverter_chain(), sky130, wire_load=False)[3] == pytest.approx(INV_A_CAP, rel=1e-12)


def test_inverter_chain_energy_by_hand(sky130):
    r, f, cycles, period = 7, 6, 20, 10.0
    toggles = Toggles({b: r for b in (2, 3, 4, 5)}, {b: f for b in (2, 3, 4, 5)}, cycles, period, {})
    e = netlist_energy(inverter_chain(), sky130, toggles, slew_ns=SLEW)

    c = INV_A_CAP + WIRE_FANOUT1
    switching = 3 * 0.5 * c * V * V * (r + f)  # nets 2, 3, 4; the output net has no load
    e_rise = lerp(c, INV_LOADS[1], INV_LOADS[2], INV_RISE[1], INV_RISE[2])
    e_fall = lerp(c, INV_LOADS[1], INV_LOADS[2], INV_FALL[1], INV_FALL[2])
    internal = 2 * (r * e_rise + f * e_fall) + (r * INV_RISE[0] + f * INV_FALL[0])  # last one: load 0 -> 0.0005
    leakage = 3 * INV_LEAK * cycles * period * 1e-6
    assert e.switching_pj == pytest.approx(switching, rel=1e-9)
    assert e.internal_pj == pytest.approx(internal, rel=1e-9)
    assert e.leakage_pj == pytest.approx(leakage, rel=1e-9)
    assert e.total_pj == pytest.approx(switching + internal + leakage, rel=1e-9)
    # the input net only charges the first inverter: it counts as boundary (registers) energy
    assert e.registers_pj == pytest.approx(0.5 * c * V * V * (r + f), rel=1e-9)
    assert e.per_cycle()["total_pj"] == pytest.approx(e.total_pj / cycles)


def test_register_energy_by_hand(sky130):
    cycles, period = 50, 10.0
    rises = {2: 50, 3: 9, 4: 8}
    falls = {2: 50, 3: 10, 4: 8}
    e = netlist_energy(register(), sky130, Toggles(rises, falls, cycles, period, {}), slew_ns=SLEW)
    clk = 0.5 * (DFF_CLK_CAP + WIRE_FANOUT1) * V * V * 100 + 50 * DFF_CLK_RISE + 50 * DFF_CLK_FALL
    d = 0.5 * (DFF_D_CAP + WIRE_FANOUT1) * V * V * 19 + 9 * DFF_D_RISE + 10 * DFF_D_FALL
    q = 8 * DFF_Q_RISE + 8 * DFF_Q_FALL
    leak = DFF_LEAK * cycles * period * 1e-6
    assert e.total_pj == pytest.approx(clk + d + q + leak, rel=1e-9)
    assert e.registers_pj == pytest.approx(e.total_pj, rel=1e-12)
    assert e.logic_pj == 0.0


def test_simulated_inverter_chain_toggles(sky130, tmp_path):
    """Icarus on the Liberty-derived models: a square wave on ``a`` toggles every net once per cycle."""
    stim = (np.arange(40) % 2)[:, None]
    t = simulate(inverter_chain(), "chain", sky130, [("a", 1)], stim, period_ns=10.0, warmup=4, workdir=str(tmp_path))
    assert t.cycles == 36
    for bit in (2, 3, 4, 5):
        assert t.rises[bit] + t.falls[bit] == 36
        assert abs(t.rises[bit] - t.falls[bit]) <= 1
    # y = !a, sampled before each new input row: it shows the previous row's inverse
    assert t.outputs["y"][5:] == [1 - int(v) for v in stim[4:-1, 0]]


def test_simulated_register(sky130, tmp_path):
    d = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0])
    t = simulate(register(), "one_register", sky130, [("d", 1)], d[:, None], warmup=2, workdir=str(tmp_path))
    # d applied at a falling edge is captured by the next rising edge, visible at the next sample
    assert t.outputs["q"][3:] == list(d[2:-1])
    assert t.rises[2] == t.falls[2] == t.cycles
