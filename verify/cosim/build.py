"""Verilog generation and a cached Verilator build of the training datapath for co-simulation."""

import hashlib
import pathlib

from verify.simulator import HDLBuild, NativeBuild

from .driver import Geometry

__all__ = ["TOPLEVEL", "BUILD_ROOT", "SIMULATORS", "NATIVE", "GENERATOR_SOURCES", "datapath_verilog", "DatapathBuild"]

TOPLEVEL = "train_datapath"
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
BUILD_ROOT = REPO_ROOT / "build" / "cosim"
#: The native library driven by ``verify/cpp/datapath_harness.cpp`` (:mod:`verify.cosim.native`).
NATIVE = "verilator"
#: The ways to simulate the datapath; the first is the default: the native harness, or cocotb on
#: Verilator (:mod:`verify.cosim.server`, one Python step per clock).
SIMULATORS = (NATIVE, "verilator-cocotb")


#: What the datapath's Verilog derives from, besides Amaranth and the geometry: the build's stamp
#: hashes these files, so a cached build costs no Verilog conversion (a minute for a 16 x 16 datapath).
GENERATOR_SOURCES = ("hw/*.py", "hw/kinds/*.py", "hw/datapath/*.py", "golden/formats/*.py", "rtl_gen/generate.py")


def _design(geometry):
    """The :class:`hw.datapath.TrainDatapath` of ``geometry`` (not yet elaborated)."""
    from hw.datapath import TrainDatapath

    return TrainDatapath(**vars(geometry))


def datapath_verilog(geometry):
    """Deterministic Verilog of :class:`hw.datapath.TrainDatapath` for ``geometry``, its port names
    and its manifest."""
    from rtl_gen.generate import to_verilog

    dp = _design(geometry)
    manifest = dp.manifest()
    text = to_verilog(dp, TOPLEVEL)
    return text, ("clk", "rst", *dp.signature.members), manifest


def _fingerprint(geometry):
    """Hash of :data:`GENERATOR_SOURCES`, Amaranth's version and ``geometry``."""
    import amaranth

    digest = hashlib.sha256()
    files = sorted({path for pattern in GENERATOR_SOURCES for path in REPO_ROOT.glob(pattern)})
    for path in files:
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    digest.update(repr((amaranth.__version__, TOPLEVEL, sorted(vars(geometry).items()))).encode())
    return digest.hexdigest()


class DatapathBuild:
    """The datapath of one :class:`Geometry` compiled with Verilator, cached under ``build/cosim``.

    Parameters
    ----------
    geometry : Geometry
    sim : str
        One of :data:`SIMULATORS`: ``verilator`` the native library (:class:`verify.simulator.NativeBuild`
        with ``verify/cpp/datapath_harness.cpp``), ``verilator-cocotb`` a cocotb model.
    build_root : path
        Cache root; the build lives in ``<root>/dp_<geometry>/<sim>`` (``<sim>-threads<N>``
        for a multithreaded model).
    threads : int
        Native library only: threads of the Verilated model (``verilator --threads``; 1, the
        default, is the single-threaded model). Results and cycle counts do not depend on it.
    """

    def __init__(self, geometry, *, sim=NATIVE, build_root=BUILD_ROOT, threads=1):
        if not isinstance(geometry, Geometry):
            raise TypeError("geometry must be a verify.cosim.driver.Geometry")
        if sim not in SIMULATORS:
            raise ValueError(f"unknown simulator {sim!r} (choose from {', '.join(SIMULATORS)})")
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"threads must be a positive integer, not {threads!r}")
        if threads > 1 and sim != NATIVE:
            raise ValueError(f"a multithreaded model needs the native harness (--sim {NATIVE}), not {sim}")
        self.geometry, self.sim, self.threads = geometry, sim, threads
        g = geometry
        self.directory = (
            pathlib.Path(build_root).resolve()
            / f"dp_{g.rows}x{g.cols}_k{g.k_depth}_g{g.grad_depth}_m{g.mask_depth}_a{g.acc_width}_w{g.grad_width}"
            / (sim if threads == 1 else f"{sim}-threads{threads}")
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
        from amaranth.hdl import Shape

        # The manifest (the datapath's encodings) and the port widths come from the unelaborated
        # design; the Verilog is converted only when the model must be compiled.
        dp = _design(self.geometry)
        # A description, not a design to elaborate: no UnusedElaboratable warnings.
        dp._MustUse__silence = dp.array._MustUse__silence = True
        self.manifest = dp.manifest()
        ports = ("clk", "rst", *dp.signature.members)
        widths = {name: Shape.cast(member.shape).width for name, member in dp.signature.members.items()}
        # As verify.gemm's arrays: X resolved at compile time, Amaranth's WIDTH warnings not fatal.
        options = dict(
            toplevel=TOPLEVEL,
            directory=self.directory,
            verilog=lambda: datapath_verilog(self.geometry)[0],
            stamp=_fingerprint(self.geometry),
            x_assign="fast",
            verilator_args=("-Wno-fatal",),
        )
        if self.native:
            from . import native

            options["stamp"] += f"\0native-config-{native.CONFIG_RECIPE}"
            options["verilator_args"] += native.VERILATOR_ARGS
            if self.threads > 1:
                # Verilator partitions the model's evaluation over this many threads (the context's
                # default thread count is the --threads value), the harness is unchanged.
                options["verilator_args"] += ("--threads", str(self.threads))
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
