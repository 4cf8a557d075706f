"""cocotb test module: the simulated datapath as a server for the host (:mod:`verify.cosim.remote`).

The host process runs the training (torch, golden model, optimizer); this
simulator process only drives the RTL. It connects back to the host at
``FOURBIT_COSIM_ADDR`` (``host:port``, authkey from ``FOURBIT_COSIM_KEY``) and
executes requests ``(op, kwargs)`` with :class:`verify.cosim.driver.DatapathDriver`
until ``close``: ``gemm``, ``clear_amax``, ``load_grad``, ``encode``. ``FOURBIT_COSIM_GEOMETRY`` and
``FOURBIT_COSIM_ENCODINGS`` (JSON) give the build's geometry and manifest. Keeping
torch out of the simulator process keeps its start-up short.
"""

import json
import os
from multiprocessing.connection import Client

import cocotb
from cocotb.clock import Clock

from .driver import DatapathDriver, GemmStats, Geometry


@cocotb.test()
async def serve(dut):
    host, port = os.environ["FOURBIT_COSIM_ADDR"].rsplit(":", 1)
    geometry = Geometry(**json.loads(os.environ["FOURBIT_COSIM_GEOMETRY"]))
    conn = Client((host, int(port)), authkey=bytes.fromhex(os.environ["FOURBIT_COSIM_KEY"]))
    Clock(dut.clk, 10, unit="ns").start(start_high=False)
    driver = DatapathDriver(dut, geometry, json.loads(os.environ["FOURBIT_COSIM_ENCODINGS"]))
    await driver.reset()
    conn.send(("ready", None))
    while True:
        op, kwargs = conn.recv()
        try:
            if op == "close":
                conn.send(("ok", {"io_cycles": driver.io_cycles, "compute_cycles": driver.compute_cycles}))
                break
            if op == "gemm":
                stats = GemmStats(kwargs.pop("name"), *kwargs["a"].shape[:1], *kwargs["b"].shape)
                out = await driver.gemm(stats, **kwargs)
                result = (out, vars(stats))
            elif op == "clear_amax":
                result = await driver.clear_amax()
            elif op == "load_grad":
                result = await driver.load_grad(kwargs["ints"])
            elif op == "encode":
                result = await driver.encode(kwargs["count"])
            else:
                raise ValueError(f"unknown request {op!r}")
        except Exception as e:  # reported to the host, which raises it
            conn.send(("error", f"{type(e).__name__}: {e}"))
            continue
        conn.send(("ok", result))
    conn.close()
