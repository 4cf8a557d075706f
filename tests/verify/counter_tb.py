"""cocotb testbench of tests/verify/test_simulator.py's 4-bit counter (not collected by pytest).

``FOURBIT_COUNTER_CYCLES`` clock cycles after reset, ``count`` must equal
``FOURBIT_COUNTER_EXPECT`` (the test passes a wrong value to see a failure
reported).
"""

import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge


@cocotb.test()
async def counts_after_reset(dut):
    """``count`` increments once per rising edge after reset, modulo 16."""
    cycles = int(os.environ["FOURBIT_COUNTER_CYCLES"])
    expected = int(os.environ["FOURBIT_COUNTER_EXPECT"])
    Clock(dut.clk, 10, unit="ns").start(start_high=False)
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    for _ in range(cycles):
        await FallingEdge(dut.clk)
    assert int(dut.count.value) == expected, f"count {int(dut.count.value)} after {cycles} cycles, expected {expected}"


@cocotb.test(skip="FOURBIT_COUNTER_SKIP" in os.environ)
async def reset_holds_zero(dut):
    """While ``rst`` is high, ``count`` stays 0."""
    Clock(dut.clk, 10, unit="ns").start(start_high=False)
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    for _ in range(3):
        await FallingEdge(dut.clk)
        assert int(dut.count.value) == 0
