"""cocotb end-to-end testbench of the UART GEMM engine (:mod:`hw.engine`).

The whole board top runs in the simulator; only the serial line crosses into
Python. The pieces, in the style of cocotb's matrix_multiplier example:

* :class:`UartModel`: the host's serial port, bit-banged on ``rx`` (driver)
  and sampled mid-bit on ``tx`` (monitor), ``bit_clocks`` board clock
  periods per bit;
* :class:`SimTransport`: the ``write``/``read`` transport of
  :class:`boards.host.Board`, bridged into the simulation with
  :func:`cocotb.task.resume`, so the *unchanged* host driver (tiling, K
  chunks, protocol) runs in a :func:`cocotb.task.bridge` thread;
* golden model and checker: :func:`boards.host.golden_gemm`
  (:mod:`golden.reference`), compared bit for bit.

A third test, :func:`host_cli_over_a_tty`, runs ``python -m boards.host``
itself as a subprocess on the slave end of a pseudo-terminal whose master
end is wired to the UART model: the command line, the ``termios`` serial
transport and the golden check exactly as on a real board.

Configuration comes from the runner (``tests/boards/test_engine_cocotb.py``)
in environment variables (``FOURBIT_HOST_CLI``: the host's arguments after
``--port``, JSON; the test is skipped without it): ``FOURBIT_UART_BIT_CLOCKS`` (board clock periods
per bit: the engine's UART divisor times its clock divider) and
``FOURBIT_ENGINE_CASES`` (JSON list of GEMMs: ``pe``, ``m``, ``k``, ``n``,
``a_signed``, ``b_signed``, ``seed``).
"""

import json
import os
import select
import subprocess
import sys
import tty

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge, Timer, with_timeout
from cocotb.utils import get_sim_time

from boards.host import Board, golden_gemm, random_inputs, run_gemm
from hw.engine.protocol import INFO_LENGTH, Command, Status
from hw.kinds import get_gemm

CLOCK_NS = 10


