"""``python -m verify.gemm``: run any M x K x N GEMM on a simulated systolic array (SPEC section 5).

Example::

    python -m verify.gemm --pe int4 --rows 4 --cols 4 --a A.npy --b B.npy --out C.npy \\
        [--a-signed 0|1] [--b-signed 0|1] [--sim icarus|verilator|verilator-cocotb] [--array dedicated|KIND] \\
        [--dataflow os|ws|os-lean]
    python -m verify.gemm --pe mxfp4 --rows 4 --cols 4 --a A.npy --a-scales AS.npy --b B.npy --b-scales BS.npy \\
        --out C.npy [--sim ...]

Semantics (SPEC section 5): ``--pe`` names a GEMM of the PE-kind registry
(:data:`hw.kinds.GEMMS`; ``--help`` lists each with its operands and result),
which checks the operands, encodes them for the array and decodes the result.
``--array dedicated`` (the default) runs it on the array of the kind whose own
GEMM it is; ``--array KIND`` on another kind's array that runs it too (the
unified training array runs the forward and the backward GEMMs, selected by
its ``mode`` input).

A signedness option that the GEMM does not take is ignored, with a warning
on stderr when given. The block-scaled GEMMs (SPEC section 7: ``mxfp4``,
``nvfp4``, :attr:`hw.kinds.GemmType.scaled`) need ``--a-scales`` and
``--b-scales`` (uint8 scale codes, M x ceil(K/bs) and ceil(K/bs) x N); the
other GEMMs refuse them.

The tool tiles the GEMM onto the R x C output-stationary array
(:mod:`hw.tiling`), builds the array's Verilog (:mod:`hw.array`) once per
(array kind, R, C, accumulator width, simulator) under ``build/gemm/``, drives
it and writes what the RTL computed. ``--sim verilator`` (:data:`NATIVE`)
compiles the array with a C++ driver into a shared library that runs the
whole schedule in one call (:mod:`verify.native`); ``icarus`` and
``verilator-cocotb`` drive it through cocotb (:mod:`verify.array_tb`, via
``cocotb_tools.runner``), one Python step per clock. Every column drains the
same raw outputs on both, so the results are bit-identical. ``--dataflow ws``
runs the GEMM on the kind's weight-stationary array instead (:mod:`hw.ws_array`,
chunk depth :func:`hw.ws_array.default_depth`, :func:`hw.tiling.ws_schedule`),
on every simulator (the native harness runs a weight-stationary schedule in
one thread). ``--dataflow os-lean`` runs it on the kind's lean FPGA
output-stationary array (:mod:`hw.fpga_array`; the kinds with a lean rule
only), with the output-stationary schedule. It checks nothing itself. The integer
accumulator is the kind's default width unless K exceeds its overflow bound;
then the narrowest width that cannot overflow for this K is generated instead.

Bad input (missing or unreadable files, a file that is not ``.npy``, shapes,
dtypes, code ranges, an array above :data:`MAX_ARRAY_SIDE` rows or columns or
:data:`MAX_ARRAY_PES` PEs) prints one ``verify.gemm: error: ...`` line and
exits with status 2 without writing the output; a simulation failure exits
with status 1. On success it prints one summary line on stderr (more with
``--verbose``), and before it builds an array one progress line.
"""

import functools
import hashlib
import os
import pathlib
import shutil
import sys
import tempfile
import time

import numpy as np

from fourbit.util.cli import OneLineParser, bit_flag, bounded_int, run_main
from fourbit.util.files import write_atomically
from hw.kinds import GEMMS, KINDS, GemmInputError, dedicated_kind, get_gemm, get_kind

from . import simulator
from .simulator import HDLBuild, NativeBuild

__all__ = [
    "PES",
    "SIMULATORS",
    "NATIVE",
    "COCOTB_VERILATOR",
    "ARRAYS",
    "DATAFLOWS",
    "LEAN_FPGA",
    "GemmError",
    "GemmResult",
    "Gemm",
    "array_kind",
    "accumulator_width",
    "operand_bits",
    "ArrayBuild",
    "run_gemm",
    "run_gemms",
    "main",
]


