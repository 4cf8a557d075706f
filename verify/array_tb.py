"""cocotb driver and monitor of the systolic arrays (:mod:`hw.array`), used by :mod:`verify.gemm`.

The runner passes a schedule file in ``FOURBIT_GEMM_IN`` (``.npz``: the
names of the packed operand ports (``buses``: ``a_in``/``b_in`` of an
output-stationary array, ``a_in``/``w_in`` of a weight-stationary one) and
their per-cycle words as little-endian byte rows (``bus_<port>``), the names
and per-cycle columns of the 1-bit control ports (``controls``, ``control_<port>``:
``valid``/``clear``/``last``, or the weight-stationary array's
``valid``/``swap``/``first``/``last``/``w_load``/``w_valid``), per-cycle mode
inputs (one run may hold several GEMMs, e.g. a forward and a backward GEMM on
the train array) and the number of results to collect) and reads the
monitor's record from ``FOURBIT_GEMM_OUT``
(``.npz``: the raw ``out_valid`` and ``out_data`` of every cycle that had a
result, as byte rows). Nothing golden happens here: the testbench only drives
and records; :mod:`verify.gemm` assembles the matrix, and the tests compare.

Whole rows go in and out per cycle through the packed ports: a handle write
per operand port and per control that changes, and at most two reads per clock. Inputs change on the falling edge and
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
    """Presents one scheduled cycle (operand rows, controls, modes) per clock."""

    def __init__(self, dut, schedule):
        self.buses = [
            (getattr(dut, name), [int.from_bytes(row.tobytes(), "little") for row in schedule[f"bus_{name}"]])
            for name in schedule["buses"].tolist()
        ]
        # Controls and mode inputs are written when they change; the controls go idle (0) after the schedule.
        self.controls = [
            (getattr(dut, name), schedule[f"control_{name}"].tolist()) for name in schedule["controls"].tolist()
        ]
        self.modes = [
            (getattr(dut, name), schedule[f"mode_{name}"].tolist()) for name in schedule["mode_names"].tolist()
        ]
        self.bits = self.controls + self.modes
        self.bit_values = [None] * len(self.bits)

    def __len__(self):
        return len(self.buses[0][1])

    def drive(self, cycle):
        for port, words in self.buses:
            port.value = words[cycle]
        for index, (port, values) in enumerate(self.bits):
            if values[cycle] != self.bit_values[index]:
                port.value = self.bit_values[index] = values[cycle]

    def idle(self):
        for index, (port, _) in enumerate(self.controls):
            port.value = self.bit_values[index] = 0


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
