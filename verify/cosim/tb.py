"""cocotb testbench: hardware-in-the-loop training on the datapath against the golden twin.

Configuration comes as JSON in ``FOURBIT_COSIM_IN``; the report (one record
per step: losses, cycles per GEMM, bit-exact match of the master weights)
is written to ``FOURBIT_COSIM_OUT``. The test fails if any step differs.
"""

import json
import os
import time

import cocotb
import torch
from cocotb.clock import Clock

from .driver import DatapathDriver, Geometry
from .host import GoldenTrainer, HostTrainer, build_models, same_bits


def _dataset(cfg):
    from golden.data import load_dataset

    return load_dataset(cfg["dataset"], cfg.get("data_dir"))


@cocotb.test()
async def train_in_the_loop(dut):
    cfg = json.loads(os.environ["FOURBIT_COSIM_IN"])
    out = os.environ["FOURBIT_COSIM_OUT"]
    torch.set_num_threads(1)
    geometry = Geometry(**cfg["geometry"])
    ds = _dataset(cfg)
    n_in = 1
    for s in ds.input_shape:
        n_in *= s
    golden_model, host_model = build_models(n_in=n_in, hidden=cfg["hidden"], n_out=ds.num_classes,
                                            depth=cfg.get("depth", 1), seed=cfg["seed"])
    opt = dict(lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"],
               total_steps=cfg["steps"])
    golden = GoldenTrainer(golden_model, **opt)
    Clock(dut.clk, 10, unit="ns").start(start_high=False)
    driver = DatapathDriver(dut, geometry)
    await driver.reset()
    host = HostTrainer(host_model, driver, **opt)
    host.check_shapes(cfg["batch"])

    gen = torch.Generator().manual_seed(cfg["seed"])
    perm = torch.randperm(len(ds.train_y), generator=gen)
    batch = cfg["batch"]
    records = []
    started = time.perf_counter()
    for step in range(cfg["steps"]):
        lo = (step * batch) % max(len(perm) - batch + 1, 1)
        idx = perm[lo:lo + batch]
        xb, yb = ds.train_x[idx], ds.train_y[idx]
        io0, comp0 = driver.io_cycles, driver.compute_cycles
        loss_hw, stats, enc = await host.step(xb, yb)
        loss_golden = golden.step(xb, yb)
        match = same_bits(host_model, golden_model) and loss_hw == loss_golden
        records.append({
            "step": step, "loss": loss_hw, "loss_golden": loss_golden, "match": bool(match),
            "compute_cycles": driver.compute_cycles - comp0, "io_cycles": driver.io_cycles - io0,
            "encode_cycles": enc,
            "gemms": [{"name": s.name, "m": s.m, "k": s.k, "n": s.n, "tiles": s.tiles,
                       "compute_cycles": s.compute_cycles, "io_cycles": s.io_cycles} for s in stats],
        })
        dut._log.info("step %d loss %.6f match %s", step, loss_hw, match)
    report = {"config": cfg, "steps": records, "seconds": time.perf_counter() - started}
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, out)
    assert all(r["match"] for r in records), "master weights differ from the golden run"
