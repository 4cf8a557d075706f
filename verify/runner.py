"""Runs the cocotb PE testbench (:mod:`verify.pe_tb`) through :mod:`verify.simulator`.

One call generates the design's Verilog (:mod:`rtl_gen`), builds it for one
simulator in its own build directory, computes the golden expectation of a
:class:`verify.stimulus.Sequence`, simulates it and returns the report.
"""

import json
import pathlib
import time

from rtl_gen.config import Design
from rtl_gen.generate import generate

from . import stimulus as stim
from .simulator import SIMULATORS, HDLBuild, check_simulator

__all__ = ["SIMULATORS", "REPO_ROOT", "PESimulation", "SimulationMismatch"]


REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


class SimulationMismatch(AssertionError):
    """The simulated ``acc`` differs from the golden model (or the simulation failed)."""


class PESimulation:
    """A generated PE built for one simulator.

    Parameters
    ----------
    kind : str
        Unit kind (``int4_mac``, ``log_mac``, ``fp16_mac``).
    sim : str
        ``icarus`` or ``verilator``.
    build_dir : path
        Directory of this (design, simulator) pair; nothing else may use it concurrently.
    params : dict
        Generation parameters (defaults as in :data:`hw.units.UNITS`).
    """

    def __init__(self, *, kind, sim, build_dir, params=None):
        check_simulator(sim)  # before generating anything
        self.kind, self.sim = kind, sim
        self.build_dir = pathlib.Path(build_dir).resolve()
        (generated,) = generate([Design(name=kind, kind=kind, params=params or {})])
        self.entry = generated.entry
        self.acc_width = next(p["width"] for p in generated.entry["ports"] if p["name"] == "acc")
        self.build_dir.mkdir(parents=True, exist_ok=True)  # run() writes its stimulus here before building
        # No stamp: each object compiles once (a PE takes seconds), into its own directory.
        self.hdl = HDLBuild(toplevel=kind, sim=sim, directory=self.build_dir, verilog=generated.verilog)
        self.verilog = self.hdl.source

    def build(self):
        """Compile the design (once per object)."""
        self.hdl.ensure()

    def _test(self, test_module, name, env):
        """Run ``test_module`` on this build; its :class:`verify.simulator.SimulationResult`."""
        return self.hdl.test(test_module, name=name, env=env, check=False)

    def run_module(self, test_module, *, name, env=None):
        """Run another cocotb test module (e.g. :mod:`tests.verify.spec_tb`) on this build.

        Raises
        ------
        SimulationMismatch
            The module's tests failed.
        """
        result = self._test(test_module, name, env or {})
        if not result.passed:
            raise SimulationMismatch(result.describe())

    def run(self, sequence, *, name="run"):
        """Simulate ``sequence`` and check every cycle against golden.

        Returns
        -------
        dict
            ``steps``, ``seconds`` (simulation wall time of the drive loop),
            ``mismatches``, ``first`` (descriptions of the first mismatches),
            ``golden_seconds``.

        Raises
        ------
        SimulationMismatch
            Any mismatch, or a simulator failure.
        """
        if sequence.kind != self.kind:
            raise ValueError(f"sequence for {sequence.kind} given to a {self.kind} simulation")
        started = time.perf_counter()
        expected = stim.expected(sequence, acc_width=self.acc_width)
        golden_seconds = time.perf_counter() - started
        stimulus_path = self.build_dir / f"{name}.npz"
        report_path = self.build_dir / f"{name}.json"
        sequence.save(stimulus_path, expected)
        if report_path.exists():
            report_path.unlink()
        result = self._test(
            "verify.pe_tb",
            name,
            {
                "FOURBIT_STIMULUS": str(stimulus_path),
                "FOURBIT_REPORT": str(report_path),
                "FOURBIT_LATENCY": str(self.entry["latency"]),
            },
        )
        if not report_path.exists():
            raise SimulationMismatch(
                f"{self.kind} on {self.sim}: simulation produced no report (exit {result.exit_code}); see {result.log}"
            )
        report = json.loads(report_path.read_text())
        report["golden_seconds"] = golden_seconds
        if report["mismatches"] or not result.passed:
            raise SimulationMismatch(
                f"{self.kind} on {self.sim}: {report['mismatches']} of {report['steps']} steps differ "
                f"from golden:\n" + "\n".join(report["first"])
            )
        return report