#: ``--sim``: the simulator layer's simulators (SPEC section 5: icarus, verilator), then the cocotb
#: driver on Verilator. Icarus always runs through cocotb.
COCOTB_VERILATOR = "verilator-cocotb"
SIMULATORS = (*simulator.SIMULATORS, COCOTB_VERILATOR)
#: The ``--sim`` that runs the native harness (:mod:`verify.native`) instead of cocotb.
NATIVE = "verilator"
#: The GEMMs of SPEC section 5 (``--pe``), from the PE-kind registry.
PES = tuple(GEMMS)
#: ``--array``: the GEMM's dedicated array, or any kind's array that runs it.
DEDICATED = "dedicated"
ARRAYS = (DEDICATED, *KINDS)
#: ``--dataflow``: output-stationary (:mod:`hw.array`, the default), weight-stationary (:mod:`hw.ws_array`)
#: or the lean FPGA output-stationary array (:mod:`hw.fpga_array`).
OUTPUT_STATIONARY, WEIGHT_STATIONARY, LEAN_FPGA = "os", "ws", "os-lean"
DATAFLOWS = (OUTPUT_STATIONARY, WEIGHT_STATIONARY, LEAN_FPGA)
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD_ROOT = REPO_ROOT / "build" / "gemm"
#: Bump when the way ArrayBuild generates an array changes (part of the cache key;
#: verify.simulator keys the compilation's own options).
BUILD_RECIPE = 4  # 4: rtl_gen.generate.to_verilog (no always @*)


#: Bad GEMM input (the CLI prints it as one line): the registry's operand error.
GemmError = GemmInputError


class GemmResult:
    """What the RTL computed, with how.

    Attributes
    ----------
    c : numpy.ndarray
        M x N result (int64, or float32 for a floating-point GEMM).
    cycles : int
        Scheduled input cycles (the drain tail excluded).
    sim_seconds : float
        Wall time of the drive loop (cocotb's, or the native harness's C++ call).
    seconds : float
        Wall time of the whole run, build included.
    built : bool
        Whether this call compiled the simulator model (cache miss).
    acc_width : int
        Accumulator width of the array.
    """

    def __init__(self, **fields):
        self.__dict__.update(fields)


def array_kind(pe, array):
    """Name of the array kind (:data:`hw.kinds.KINDS`) that runs ``pe`` GEMMs on ``array``.

    ``array`` is ``dedicated`` (the kind whose own GEMM is ``pe``) or a kind's name.
    """
    gemm = get_gemm(pe)
    if array not in ARRAYS:
        raise GemmError(f"unknown --array {array!r} (choose from {', '.join(ARRAYS)})")
    kind = dedicated_kind(gemm) if array == DEDICATED else get_kind(array)
    kind.mode_inputs(gemm)  # raises GemmError when the kind does not run this GEMM
    return kind.name


def accumulator_width(kind, k):
    """The kind's default accumulator width, or the narrowest one that holds ``k`` products."""
    return get_kind(kind).acc_width_for(k)


def operand_bits(pe, a, b, *, a_signed=True, b_signed=True, a_scales=None, b_scales=None):
    """Validate the operands of a ``pe`` GEMM (with its block scales, if it is scaled) and return
    their raw bit patterns (uint64).

    Raises
    ------
    GemmError
        Shapes, dtypes or code ranges that ``pe`` does not accept, scales missing or not applicable.
    """
    return get_gemm(pe).operand_bits(a, b, a_signed=a_signed, b_signed=b_signed, a_scales=a_scales, b_scales=b_scales)


#: The sources the array Verilog derives from: hw.array's own imports (see
#: tests/verify/test_gemm.py::test_fingerprint_covers_the_generator), the formats, and
#: the conversion to Verilog (rtl_gen.generate.to_verilog).
#: The lean FPGA array's own sources, in the key of its builds only (the other builds' caches stay valid).
LEAN_SOURCES = ("hw/fpga_array.py", "hw/pipeline.py")
GENERATOR_SOURCES = (
    "hw/array.py",
    "hw/ws_array.py",
    "hw/kinds/*.py",
    "hw/arith.py",
    "hw/accumulate.py",
    "hw/fp.py",
    "hw/pipeline.py",
    "hw/_params.py",
    "golden/formats/*.py",
    "rtl_gen/generate.py",
)


