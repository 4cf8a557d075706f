"""cocotb driver and monitor of the systolic arrays (:mod:`hw.array`), used by :mod:`verify.gemm`.

The runner passes a schedule file in ``FOURBIT_GEMM_IN`` (``.npz``: the
packed per-cycle ``a_in``/``b_in`` words as little-endian byte rows, the
``valid``/``clear``/``last`` columns, per-cycle mode inputs (one run may hold
several GEMMs, e.g. a forward and a backward GEMM on the train array) and the
number of results to collect) and reads the monitor's record from ``FOURBIT_GEMM_OUT``
(``.npz``: the raw ``out_valid`` and ``out_data`` of every cycle that had a
result, as byte rows). Nothing golden happens here: the testbench only drives
and records; :mod:`verify.gemm` assembles the matrix, and the tests compare.

Whole rows go in and out per cycle through the packed ports: five handle
writes and at most two reads per clock. Inputs change on the falling edge and
outputs are sampled on the falling edge (after the rising edge that updated
them), as in :mod:`verify.pe_tb`.
"""

import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from fourbit.util.files import write_atomically


class RowDriver:
    """Presents one scheduled cycle (A column, B row, controls) per clock."""

    def __init__(self, dut, schedule):
        self.a_in, self.b_in = dut.a_in, dut.b_in
        self.valid, self.clear, self.last = dut.valid, dut.clear, dut.last
        self.a = [int.from_bytes(row.tobytes(), "little") for row in schedule["a_bytes"]]
        self.b = [int.from_bytes(row.tobytes(), "little") for row in schedule["b_bytes"]]
        self.controls = list(zip(schedule["valid"].tolist(), schedule["clear"].tolist(), schedule["last"].tolist()))
        # Mode inputs change only between GEMMs: written when they change.
        self.modes = [
            (getattr(dut, name), schedule[f"mode_{name}"].tolist()) for name in schedule["mode_names"].tolist()
        ]
        self.mode_values = [None] * len(self.modes)

    def __len__(self):
        return len(self.controls)

    def drive(self, cycle):
        self.a_in.value = self.a[cycle]
        self.b_in.value = self.b[cycle]
        valid, clear, last = self.controls[cycle]
        self.valid.value, self.clear.value, self.last.value = valid, clear, last
        for index, (port, values) in enumerate(self.modes):
            if values[cycle] != self.mode_values[index]:
                port.value = self.mode_values[index] = values[cycle]

    def idle(self):
        self.valid.value = self.clear.value = self.last.value = 0


class DrainMonitor:
    """Records ``out_valid``/``out_data`` on every cycle that drains a result."""

    def __init__(self, dut):
        self.out_valid, self.out_data = dut.out_valid, dut.out_data
        # A one-column array has a 1-bit out_valid, whose value is a Logic, not a LogicArray.
        self.read_valid = (
            (lambda: int(self.out_valid.value))
            if len(dut.out_valid) == 1
            else (lambda: self.out_valid.value.to_unsigned())
        )
        self.valid, self.data = [], []
        self.count = 0

    def sample(self):
        valid = self.read_valid()
        if valid:
            self.valid.append(valid)
            self.data.append(self.out_data.value.to_unsigned())
            self.count += valid.bit_count()


@cocotb.test()
async def run_schedule(dut):
    """Drive the scheduled GEMM and record every drained result."""
    schedule = np.load(os.environ["FOURBIT_GEMM_IN"])
    expected_results = int(schedule["results"])

    driver, monitor = RowDriver(dut, schedule), DrainMonitor(dut)
    Clock(dut.clk, 10, unit="ns").start(start_high=False)
    falling = FallingEdge(dut.clk)
    driver.idle()
    dut.rst.value = 1
    await falling
    await falling
    dut.rst.value = 0

    started = time.perf_counter()
    cycles = len(driver)
    for cycle in range(cycles):
        driver.drive(cycle)
        await falling
        monitor.sample()
    driver.idle()
    # The last results drain within rows + cols + 2*rows cycles; stop early when all are out.
    for _ in range(int(schedule["drain_cycles"])):
        if monitor.count >= expected_results:
            break
        await falling
        monitor.sample()
    seconds = time.perf_counter() - started

    nbytes_valid = (len(dut.out_valid) + 7) // 8
    nbytes_data = (len(dut.out_data) + 7) // 8
    valid_bytes = np.frombuffer(
        b"".join(v.to_bytes(nbytes_valid, "little") for v in monitor.valid), dtype=np.uint8
    ).reshape(len(monitor.valid), nbytes_valid)
    data_bytes = np.frombuffer(
        b"".join(v.to_bytes(nbytes_data, "little") for v in monitor.data), dtype=np.uint8
    ).reshape(len(monitor.data), nbytes_data)
    write_atomically(
        os.environ["FOURBIT_GEMM_OUT"],
        lambda tmp: np.savez(tmp, valid_bytes=valid_bytes, data_bytes=data_bytes, seconds=seconds, cycles=cycles),
        suffix=".tmp.npz",
    )
    assert monitor.count == expected_results, f"drained {monitor.count} results, expected {expected_results}"
