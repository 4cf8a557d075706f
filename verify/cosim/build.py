"""Verilog generation and a cached Verilator build of the training datapath for co-simulation."""

import hashlib
import os
import pathlib
import shutil

from verify.buildcache import cached_build
from verify.gemm import VERILATOR_ARGS

from .driver import Geometry

__all__ = ["TOPLEVEL", "BUILD_ROOT", "datapath_verilog", "DatapathBuild"]

TOPLEVEL = "train_datapath"
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
BUILD_ROOT = REPO_ROOT / "build" / "cosim"


def datapath_verilog(geometry):
    """Deterministic Verilog of :class:`hw.datapath.TrainDatapath` for ``geometry``, its port names
    and its manifest."""
    from amaranth.back import verilog

    from hw.datapath import TrainDatapath

    dp = TrainDatapath(**vars(geometry))
    manifest = dp.manifest()
    text = verilog.convert(dp, name=TOPLEVEL, emit_src=False, strip_internal_attrs=True)
    return text, ("clk", "rst", *dp.signature.members), manifest


class DatapathBuild:
    """The datapath of one :class:`Geometry` compiled with Verilator, cached under ``build/cosim``.

    Parameters
    ----------
    geometry : Geometry
    build_root : path
    """

    def __init__(self, geometry, *, build_root=BUILD_ROOT):
        if not isinstance(geometry, Geometry):
            raise TypeError("geometry must be a verify.cosim.driver.Geometry")
        self.geometry = geometry
        g = geometry
        self.directory = (
            pathlib.Path(build_root).resolve() / f"dp_{g.rows}x{g.cols}_k{g.k_depth}_g{g.grad_depth}_m{g.mask_depth}"
            f"_a{g.acc_width}_w{g.grad_width}"
        )
        self.built = False
        self.manifest = None

    def env(self):
        from fourbit.util.tools import tool_env

        env = tool_env()
        # cocotb_tools.runner finds verilator through this process's PATH.
        os.environ.update({key: env[key] for key in ("PATH", "VERILATOR_ROOT")})
        pythonpath = [str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        return {"PYTHONPATH": os.pathsep.join(pythonpath)}

    def ensure(self):
        """Generate and compile unless an identical build is cached (safe across processes)."""
        from cocotb_tools.runner import get_runner

        from rtl_gen.lint import WAIVERS

        self.env()
        if self.manifest is not None:
            return
        text, ports, self.manifest = datapath_verilog(self.geometry)
        ports_vlt = "`verilator_config\n" + "".join(
            f'public_flat_rw -module "{TOPLEVEL}" -var "{name}"\n' for name in ports
        )
        stamp = hashlib.sha256("\n".join([text, ports_vlt, *VERILATOR_ARGS]).encode()).hexdigest()
        with cached_build(self.directory, stamp) as stale:
            if not stale:
                return
            source = self.directory / f"{TOPLEVEL}.v"
            source.write_text(text)
            ports_file = self.directory / "ports.vlt"
            ports_file.write_text(ports_vlt)
            sim_dir = self.directory / "sim"
            shutil.rmtree(sim_dir, ignore_errors=True)
            runner = get_runner("verilator")
            from fourbit.util.tools import verilator_make_flags

            with verilator_make_flags():
                runner.build(
                    sources=[WAIVERS, ports_file, source],
                    hdl_toplevel=TOPLEVEL,
                    build_dir=sim_dir,
                    build_args=list(VERILATOR_ARGS),
                    timescale=("1ns", "1ps"),
                    always=True,
                    log_file=self.directory / "build.log",
                )
            self.built = True

    def run(self, test_module, *, workdir, env):
        """Run a cocotb module on the build; returns the runner's exit status (0: passed)."""
        from cocotb_tools.runner import get_runner

        self.ensure()
        full = self.env()
        # The simulator process reads PYTHONPATH only; it must not re-import the host's heavy modules.
        full.update(env)
        runner = get_runner("verilator")
        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=TOPLEVEL,
                hdl_toplevel_lang="verilog",
                build_dir=self.directory / "sim",
                test_dir=workdir,
                results_xml=str(workdir / "results.xml"),
                extra_env=full,
                timescale=("1ns", "1ps"),
                log_file=workdir / "sim.log",
            )
        except SystemExit as exit_:
            return exit_.code or 1
        return 0