def _fingerprint(kind, rows, cols, acc_width, dataflow=OUTPUT_STATIONARY):
    """Hash of the array generator's sources (:data:`GENERATOR_SOURCES`), Amaranth's
    version and the parameters (the simulator and its options are verify.simulator's part of the key)."""
    import amaranth

    digest = hashlib.sha256()
    patterns = GENERATOR_SOURCES + (LEAN_SOURCES if dataflow == LEAN_FPGA else ())
    files = sorted({path for pattern in patterns for path in REPO_ROOT.glob(pattern)})
    for path in files:
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    parameters = (BUILD_RECIPE, amaranth.__version__, kind, rows, cols, acc_width)
    if dataflow == WEIGHT_STATIONARY:  # the output-stationary key as it always was: its caches stay valid
        parameters += (dataflow, _ws_depth(rows))
    elif dataflow != OUTPUT_STATIONARY:
        parameters += (dataflow,)
    digest.update(repr(parameters).encode())
    return digest.hexdigest()


def _ws_depth(rows):
    """Chunk depth of the weight-stationary arrays verify.gemm builds."""
    from hw.ws_array import default_depth

    return default_depth(rows)


def _toplevel(kind, dataflow):
    spec = get_kind(kind)
    if dataflow == LEAN_FPGA:
        return spec.lean_array_module
    return spec.ws_array_module if dataflow == WEIGHT_STATIONARY else spec.array_module


@functools.cache
def _array_verilog(kind, rows, cols, acc_width, dataflow=OUTPUT_STATIONARY):
    """Verilog of an array (memoized: a process running many GEMMs converts each array once)."""
    from rtl_gen.generate import to_verilog

    max_k = get_kind(kind).max_k(acc_width) or 1
    if dataflow == WEIGHT_STATIONARY:
        from hw.ws_array import WeightStationaryArray

        array = WeightStationaryArray(
            kind=kind, rows=rows, cols=cols, depth=_ws_depth(rows), acc_width=acc_width, max_k=max_k
        )
    elif dataflow == LEAN_FPGA:
        from hw.fpga_array import LeanSystolicArray

        array = LeanSystolicArray(kind=kind, rows=rows, cols=cols, acc_width=acc_width, max_k=max_k)
    else:
        from hw.array import SystolicArray

        array = SystolicArray(kind=kind, rows=rows, cols=cols, acc_width=acc_width, max_k=max_k)
    ports = ("clk", "rst", *array.signature.members)
    return to_verilog(array, _toplevel(kind, dataflow)), ports


