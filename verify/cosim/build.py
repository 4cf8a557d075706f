"""Verilog generation and a cached Verilator build of the training datapath for co-simulation."""

import hashlib
import pathlib

from verify.simulator import HDLBuild, NativeBuild

from .driver import Geometry

__all__ = ["TOPLEVEL", "BUILD_ROOT", "SIMULATORS", "NATIVE", "datapath_verilog", "DatapathBuild"]

TOPLEVEL = "train_datapath"
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
BUILD_ROOT = REPO_ROOT / "build" / "cosim"
#: The native library driven by ``verify/cpp/datapath_harness.cpp`` (:mod:`verify.cosim.native`).
NATIVE = "verilator"
#: The ways to simulate the datapath; the first is the default: the native harness, or cocotb on
#: Verilator (:mod:`verify.cosim.server`, one Python step per clock).
SIMULATORS = (NATIVE, "verilator-cocotb")


def datapath_verilog(geometry):
    """Deterministic Verilog of :class:`hw.datapath.TrainDatapath` for ``geometry``, its port names,
    its manifest and the width of each of its ports."""
    from amaranth.hdl import Shape

    from hw.datapath import TrainDatapath
    from rtl_gen.generate import to_verilog

    dp = TrainDatapath(**vars(geometry))
    manifest = dp.manifest()
    text = to_verilog(dp, TOPLEVEL)
    widths = {name: Shape.cast(member.shape).width for name, member in dp.signature.members.items()}
    return text, ("clk", "rst", *dp.signature.members), manifest, widths


class DatapathBuild:
    """The datapath of one :class:`Geometry` compiled with Verilator, cached under ``build/cosim``.

    Parameters
    ----------
    geometry : Geometry
    sim : str
        One of :data:`SIMULATORS`: ``verilator`` the native library (:class:`verify.simulator.NativeBuild`
        with ``verify/cpp/datapath_harness.cpp``), ``verilator-cocotb`` a cocotb model.
    build_root : path
        Cache root; the build lives in ``<root>/dp_<geometry>/<sim>``.
    """

    def __init__(self, geometry, *, sim=NATIVE, build_root=BUILD_ROOT):
        if not isinstance(geometry, Geometry):
            raise TypeError("geometry must be a verify.cosim.driver.Geometry")
        if sim not in SIMULATORS:
            raise ValueError(f"unknown simulator {sim!r} (choose from {', '.join(SIMULATORS)})")
        self.geometry, self.sim = geometry, sim
        g = geometry
        self.directory = (
            pathlib.Path(build_root).resolve()
            / f"dp_{g.rows}x{g.cols}_k{g.k_depth}_g{g.grad_depth}_m{g.mask_depth}_a{g.acc_width}_w{g.grad_width}"
            / sim
        )
        self.manifest = None
        self._hdl = None

    @property
    def native(self):
        """Whether this is the native library (else a cocotb model)."""
        return self.sim == NATIVE

    @property
    def library(self):
        """The native build's shared library (after :meth:`ensure`)."""
        return self._hdl.library

    @property
    def built(self):
        """Whether this object compiled the model (a cache miss)."""
        return self._hdl is not None and self._hdl.built

    def ensure(self):
        """Generate and compile unless an identical build is cached (safe across processes)."""
        if self._hdl is not None:
            return
        # The manifest (the datapath's encodings) comes with the Verilog, so the
        # design is converted even when the compiled model is cached.
        text, ports, self.manifest, widths = datapath_verilog(self.geometry)
        # As verify.gemm's arrays: X resolved at compile time, Amaranth's WIDTH warnings not fatal.
        options = dict(
            toplevel=TOPLEVEL,
            directory=self.directory,
            verilog=text,
            stamp=hashlib.sha256(text.encode()).hexdigest(),  # the ports derive from the same design
            x_assign="fast",
            verilator_args=("-Wno-fatal",),
        )
        if self.native:
            from . import native

            options["stamp"] += f"\0native-config-{native.CONFIG_RECIPE}"
            self._hdl = NativeBuild(
                harness=native.HARNESS,
                config=native.harness_config(TOPLEVEL, self.manifest, widths),
                cflags=native.CFLAGS,
                **options,
            )
        else:
            # VPI access to the ports only.
            self._hdl = HDLBuild(sim="verilator", public_ports=ports, **options)
        self._hdl.ensure()

    def run(self, test_module, *, workdir, env):
        """Run a cocotb module on the (cocotb) build; returns the runner's exit status (0: passed)."""
        self.ensure()
        result = self._hdl.test(test_module, name="sim", env=env, test_dir=workdir, check=False)
        return 0 if result.passed else result.exit_code or 1
