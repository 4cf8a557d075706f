"""Running a co-simulation and its performance model."""

import json
import pathlib
import tempfile

from .build import BUILD_ROOT, DatapathBuild
from .driver import Geometry

__all__ = ["PRESETS", "run_cosim", "performance", "CosimFailed"]

#: Named runs: ``make cosim`` (digits 64-32-10), ``make cosim-mnist`` (784-128-10) and the test's tiny MLP.
PRESETS = {
    "digits": dict(dataset="digits", hidden=32, batch=16, steps=24, lr=0.1,
                   geometry=dict(rows=8, cols=8, k_depth=64, grad_depth=512, mask_depth=512)),
    "mnist": dict(dataset="mnist", data_dir="/work/shared/data/mnist", hidden=128, batch=16, steps=2, lr=0.05,
                  geometry=dict(rows=16, cols=16, k_depth=1024, grad_depth=2048, mask_depth=2048)),
    "tiny": dict(dataset="digits", hidden=8, batch=4, steps=3, lr=0.1,
                 geometry=dict(rows=4, cols=4, k_depth=64, grad_depth=64, mask_depth=64)),
}


class CosimFailed(RuntimeError):
    """The simulation did not complete, or its master weights differ from the golden run."""


def run_cosim(*, dataset, hidden, batch, steps, geometry, lr, momentum=0.9, weight_decay=5e-4, seed=0,
              depth=1, data_dir=None, build_root=BUILD_ROOT):
    """Train in the loop; returns the report dict (see :mod:`verify.cosim.tb`).

    Raises
    ------
    ValueError
        Bad parameters, or a network the datapath cannot hold (message gives the limits).
    CosimFailed
        Simulation failure or any bit difference.
    """
    for name, value in (("hidden", hidden), ("batch", batch), ("steps", steps), ("depth", depth)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
    geo = Geometry(**geometry)
    _check_fits(geo, dataset, hidden, batch, depth)
    cfg = dict(dataset=dataset, data_dir=data_dir, hidden=hidden, batch=batch, steps=steps, lr=lr,
               momentum=momentum, weight_decay=weight_decay, seed=seed, depth=depth, geometry=vars(geo))
    build = DatapathBuild(geo, build_root=build_root)
    build.ensure()
    runs = build.directory / "runs"
    runs.mkdir(exist_ok=True)
    workdir = pathlib.Path(tempfile.mkdtemp(dir=runs))
    out = workdir / "report.json"
    status = build.run("verify.cosim.tb", workdir=workdir,
                       env={"FOURBIT_COSIM_IN": json.dumps(cfg), "FOURBIT_COSIM_OUT": str(out),
                            "COCOTB_LOG_LEVEL": "WARNING"})
    if not out.exists():
        raise CosimFailed(f"co-simulation produced no report (status {status}); see {workdir / 'sim.log'}")
    report = json.loads(out.read_text())
    report["workdir"] = str(workdir)
    report["built"] = build.built
    return report


def _check_fits(geo, dataset, hidden, batch, depth):
    from golden.data import load_dataset  # noqa: F401  (datasets are validated by the testbench)

    n_in = {"digits": 64, "mnist": 784, "fashion-mnist": 784}.get(dataset)
    if n_in is None:
        raise ValueError(f"unknown dataset {dataset!r}; valid: digits, mnist, fashion-mnist")
    widths = [n_in] + [hidden] * depth + [10]
    mask_end = 0
    for i in range(len(widths) - 1):
        k, n = widths[i], widths[i + 1]
        name = f"layer {i}"
        geo.check_gemm(f"{name} forward", batch, k, n)
        geo.check_gemm(f"{name} dW", n, batch, k)
        geo.check_grad(f"{name} output gradient", batch * n)
        if i > 0:
            geo.check_gemm(f"{name} dX", batch, n, k)
        if i + 1 < len(widths) - 1:
            mask_end += batch * n
    geo.check_mask("hidden activations", mask_end)


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
        rows.append({"name": g["name"], "shape": f"{g['m']}x{g['k']}x{g['n']}", "tiles": g["tiles"], "macs": macs,
                     "cycles": g["compute_cycles"], "io_cycles": g["io_cycles"],
                     "macs_per_cycle": macs / g["compute_cycles"],
                     "utilization": macs / (g["compute_cycles"] * pes)})
    compute = last["compute_cycles"]
    summary = {"compute_cycles": compute, "io_cycles": last["io_cycles"], "encode_cycles": last["encode_cycles"],
               "fmax_mhz": fmax_mhz, "macs": sum(r["macs"] for r in rows),
               "step_us_compute": compute / fmax_mhz if fmax_mhz else None,
               "step_us_with_io": (compute + last["io_cycles"]) / fmax_mhz if fmax_mhz else None}
    return rows, summary