class ArrayBuild:
    """One array compiled for one simulator, cached on disk.

    Parameters
    ----------
    kind : str
        Array kind (:data:`hw.kinds.KINDS`).
    rows, cols : int
    acc_width : int
    sim : str
        One of :data:`SIMULATORS`: ``verilator`` the native library
        (:class:`verify.simulator.NativeBuild`), ``icarus`` or
        ``verilator-cocotb`` a cocotb model (:class:`verify.simulator.HDLBuild`).
    build_root : path
        Cache root (default ``build/gemm``); the build lives in
        ``<root>/<kind>_<R>x<C>_acc<W>/<sim>`` (``<kind>_ws<depth>_<R>x<C>_acc<W>`` weight-stationary,
        ``<kind>_lean_<R>x<C>_acc<W>`` lean FPGA).
    dataflow : {"os", "ws", "os-lean"}
        Output-stationary (:mod:`hw.array`), weight-stationary (:mod:`hw.ws_array`) or lean FPGA
        (:mod:`hw.fpga_array`).
    """

    def __init__(self, *, kind, rows, cols, acc_width, sim, build_root=BUILD_ROOT, dataflow=OUTPUT_STATIONARY):
        if sim not in SIMULATORS:
            raise GemmError(f"unknown --sim {sim!r} (choose from {', '.join(SIMULATORS)})")
        if dataflow not in DATAFLOWS:
            raise GemmError(f"unknown --dataflow {dataflow!r} (choose from {', '.join(DATAFLOWS)})")
        for name, value in (("rows", rows), ("cols", cols)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise GemmError(f"--{name} must be a positive integer, not {value!r}")
        self.kind, self.sim, self.dataflow = kind, sim, dataflow
        if dataflow == WEIGHT_STATIONARY:
            from hw.tiling import WSSchedule

            self.b_port, self.controls = "w_in", WSSchedule.CONTROLS
        else:
            self.b_port, self.controls = "b_in", ("valid", "clear", "last")
        self.rows, self.cols, self.acc_width = rows, cols, acc_width
        self.toplevel = _toplevel(kind, dataflow)
        shape = {
            OUTPUT_STATIONARY: f"{rows}x{cols}",
            WEIGHT_STATIONARY: f"ws{_ws_depth(rows)}_{rows}x{cols}",
            LEAN_FPGA: f"lean_{rows}x{cols}",
        }[dataflow]
        self.directory = pathlib.Path(build_root).resolve() / f"{kind}_{shape}_acc{acc_width}" / sim
        # The cache key is a fingerprint of everything the Verilog and the model
        # derive from (the generator's sources and the parameters here, the
        # build options in verify.simulator), so a cache hit costs no Verilog
        # conversion (seconds for a 16 x 16 array); a miss converts and compiles.
        design = functools.partial(_array_verilog, kind, rows, cols, acc_width, dataflow)
        # X resolved at compile time and Amaranth's WIDTH warnings not fatal, on both Verilator paths.
        options = dict(
            toplevel=self.toplevel,
            directory=self.directory,
            verilog=lambda: design()[0],
            stamp=_fingerprint(kind, rows, cols, acc_width, dataflow),
            x_assign="fast",
            verilator_args=("-Wno-fatal",),
        )
        self.native = sim == NATIVE
        if self.native:
            from . import native

            # The harness source is in NativeBuild's key; the header generator's recipe in the stamp.
            options["stamp"] += f"\0native-config-{native.CONFIG_RECIPE}"
            self.hdl = NativeBuild(
                harness=native.HARNESS,
                config=lambda: native.harness_config(
                    self.toplevel, design()[1], b_port=self.b_port, controls=self.controls
                ),
                **options,
            )
        else:
            # Only the ports are driven and sampled: VPI access to nothing else.
            self.hdl = HDLBuild(
                sim="icarus" if sim == "icarus" else "verilator", public_ports=lambda: design()[1], **options
            )

    @property
    def built(self):
        """Whether this object compiled the model (a cache miss)."""
        return self.hdl.built

    def ensure(self):
        """Generate and compile unless an identical build is cached (safe across processes)."""
        self.hdl.ensure()

    def run(self, plan, *, a_width, b_width):
        """Simulate ``plan`` (a :class:`hw.tiling.Schedule`, or a :class:`hw.tiling.WSSchedule` on a
        weight-stationary array; per-cycle modes included); per column, the drained raw words, and the
        drive loop's wall time."""
        from hw import tiling

        self.ensure()
        if self.dataflow == WEIGHT_STATIONARY:
            a_rows, b_rows = tiling.pack_rows(plan.a_words, a_width), tiling.pack_rows(plan.w_words, b_width)
        else:  # each block's words packed once, then one row per cycle (hw.tiling.Operands)
            a_rows, b_rows = plan.a_operands.packed(a_width), plan.b_operands.packed(b_width)
        schedule = dict(
            buses={"a_in": a_rows, self.b_port: b_rows},
            controls={name: getattr(plan, name) for name in self.controls},
            modes=plan.modes,
            results=plan.results_per_column * plan.cols,
            drain_cycles=4 * plan.rows + plan.cols + 8,
        )
        simulate = self._run_native if self.native else self._run_cocotb
        valid_bytes, data_bytes, seconds = simulate(schedule, plan.cols)
        valid = tiling.unpack_rows(valid_bytes, plan.cols, 1)
        data = tiling.unpack_rows(data_bytes, plan.cols, self.acc_width)
        columns = [data[valid[:, j] == 1, j] for j in range(plan.cols)]
        return columns, seconds

    def _run_native(self, schedule, cols):
        """The record of :meth:`_run_cocotb`, from the native harness (:mod:`verify.native`)."""
        from . import native

        harness = native.load(self.hdl.library)
        buses, controls = schedule["buses"], schedule["controls"]
        # A weight-stationary schedule has no `clear`: the harness runs it in one part (one thread).
        valid_bytes, data_bytes, drained, seconds = harness.run(
            a_bytes=buses["a_in"],
            b_bytes=buses[self.b_port],
            **controls,
            modes=schedule["modes"],
            drain_cycles=schedule["drain_cycles"],
            expected_results=schedule["results"],
            valid_len=(cols + 7) // 8,
            data_len=(cols * self.acc_width + 7) // 8,
        )
        if drained != schedule["results"]:
            raise RuntimeError(
                f"{self.toplevel} on {self.sim}: drained {drained} results, expected {schedule['results']}"
            )
        return valid_bytes, data_bytes, seconds

    def _run_cocotb(self, schedule, cols):
        """Run :mod:`verify.array_tb` on the schedule: its record (``out_valid`` and
        ``out_data`` byte rows of every cycle that drained a result) and the drive loop's time."""
        runs = self.directory / "runs"
        runs.mkdir(exist_ok=True)
        workdir = pathlib.Path(tempfile.mkdtemp(dir=runs))
        schedule_path, record_path = workdir / "schedule.npz", workdir / "record.npz"
        buses, controls, modes = schedule["buses"], schedule["controls"], schedule["modes"]
        np.savez(
            schedule_path,
            buses=np.array(list(buses), dtype=str),
            **{f"bus_{name}": rows for name, rows in buses.items()},
            controls=np.array(list(controls), dtype=str),
            **{f"control_{name}": values for name, values in controls.items()},
            mode_names=np.array(list(modes), dtype=str),
            **{f"mode_{name}": values for name, values in modes.items()},
            results=schedule["results"],
            drain_cycles=schedule["drain_cycles"],
        )
        env = {
            "FOURBIT_GEMM_IN": str(schedule_path),
            "FOURBIT_GEMM_OUT": str(record_path),
            "COCOTB_LOG_LEVEL": "WARNING",
        }
        result = self.hdl.test("verify.array_tb", name="sim", env=env, test_dir=workdir, check=False)
        if not record_path.exists():
            raise RuntimeError(f"{self.toplevel} on {self.sim}: simulation produced no record ({result.describe()})")
        record = np.load(record_path)
        valid_bytes, data_bytes, seconds = record["valid_bytes"], record["data_bytes"], float(record["seconds"])
        if not result.passed:
            raise RuntimeError(f"{self.toplevel} on {self.sim}: simulation failed ({result.describe()})")
        shutil.rmtree(workdir, ignore_errors=True)
        return valid_bytes, data_bytes, seconds


class Gemm:
    """One GEMM to run: ``pe``, operands, signedness and block scales (see :func:`run_gemm`)."""

    def __init__(self, pe, a, b, *, a_signed=True, b_signed=True, a_scales=None, b_scales=None):
        self.pe, self.a, self.b, self.a_signed, self.b_signed = pe, a, b, bool(a_signed), bool(b_signed)
        self.a_scales, self.b_scales = a_scales, b_scales


def run_gemms(gemms, *, rows, cols, sim="icarus", array="dedicated", build_root=BUILD_ROOT, dataflow=OUTPUT_STATIONARY):
    """Several GEMMs back to back in one simulation of one array (e.g. the forward
    and backward GEMMs of a training step on the train array, whose mode inputs
    travel with the data and so switch between GEMMs without a pause).

    Parameters
    ----------
    gemms : list of Gemm
        All must run on the same array kind.
    rows, cols, sim, array, build_root, dataflow
        As for :func:`run_gemm`.

    Returns
    -------
    list of GemmResult
        In order; ``sim_seconds`` and ``seconds`` are those of the whole run.
    """
    started = time.perf_counter()
    if not gemms:
        raise GemmError("no GEMM to run")
    kinds = {array_kind(g.pe, array) for g in gemms}
    if len(kinds) != 1:
        raise GemmError(f"GEMMs of one run must share an array, not {sorted(kinds)}")
    (kind,) = kinds
    if sim not in SIMULATORS:
        raise GemmError(f"unknown --sim {sim!r} (choose from {', '.join(SIMULATORS)})")
    if dataflow == WEIGHT_STATIONARY and not get_kind(kind).weight_stationary:
        raise GemmError(f"the {kind} array is output-stationary only: --dataflow ws does not apply")
    if dataflow == LEAN_FPGA and not get_kind(kind).fpga_lean:
        raise GemmError(f"the {kind} kind has no lean FPGA array: --dataflow {LEAN_FPGA} does not apply")
    operands = [
        operand_bits(g.pe, g.a, g.b, a_signed=g.a_signed, b_signed=g.b_signed, a_scales=g.a_scales, b_scales=g.b_scales)
        for g in gemms
    ]

    from hw import tiling

    spec = get_kind(kind)
    width = max(accumulator_width(kind, g.a.shape[1]) for g in gemms)
    build = ArrayBuild(
        kind=kind, rows=rows, cols=cols, acc_width=width, sim=sim, build_root=build_root, dataflow=dataflow
    )
    stationary_weights = dataflow == WEIGHT_STATIONARY
    plans = []
    for g, (a_bits, b_bits) in zip(gemms, operands):
        if stationary_weights:
            plan = tiling.ws_schedule(a_bits, b_bits, rows, cols, _ws_depth(rows))
        else:
            plan = tiling.schedule(a_bits, b_bits, rows, cols)
        plan.modes = {
            name: np.full(plan.cycles, value, dtype=np.uint8)
            for name, value in spec.mode_inputs(g.pe, a_signed=g.a_signed, b_signed=g.b_signed).items()
        }
        plans.append(plan)
    combined = (tiling.ws_concatenate if stationary_weights else tiling.concatenate)(plans)
    columns, sim_seconds = build.run(combined, a_width=spec.a_width, b_width=spec.b_width)
    results = []
    for g, plan, part in zip(gemms, plans, tiling.split_columns(plans, columns)):
        raw = (tiling.ws_assemble if stationary_weights else tiling.assemble)(plan, part)
        c = get_gemm(g.pe).decode(raw, width)
        results.append(
            GemmResult(
                c=c,
                cycles=plan.cycles,
                sim_seconds=sim_seconds,
                seconds=time.perf_counter() - started,
                built=build.built,
                acc_width=width,
            )
        )
    return results


def run_gemm(
    pe,
    a,
    b,
    *,
    rows,
    cols,
    a_signed=True,
    b_signed=True,
    a_scales=None,
    b_scales=None,
    sim="icarus",
    array="dedicated",
    build_root=BUILD_ROOT,
    dataflow=OUTPUT_STATIONARY,
):
    """``A @ B`` as the simulated ``rows`` x ``cols`` array computes it.

    Parameters
    ----------
    pe : str
        A GEMM of :data:`PES`.
    a, b : numpy.ndarray
        Operands (see the module docstring for dtypes and ranges).
    rows, cols : int
        Array size.
    a_signed, b_signed : bool
        Signedness of the integer operands.
    a_scales, b_scales : numpy.ndarray, optional
        Block-scale codes of a scaled GEMM (SPEC section 7), required there and refused elsewhere.
    sim : {"icarus", "verilator", "verilator-cocotb"}
        ``verilator`` runs the native harness (:mod:`verify.native`), the others cocotb.
    array : str
        ``dedicated`` or a kind of :data:`hw.kinds.KINDS` that runs ``pe``.
    build_root : path
        Build cache root.
    dataflow : {"os", "ws", "os-lean"}
        Output-stationary array (:mod:`hw.array`), weight-stationary (:mod:`hw.ws_array`) or the
        lean FPGA output-stationary array (:mod:`hw.fpga_array`).

    Returns
    -------
    GemmResult

    Raises
    ------
    GemmError
        Bad input.
    RuntimeError
        The simulation failed.
    """
    (result,) = run_gemms(
        [Gemm(pe, a, b, a_signed=a_signed, b_signed=b_signed, a_scales=a_scales, b_scales=b_scales)],
        rows=rows,
        cols=cols,
        sim=sim,
        array=array,
        build_root=build_root,
        dataflow=dataflow,
    )
    return result


#: Largest array side and PE count ``python -m verify.gemm`` accepts. The array's
#: Verilog is elaborated and compiled whole, in time and memory that grow with
#: its PE count: 16 x 16 (the largest the tests and benchmarks run) takes
#: 1.5-3 minutes to build for Verilator; 1 x 100000 runs for minutes without
#: output and 100000 x 100000 runs out of memory. The limits allow 4 times the
#: tested PE count, a build of about ten minutes.
MAX_ARRAY_SIDE = 64
MAX_ARRAY_PES = 1024
_SIZE_REASON = (
    "elaboration time and memory grow with the PE count (the largest tested array is 16x16, "
    "whose first Verilator build takes 1.5-3 minutes)"
)
_NPY_MAGIC = b"\x93NUMPY"


def _load(path, name):
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(_NPY_MAGIC))
    except FileNotFoundError:
        raise GemmError(f"--{name}: no such file {path}") from None
    except OSError as error:
        raise GemmError(f"--{name}: cannot read {path}: {error.strerror}") from None
    if magic != _NPY_MAGIC:
        # Text or CSV saved under a .npy name: numpy would talk about allow_pickle.
        raise GemmError(f"--{name}: {path} is not a .npy file (no NumPy header; save it with numpy.save)")
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise GemmError(f"--{name}: cannot read {path} as .npy: {error}") from None
    if not isinstance(matrix, np.ndarray):
        raise GemmError(f"--{name}: {path} is not a single .npy array")
    return matrix


