"""Running a co-simulation and its performance model."""

import os
import pathlib
import tempfile

from .build import BUILD_ROOT, NATIVE, DatapathBuild
from .driver import Geometry

__all__ = ["PRESETS", "MNIST_DIR", "run_cosim", "performance"]

#: Where the mnist preset finds MNIST: the ``FOURBIT_MNIST_DIR`` environment variable, else
#: ``../shared/data/mnist`` beside the repository (what ``make bench-accuracy`` reads as MNIST_DIR);
#: ``python -m verify.cosim --data-dir`` overrides both.
MNIST_DIR = os.environ.get(
    "FOURBIT_MNIST_DIR", str(pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist")
)

#: Named runs: ``make cosim`` (digits 64-32-10, one epoch), ``make cosim-mnist`` (784-128-10, 2 steps),
#: ``make cosim-mnist-epoch`` (784-128-10, one epoch of the MNIST training set) and the test's tiny MLP.
#: ``steps=None`` is one epoch: every training sample once (the last partial batch dropped).
PRESETS = {
    "digits": dict(
        dataset="digits",
        hidden=32,
        batch=16,
        steps=None,
        lr=0.1,
        evaluate=True,
        geometry=dict(rows=8, cols=8, k_depth=64, grad_depth=512, mask_depth=512),
    ),
    "mnist": dict(
        dataset="mnist",
        data_dir=MNIST_DIR,
        hidden=128,
        batch=16,
        steps=2,
        lr=0.05,
        geometry=dict(rows=16, cols=16, k_depth=1024, grad_depth=2048, mask_depth=2048),
    ),
    "mnist-epoch": dict(
        dataset="mnist",
        data_dir=MNIST_DIR,
        hidden=128,
        batch=16,
        steps=None,
        lr=0.05,
        evaluate=True,
        geometry=dict(rows=16, cols=16, k_depth=1024, grad_depth=2048, mask_depth=2048),
    ),
    "tiny": dict(
        dataset="digits",
        hidden=8,
        batch=4,
        steps=3,
        lr=0.1,
        geometry=dict(rows=4, cols=4, k_depth=64, grad_depth=64, mask_depth=64),
    ),
}


def run_cosim(
    *,
    dataset,
    hidden,
    batch,
    steps,
    geometry,
    lr,
    momentum=0.9,
    weight_decay=5e-4,
    seed=0,
    depth=1,
    data_dir=None,
    sim=NATIVE,
    host_ports="direct",
    threads=1,
    evaluate=False,
    build_root=BUILD_ROOT,
    on_step=None,
):
    """Train in the loop and compare with the golden run after every step.

    Parameters
    ----------
    dataset, data_dir : str
        :func:`golden.data.load_dataset` arguments.
    hidden, depth : int
        MLP hidden width and number of hidden layers.
    batch, steps, lr, momentum, weight_decay, seed
        Training (SGD with momentum, cosine schedule over ``steps``, as :mod:`golden.train`);
        ``steps=None``: one epoch (``len(train) // batch`` steps).
    geometry : dict
        :class:`verify.cosim.driver.Geometry` fields of the datapath to generate.
    sim : str
        :data:`verify.cosim.build.SIMULATORS`: ``verilator`` the native harness
        (:class:`verify.cosim.native.NativeDatapath`, the default) or ``verilator-cocotb``
        (:class:`verify.cosim.remote.RemoteDatapath`).
    host_ports : str
        The native harness's host ports (:class:`verify.cosim.native.NativeDatapath`): ``direct``
        (default) or ``clocked``; the same results and cycle counts. Ignored by ``verilator-cocotb``.
    threads : int
        Native harness: threads of the Verilated model (:class:`verify.cosim.build.DatapathBuild`);
        the same results and cycle counts.
    evaluate : bool
        After training, the test-set accuracy of both: the host's with every forward GEMM on the
        datapath, the golden model's in software.
    on_step : callable, optional
        Called with each step's record as soon as it is done.

    Returns
    -------
    dict
        ``config``, ``steps`` (per step: ``loss``, ``loss_golden``, ``match``,
        ``compute_cycles``, ``io_cycles``, ``encode_cycles``, ``gemms``, ``seconds``; ``golden_seconds``
        of it in the golden step), ``seconds``, ``build_seconds``, ``built``, ``cpu_seconds`` (of the training
        steps: ``host`` the hardware step, of which ``harness`` inside the native simulation, ``golden``
        the golden step, ``compare`` the bit comparison), ``simulated_clocks`` (native: the clock cycles
        the model simulated in the training steps, reset included; None on cocotb) and, with ``evaluate``,
        ``accuracy`` (``hardware``, ``golden``: fractions of the test set; ``correct``, ``samples``).

    Raises
    ------
    ValueError
        Bad parameters, or a network the datapath cannot hold (message gives the limits).
    verify.cosim.remote.DatapathError
        The simulation failed.
    """
    import time

    import torch

    from golden.data import load_dataset

    from .host import GoldenTrainer, HostTrainer, build_models, same_bits
    from .native import HOST_PORTS, NativeDatapath
    from .remote import RemoteDatapath

    if host_ports not in HOST_PORTS:
        raise ValueError(f"unknown host ports {host_ports!r} (choose from {', '.join(HOST_PORTS)})")
    for name, value in (("hidden", hidden), ("batch", batch), ("steps", steps), ("depth", depth)):
        if name == "steps" and value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    geo = Geometry(**geometry)
    # (checks sim and threads; compiles nothing yet)
    build = DatapathBuild(geo, sim=sim, build_root=build_root, threads=threads)
    ds = load_dataset(dataset, data_dir)
    if steps is None:
        steps = len(ds.train_y) // batch
        if steps < 1:
            raise ValueError(f"batch {batch} is larger than the {len(ds.train_y)} training samples")
    n_in = 1
    for s in ds.input_shape:
        n_in *= s
    golden_model, host_model = build_models(n_in=n_in, hidden=hidden, n_out=ds.num_classes, depth=depth, seed=seed)
    opt = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, total_steps=steps)
    golden = GoldenTrainer(golden_model, **opt)
    host = HostTrainer(host_model, None, **opt)
    host.check_shapes(batch, geo)  # before anything is built or simulated
    cfg = dict(
        dataset=dataset,
        data_dir=data_dir,
        hidden=hidden,
        depth=depth,
        batch=batch,
        steps=steps,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        seed=seed,
        geometry=vars(geo),
        sim=sim,
        host_ports=host_ports if build.native else None,
        threads=threads,
    )
    started = time.perf_counter()
    build.ensure()
    build_seconds = time.perf_counter() - started
    workdir = None
    if not build.native:  # the cocotb simulation's log and results
        runs = build.directory / "runs"
        runs.mkdir(exist_ok=True)
        workdir = pathlib.Path(tempfile.mkdtemp(dir=runs))
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(ds.train_y), generator=gen)
    records = []
    accuracy = None
    simulated_clocks = None
    cpu = {"host": 0.0, "golden": 0.0, "compare": 0.0}
    if build.native:
        datapath = NativeDatapath(build, workdir, host_ports=host_ports)
    else:
        datapath = RemoteDatapath(build, workdir)
    with datapath as dp:
        host.dp = dp
        for step in range(steps):
            lo = (step * batch) % max(len(perm) - batch + 1, 1)
            idx = perm[lo : lo + batch]
            xb, yb = ds.train_x[idx], ds.train_y[idx]
            t0, c0 = time.perf_counter(), time.process_time()
            loss_hw, stats, enc = host.step(xb, yb)
            t1, c1 = time.perf_counter(), time.process_time()
            loss_golden = golden.step(xb, yb)
            t2, c2 = time.perf_counter(), time.process_time()
            match = bool(same_bits(host_model, golden_model) and loss_hw == loss_golden)
            cpu["host"] += c1 - c0
            cpu["golden"] += c2 - c1
            cpu["compare"] += time.process_time() - c2
            record = {
                "step": step,
                "loss": loss_hw,
                "loss_golden": loss_golden,
                "match": match,
                "compute_cycles": sum(s.compute_cycles for s in stats) + enc,
                "io_cycles": sum(s.io_cycles for s in stats),
                "encode_cycles": enc,
                "seconds": time.perf_counter() - t0,
                "golden_seconds": t2 - t1,
                "gemms": [
                    {
                        "name": s.name,
                        "m": s.m,
                        "k": s.k,
                        "n": s.n,
                        "tiles": s.tiles,
                        "compute_cycles": s.compute_cycles,
                        "io_cycles": s.io_cycles,
                    }
                    for s in stats
                ],
            }
            records.append(record)
            if on_step is not None:
                on_step(record)
        if isinstance(dp, NativeDatapath):
            cpu["harness"] = dp.seconds["cpu"]  # part of "host"
            simulated_clocks = dp.clocks()
        if evaluate:
            correct, samples = host.evaluate(ds.test_x, ds.test_y, batch)
            golden_correct = _golden_correct(golden_model, ds.test_x, ds.test_y)
            accuracy = {
                "hardware": correct / samples,
                "golden": golden_correct / samples,
                "correct": {"hardware": correct, "golden": golden_correct},
                "samples": samples,
            }
    return {
        "config": cfg,
        "steps": records,
        "seconds": time.perf_counter() - started,
        "build_seconds": build_seconds,
        "built": build.built,
        "workdir": None if workdir is None else str(workdir),
        "accuracy": accuracy,
        "cpu_seconds": cpu,
        "simulated_clocks": simulated_clocks,
    }


