"""cocotb testbench of the standalone PEs (the SPEC section 3 tops of every PE kind).

In the style of cocotb's ``examples/matrix_multiplier``: a driver applies one
step of a :class:`verify.stimulus.Sequence` per clock cycle, a monitor samples
``acc`` after every rising edge, and the checker compares the samples bit for
bit with the golden model's expected values (computed up-front, vectorized, by
:mod:`verify.stimulus`).

The runner (:mod:`verify.runner`) passes the stimulus file in
``FOURBIT_STIMULUS``, the design's latency in ``FOURBIT_LATENCY`` (pipelined
variants: step t is checked ``latency`` edges later) and receives a JSON
report at ``FOURBIT_REPORT``.
Inputs change on the falling edge, so they are stable at the rising edge that
samples them, and ``acc`` is read on the next falling edge.
"""

import json
import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from fourbit.util.files import write_text_atomically


class StepDriver:
    """Drives one row of input columns per cycle."""

    def __init__(self, dut, columns):
        self.ports = [(getattr(dut, name), column.tolist()) for name, column in columns.items()]

    def drive(self, step):
        for port, column in self.ports:
            port.value = column[step]


class AccMonitor:
    """Samples the raw bits of ``acc`` once per cycle."""

    def __init__(self, dut):
        self.acc = dut.acc
        self.samples = []

    def sample(self):
        self.samples.append(self.acc.value.to_unsigned())


def check(observed, expected, data, width):
    """Mismatch count and a description of the first few mismatches."""
    observed = np.asarray(observed, dtype=np.uint64)
    bad = np.flatnonzero(observed != expected)
    names, starts = data["family_names"], data["family_starts"]
    lines = []
    for step in bad[:8]:
        family = names[np.searchsorted(starts, step, side="right") - 1]
        inputs = ", ".join(f"{key[3:]}={int(data[key][step]):#x}" for key in data.files if key.startswith("in_"))
        digits = (width + 3) // 4
        lines.append(
            f"step {step} ({family}): {inputs}: acc={int(observed[step]):#0{digits + 2}x} "
            f"expected {int(expected[step]):#0{digits + 2}x}"
        )
    return len(bad), lines


@cocotb.test()
async def sequence_matches_golden(dut):
    """Every cycle's ``acc`` equals the golden model's, bit for bit."""
    data = np.load(os.environ["FOURBIT_STIMULUS"])
    expected = data["expected"]
    columns = {key[3:]: data[key] for key in data.files if key.startswith("in_")}
    steps = len(expected)
    width = len(dut.acc)
    latency = int(os.environ.get("FOURBIT_LATENCY", "1"))
    # Idle cycles after the last step flush a pipelined design.
    for name, column in columns.items():
        columns[name] = np.concatenate([column, np.zeros(latency - 1, dtype=column.dtype)])

    Clock(dut.clk, 10, unit="ns").start(start_high=False)
    driver, monitor = StepDriver(dut, columns), AccMonitor(dut)
    falling = FallingEdge(dut.clk)

    started = time.perf_counter()
    await falling
    driver.drive(0)
    for step in range(1, steps + latency - 1):
        await falling
        monitor.sample()
        driver.drive(step)
    await falling
    monitor.sample()
    seconds = time.perf_counter() - started

    mismatches, lines = check(monitor.samples[latency - 1 :], expected, data, width)
    write_text_atomically(
        os.environ["FOURBIT_REPORT"],
        json.dumps({"steps": steps, "seconds": seconds, "mismatches": mismatches, "first": lines}),
    )
    assert mismatches == 0, f"{mismatches} of {steps} steps differ from golden:\n" + "\n".join(lines)