def _save_atomic(path, matrix):
    path = pathlib.Path(path)
    directory = path.parent if str(path.parent) else pathlib.Path(".")
    if not directory.is_dir():
        raise GemmError(f"--out: directory {directory} does not exist")
    write_atomically(path, lambda tmp: np.save(tmp, matrix), suffix=".tmp.npy")


def _parser(prog=None):
    array_side = bounded_int(1, MAX_ARRAY_SIDE, _SIZE_REASON)
    parser = OneLineParser(
        prog=prog or "python -m verify.gemm",
        error_prefix=prog or "verify.gemm",
        description="Run C = A @ B on a simulated R x C systolic array and write C (.npy).",
        epilog=f"Arrays are limited to {MAX_ARRAY_SIDE} rows or columns and {MAX_ARRAY_PES} PEs: {_SIZE_REASON}. "
        "Prints one summary line on stderr on success, and a line before it builds an array (cached in build/gemm).",
    )
    gemms = "; ".join(f"{gemm.name}: {gemm.description}" for gemm in GEMMS.values())
    parser.add_argument("--pe", required=True, choices=PES, help=f"the GEMM ({gemms})")
    parser.add_argument("--rows", required=True, type=array_side, help=f"array rows R (1..{MAX_ARRAY_SIDE})")
    parser.add_argument("--cols", required=True, type=array_side, help=f"array columns C (1..{MAX_ARRAY_SIDE})")
    parser.add_argument("--a", required=True, metavar="A.npy", help="M x K left operand")
    parser.add_argument("--b", required=True, metavar="B.npy", help="K x N right operand")
    scaled = ", ".join(gemm.name for gemm in GEMMS.values() if gemm.scaled)
    parser.add_argument(
        "--a-scales", metavar="AS.npy", help=f"M x ceil(K/bs) block-scale codes of A (uint8); {scaled} only (required)"
    )
    parser.add_argument(
        "--b-scales", metavar="BS.npy", help=f"ceil(K/bs) x N block-scale codes of B (uint8); {scaled} only (required)"
    )
    parser.add_argument("--out", required=True, metavar="C.npy", help="M x N result (written atomically)")

    # None = not given: a signedness option that does not apply to --pe is warned about only when given.
    def takes(mode):
        return ", ".join(gemm.name for gemm in GEMMS.values() if mode in gemm.signedness)

    parser.add_argument(
        "--a-signed",
        type=bit_flag,
        default=None,
        metavar="0|1",
        help=f"A is INT4 (1, default) or UINT4 (0); {takes('a_signed')} only (ignored with a warning otherwise)",
    )
    parser.add_argument(
        "--b-signed",
        type=bit_flag,
        default=None,
        metavar="0|1",
        help=f"B is INT4 (1, default) or UINT4 (0); {takes('b_signed')} only (ignored with a warning otherwise)",
    )
    parser.add_argument(
        "--sim",
        default="icarus",
        choices=SIMULATORS,
        help=f"simulator (default: %(default)s): {NATIVE} runs a compiled C++ driver (no Python per cycle), "
        f"{COCOTB_VERILATOR} the cocotb driver on Verilator, icarus cocotb on Icarus",
    )
    parser.add_argument(
        "--array",
        default=DEDICATED,
        choices=ARRAYS,
        help="the dedicated array of --pe (default), or the array of a kind that also runs it "
        + "("
        + "; ".join(
            f"{kind.name}: {', '.join(g.name for g, _ in kind.gemms)}" for kind in KINDS.values() if len(kind.gemms) > 1
        )
        + ")",
    )
    parser.add_argument(
        "--dataflow",
        default=OUTPUT_STATIONARY,
        choices=DATAFLOWS,
        help="os: output-stationary array (default); ws: weight-stationary array (weights held in the PEs, "
        "A streamed, partial sums down the columns); os-lean: the lean FPGA output-stationary array "
        "(kinds with a lean rule)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="summary line with accumulator width and simulation time"
    )
    return parser