def _golden_correct(model, x, y):
    """Test samples the golden model classifies correctly (software, evaluation mode)."""
    import torch

    model.eval()
    with torch.no_grad():
        correct = int((model(x).argmax(1) == y).sum())
    model.train()
    return correct


def performance(report, fmax_mhz):
    """Per-GEMM MACs/cycle and utilization of the last step, and the projected step time.

    Returns ``(rows, summary)``: one dict per GEMM (``name``, ``shape``, ``macs``,
    ``cycles``, ``macs_per_cycle``, ``utilization``) and step totals.
    """
    geo = report["config"]["geometry"]
    pes = geo["rows"] * geo["cols"]
    last = report["steps"][-1]
    rows = []
    for g in last["gemms"]:
        macs = g["m"] * g["k"] * g["n"]
        rows.append(
            {
                "name": g["name"],
                "shape": f"{g['m']}x{g['k']}x{g['n']}",
                "tiles": g["tiles"],
                "macs": macs,
                "cycles": g["compute_cycles"],
                "io_cycles": g["io_cycles"],
                "macs_per_cycle": macs / g["compute_cycles"],
                "utilization": macs / (g["compute_cycles"] * pes),
            }
        )
    compute = last["compute_cycles"]
    summary = {
        "compute_cycles": compute,
        "io_cycles": last["io_cycles"],
        "encode_cycles": last["encode_cycles"],
        "fmax_mhz": fmax_mhz,
        "macs": sum(r["macs"] for r in rows),
        "step_us_compute": compute / fmax_mhz if fmax_mhz else None,
        "step_us_with_io": (compute + last["io_cycles"]) / fmax_mhz if fmax_mhz else None,
    }
    return rows, summary