class UartModel:
    """The host end of the serial line: 8N1 at ``bit_clocks`` clock periods per bit."""

    def __init__(self, dut, bit_clocks):
        self.rx, self.tx = dut.rx, dut.tx
        self.bit_ns = bit_clocks * CLOCK_NS
        self.received = Queue()
        self.rx.value = 1

    async def send(self, data):
        for byte in data:
            for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                self.rx.value = bit
                await Timer(self.bit_ns, unit="ns")

    async def monitor(self):
        while True:
            await FallingEdge(self.tx)
            await Timer(self.bit_ns // 2, unit="ns")
            assert int(self.tx.value) == 0, "tx: start bit shorter than half a bit"
            value = 0
            for i in range(8):
                await Timer(self.bit_ns, unit="ns")
                value |= int(self.tx.value) << i
            await Timer(self.bit_ns, unit="ns")
            assert int(self.tx.value) == 1, f"tx: framing error after byte 0x{value:02x}"
            self.received.put_nowait(value)

    async def receive(self, n, timeout_ns):
        return bytes([await with_timeout(self.received.get(), timeout_ns, "ns") for _ in range(n)])


class SimTransport:
    """:class:`boards.host.Board` transport over :class:`UartModel`, callable from a bridge thread."""

    def __init__(self, uart, timeout_ns):
        self.uart, self.timeout_ns = uart, timeout_ns

    @resume
    async def write(self, data):
        await self.uart.send(data)

    @resume
    async def read(self, n):
        return await self.uart.receive(n, self.timeout_ns)


async def _start(dut):
    Clock(dut.clk, CLOCK_NS, unit="ns").start(start_high=False)
    uart = UartModel(dut, int(os.environ["FOURBIT_UART_BIT_CLOCKS"]))
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    cocotb.start_soon(uart.monitor())
    # A reply byte may wait for a whole RUN and its drain: be generous.
    return uart, SimTransport(uart, timeout_ns=200_000 * CLOCK_NS)


@cocotb.test()
async def gemms_through_uart(dut):
    """Every configured GEMM, run by the host driver over the UART, equals golden/ bit for bit."""
    cases = json.loads(os.environ["FOURBIT_ENGINE_CASES"])
    _uart, transport = await _start(dut)

    @bridge
    def host():
        board = Board(transport)
        runs = []
        for case in cases:
            inputs = random_inputs(
                case["pe"],
                case["m"],
                case["k"],
                case["n"],
                a_signed=case["a_signed"],
                b_signed=case["b_signed"],
                seed=case["seed"],
            )
            signs = {"a_signed": case["a_signed"], "b_signed": case["b_signed"]}
            c = run_gemm(board, case["pe"], **inputs, **signs)
            runs.append((case, c, golden_gemm(case["pe"], **inputs, **signs)))
        return board.info(), runs

    info, runs = await host()
    dut._log.info(f"{info}")
    failures = []
    for case, c, expected in runs:
        gemm = get_gemm(case["pe"])
        got, want = gemm.result_bits(c), gemm.result_bits(expected)
        assert c.shape == expected.shape, f"{case}: shape {c.shape} != {expected.shape}"
        bad = np.argwhere(got != want)
        if len(bad):
            i, j = bad[0]
            failures.append(
                f"{case}: {len(bad)} of {c.size} differ, first [{i},{j}]: board {got[i, j]!r}, golden {want[i, j]!r}"
            )
    assert not failures, "\n".join(failures)


@cocotb.test()
async def protocol_errors(dut):
    """Unknown commands and out-of-range counts get their status byte; the engine keeps working."""
    uart, _transport = await _start(dut)
    timeout = 200_000 * CLOCK_NS

    async def command(data, length):
        await uart.send(data)
        return await uart.receive(length, timeout)

    info = await command(bytes([Command.INFO]), INFO_LENGTH)
    depth = int.from_bytes(info[10:12], "little")
    assert await command(b"Z", 1) == bytes([Status.UNKNOWN_COMMAND])
    assert await command(bytes([Command.LOAD_A, 0, 0]), 1) == bytes([Status.OUT_OF_RANGE])
    assert await command(bytes([Command.LOAD_B]) + (depth + 1).to_bytes(2, "little"), 1) == bytes([Status.OUT_OF_RANGE])
    assert await command(bytes([Command.RUN]) + (depth + 1).to_bytes(2, "little") + b"\x00", 1) == bytes(
        [Status.OUT_OF_RANGE]
    )
    assert await command(bytes([Command.INFO]), INFO_LENGTH) == info


@cocotb.test(skip="FOURBIT_HOST_CLI" not in os.environ)
async def host_cli_over_a_tty(dut):
    """``python -m boards.host --port <tty>`` against the simulated board: exit 0, bit-exact."""
    uart, _ = await _start(dut)
    master, slave = os.openpty()
    tty.setraw(master)
    # Simulated time runs far slower than the real line: the host waits long.
    host = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "boards.host",
            "--port",
            os.ttyname(slave),
            "--timeout",
            "300",
            *json.loads(os.environ["FOURBIT_HOST_CLI"]),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    os.close(slave)

    async def to_host():
        while True:
            os.write(master, bytes([await uart.received.get()]))

    cocotb.start_soon(to_host())
    started = get_sim_time("ns")
    while host.poll() is None:
        if select.select([master], [], [], 0)[0]:
            try:
                data = os.read(master, 4096)
            except OSError:  # the host closed its end
                data = b""
            await uart.send(data)
        else:
            await ClockCycles(dut.clk, 200)
        assert get_sim_time("ns") - started < 2e9, "the host CLI did not finish within 2 simulated seconds"
    output = host.stdout.read()
    os.close(master)
    dut._log.info(output.strip())
    assert host.returncode == 0, output
    assert "bit-exact against golden/" in output, output