def _inapplicable_options(args):
    """The signedness options given that ``--pe`` does not take (its :attr:`GemmType.signedness`), as ``--a-signed``."""
    takes = get_gemm(args.pe).signedness
    return [
        "--" + name.replace("_", "-")
        for name in ("a_signed", "b_signed")
        if getattr(args, name) is not None and name not in takes
    ]


def _shown(path):
    """``path`` relative to the working directory when below it (``build/gemm``), else absolute."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def _build_pending(args, a):
    """Where the array this run needs will be built, or None when a cached build is current."""
    kind = array_kind(args.pe, args.array)
    build = ArrayBuild(
        kind=kind,
        rows=args.rows,
        cols=args.cols,
        acc_width=accumulator_width(kind, a.shape[1] if a.ndim == 2 else 1),
        sim=args.sim,
        build_root=BUILD_ROOT,
        dataflow=args.dataflow,
    )
    return None if build.hdl.is_cached() else kind


def _process_seconds():
    """Wall time since this process started (Linux: its start time in ``/proc``, 10 ms ticks), so that
    ``--verbose`` reports the whole command's rate, interpreter start-up and imports included; elsewhere,
    None."""
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of proc(5): starttime
    except (OSError, ValueError, IndexError):
        return None


def main(argv=None, prog=None):
    """Entry point of ``python -m verify.gemm``; returns the exit status (0, 1 simulation failure, 2 bad input)."""
    args = _parser(prog).parse_args(argv)
    prog = prog or "verify.gemm"
    if args.rows * args.cols > MAX_ARRAY_PES:
        print(
            f"{prog}: error: a {args.rows}x{args.cols} array has {args.rows * args.cols} PEs, above the limit of "
            f"{MAX_ARRAY_PES}: {_SIZE_REASON}",
            file=sys.stderr,
        )
        return 2
    for option in _inapplicable_options(args):
        print(f"{prog}: warning: {option} does not apply to --pe {args.pe} (ignored)", file=sys.stderr)
    # The summary and progress lines name the dataflow when it is not the default.
    flow = "" if args.dataflow == OUTPUT_STATIONARY else f" {args.dataflow}"
    a_signed = True if args.a_signed is None else args.a_signed
    b_signed = True if args.b_signed is None else args.b_signed
    try:
        gemm = get_gemm(args.pe)
        given = [f"--{name}" for name in ("a-scales", "b-scales") if getattr(args, name.replace("-", "_")) is not None]
        if gemm.scaled and len(given) < 2:
            raise GemmError(f"--pe {args.pe} needs --a-scales and --b-scales (its block-scale codes)")
        if given and not gemm.scaled:
            raise GemmError(f"{' and '.join(given)} apply only to the block-scaled GEMMs, not to --pe {args.pe}")
        a, b = _load(args.a, "a"), _load(args.b, "b")
        scales = {}
        if gemm.scaled:
            scales = {"a_scales": _load(args.a_scales, "a-scales"), "b_scales": _load(args.b_scales, "b-scales")}
        out_dir = pathlib.Path(args.out).parent
        if not out_dir.is_dir():
            raise GemmError(f"--out: directory {out_dir} does not exist")
        if pathlib.Path(args.out).is_dir():
            raise GemmError(f"--out: {args.out} is a directory, not a file")
        # Checked before the (possibly minutes-long) build, so bad operands never wait for it.
        operand_bits(args.pe, a, b, a_signed=a_signed, b_signed=b_signed, **scales)
        pending = _build_pending(args, a)
        if pending is not None:
            print(
                f"{prog}: building the {args.rows}x{args.cols} {pending}{flow} array for {args.sim} "
                f"(first run; cached in {_shown(BUILD_ROOT)})",
                file=sys.stderr,
                flush=True,
            )
        result = run_gemm(
            args.pe,
            a,
            b,
            rows=args.rows,
            cols=args.cols,
            a_signed=a_signed,
            b_signed=b_signed,
            sim=args.sim,
            array=args.array,
            build_root=BUILD_ROOT,
            dataflow=args.dataflow,
            **scales,
        )
        _save_atomic(args.out, result.c)
    except GemmError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    details = ""
    if args.verbose:
        built = " (built)" if result.built else ""
        details = f", acc {result.acc_width} bits, simulation {result.sim_seconds:.3f} s{built}"
        # PE-MACs: the M x K x N multiply-accumulates of the GEMM (padding excluded), over the whole process.
        macs, wall = a.shape[0] * a.shape[1] * b.shape[1], _process_seconds()
        if wall is not None:
            details += f", process {wall:.2f} s: {macs / wall / 1e6:.1f} x 10^6 PE-MACs/s"
    print(
        f"{prog}: {args.out}: {args.pe} {a.shape[0]}x{a.shape[1]}x{b.shape[1]} on {args.rows}x{args.cols} "
        f"({args.array}{flow and ',' + flow}, {args.sim}): {result.cycles} cycles, {result.seconds:.1f} s{details}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "verify.gemm"))
