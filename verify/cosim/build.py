"""Verilog generation and a cached Verilator build of the training datapath for co-simulation."""

import hashlib
import pathlib

from verify.simulator import HDLBuild

from .driver import Geometry

__all__ = ["TOPLEVEL", "BUILD_ROOT", "datapath_verilog", "DatapathBuild"]

TOPLEVEL = "train_datapath"
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
BUILD_ROOT = REPO_ROOT / "build" / "cosim"


def datapath_verilog(geometry):
    """Deterministic Verilog of :class:`hw.datapath.TrainDatapath` for ``geometry``, its port names
    and its manifest."""
    from hw.datapath import TrainDatapath
    from rtl_gen.generate import to_verilog

    dp = TrainDatapath(**vars(geometry))
    manifest = dp.manifest()
    text = to_verilog(dp, TOPLEVEL)
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
        self.manifest = None
        self._hdl = None

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
        text, ports, self.manifest = datapath_verilog(self.geometry)
        self._hdl = HDLBuild(
            toplevel=TOPLEVEL,
            sim="verilator",
            directory=self.directory,
            verilog=text,
            stamp=hashlib.sha256(text.encode()).hexdigest(),  # the ports derive from the same design
            # As verify.gemm's arrays: VPI access to the ports only, X resolved
            # at compile time, Amaranth's WIDTH warnings not fatal.
            public_ports=ports,
            x_assign="fast",
            verilator_args=("-Wno-fatal",),
        )
        self._hdl.ensure()

    def run(self, test_module, *, workdir, env):
        """Run a cocotb module on the build; returns the runner's exit status (0: passed)."""
        self.ensure()
        result = self._hdl.test(test_module, name="sim", env=env, test_dir=workdir, check=False)
        return 0 if result.passed else result.exit_code or 1
