"""Runs the cocotb PE testbench (:mod:`verify.pe_tb`) through ``cocotb_tools.runner``.

One call generates the design's Verilog (:mod:`rtl_gen`), builds it for one
simulator in its own build directory, computes the golden expectation of a
:class:`verify.stimulus.Sequence`, simulates it and returns the report.
"""

import json
import os
import pathlib
import time

from cocotb_tools.runner import get_runner

from fourbit.util.tools import tool_env
from rtl_gen.config import Design
from rtl_gen.generate import generate
from rtl_gen.lint import WAIVERS

from . import stimulus as stim

__all__ = ["SIMULATORS", "REPO_ROOT", "PESimulation", "SimulationMismatch"]


SIMULATORS = ("icarus", "verilator")
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
        if sim not in SIMULATORS:
            raise ValueError(f"unknown simulator {sim!r} (known: {', '.join(SIMULATORS)})")
        self.kind, self.sim = kind, sim
        self.build_dir = pathlib.Path(build_dir).resolve()
        (generated,) = generate([Design(name=kind, kind=kind, params=params or {})])
        self.entry = generated.entry
        self.acc_width = next(p["width"] for p in generated.entry["ports"] if p["name"] == "acc")
        self.build_dir.mkdir(parents=True, exist_ok=True)
        self.verilog = self.build_dir / f"{kind}.v"
        if not self.verilog.exists() or self.verilog.read_text() != generated.verilog:
            self.verilog.write_text(generated.verilog)
        self._built = False

    def _environment(self):
        env = tool_env()
        pythonpath = [str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(pythonpath)
        return env

    def build(self):
        """Compile the design (once per object)."""
        if self._built:
            return
        # The runner reads PATH from this process to find verilator / iverilog.
        os.environ.update({k: self._environment()[k] for k in ("PATH", "VERILATOR_ROOT")})
        # Verilator reads the waivers before the design (the runner wants the top source last).
        sources = ([WAIVERS] if self.sim == "verilator" else []) + [self.verilog]
        self.runner = get_runner(self.sim)
        self.runner.build(
            sources=sources,
            hdl_toplevel=self.kind,
            build_dir=self.build_dir / "sim",
            timescale=("1ns", "1ps"),
            always=True,
            log_file=self.build_dir / "build.log",
        )
        self._built = True

    def _test(self, test_module, name, env):
        """Run ``test_module`` on this build; the SystemExit of a failed run, else None."""
        self.build()
        full_env = self._environment()
        full_env.update(env)
        try:
            self.runner.test(
                test_module=test_module,
                hdl_toplevel=self.kind,
                build_dir=self.build_dir / "sim",
                test_dir=self.build_dir,
                results_xml=str(self.build_dir / f"{name}.xml"),
                extra_env=full_env,
                log_file=self.build_dir / f"{name}.log",
            )
        except SystemExit as exit_:
            # cocotb_tools' runner exits on failing tests when run under pytest.
            return exit_
        return None

    def run_module(self, test_module, *, name, env=None):
        """Run another cocotb test module (e.g. :mod:`tests.verify.spec_tb`) on this build.

        Raises
        ------
        SimulationMismatch
            The module's tests failed.
        """
        failure = self._test(test_module, name, env or {})
        if failure is not None:
            raise SimulationMismatch(
                f"{test_module} failed on {self.kind} ({self.sim}, exit {failure.code}); "
                f"see {self.build_dir / (name + '.log')}"
            )

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
        failure = self._test(
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
                f"{self.kind} on {self.sim}: simulation produced no report "
                f"(exit {failure.code if failure else 0}); see {self.build_dir / (name + '.log')}"
            )
        report = json.loads(report_path.read_text())
        report["golden_seconds"] = golden_seconds
        if report["mismatches"] or failure is not None:
            raise SimulationMismatch(
                f"{self.kind} on {self.sim}: {report['mismatches']} of {report['steps']} steps differ "
                f"from golden:\n" + "\n".join(report["first"])
            )
        return report
