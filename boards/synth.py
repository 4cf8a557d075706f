"""``python -m boards.synth``: bitstream and resource/Fmax report of the UART GEMM engine on a board.

Example::

    python -m boards.synth --board icebreaker [--pe int4] [--rows 4] [--cols 4] [--clock-mhz 30] [--seed 1] \\
        [--out build/boards/icebreaker]

Runs Amaranth's build plan for the board (:mod:`boards.platforms`) with the
YoWASP tools: Yosys ``synth_ice40``/``synth_ecp5``, nextpnr (``--report``),
icepack/ecppack. Writes into ``--out`` (default ``build/boards/<board>``)
the bitstream (``top.bin`` for iCE40, ``top.bit`` for ECP5), the tool logs
(``top.rpt`` Yosys, ``top.tim`` nextpnr) and ``report.json``:

``device``, ``luts``, ``ffs``, ``dsps``, ``brams`` (cells of the synthesized
netlist, see :func:`netlist_resources`), ``fmax_mhz`` (nextpnr's achieved
Fmax of the engine's clock; nextpnr runs with ``--timing-allow-fail`` so
that the sweep measures slow designs too), ``clock_mhz`` (the engine's
clock: the board clock ``board_clock_mhz`` divided by ``clock_div``, 2 for
``fp16`` by default; with ``--clock-mhz`` the device PLL's output,
:mod:`boards.pll`, described in ``pll``), ``timing_met`` (every clock meets
its constraint), ``clocks`` (every clock net's Fmax and constraint),
``seed``, ``array`` (``pe``, ``rows``, ``cols``, ...), ``utilization``
(nextpnr's per-BEL used / available), ``bitstream``, ``seconds``.

A build is three steps, so that the tools can run on another machine (a
dask worker, :mod:`boards.cluster`): :func:`prepare` elaborates the design
into a :class:`BuildJob` (Amaranth's build plan: RTLIL, constraints, the
build script; no path of this machine), :func:`execute` runs the tools on a
job and returns its outcome as plain data (the logs, nextpnr's report, the
bitstream), :func:`finish` writes the outcome under the build directory and
makes the report. :func:`synthesize` does all three here, building in the
output directory itself.

Exit status: 0 built; 2 bad input (an unknown board lists the supported
ones); 3 the design does not fit (the message carries the utilisation
nextpnr reported); 1 any other tool failure.
"""

import argparse
import atexit
import contextlib
import dataclasses
import json
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psutil

from fourbit.util.cli import OneLineParser, bit_flag, non_negative_int, positive_int, run_main
from fourbit.util.files import write_atomically, write_text_atomically
from hw.kinds import KINDS

from .platforms import BOARDS, PLL_CLOCK_NET, BoardTop, unknown_board_message, yowasp_env
from .pll import plan_pll

__all__ = [
    "SynthError",
    "SynthInterrupted",
    "DoesNotFit",
    "BuildJob",
    "prepare",
    "execute",
    "finish",
    "synthesize",
    "netlist_resources",
    "main",
]


REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
NAME = "top"


class SynthError(RuntimeError):
    """A tool failed (log path in the message)."""


class SynthInterrupted(SynthError):
    """A tool was killed by a signal (Ctrl-C, a job limit): says nothing about the design."""


class DoesNotFit(SynthError):
    """Place and route ran out of some resource.

    Attributes
    ----------
    utilization : dict
        ``{bel: (used, available)}`` as nextpnr reported it.
    """

    def __init__(self, message, utilization):
        super().__init__(message)
        self.utilization = utilization


#: Netlist cell types counted per family: (LUT4s per cell, FFs, DSPs, BRAMs).
_CELLS = {
    "ice40": {
        "luts": {"SB_LUT4": 1},
        "ffs": "SB_DFF",
        "dsps": {"SB_MAC16": 1},
        "brams": {"SB_RAM40_4K": 1, "SB_SPRAM256KA": 1},
    },
    "ecp5": {
        "luts": {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 1},
        "ffs": "TRELLIS_FF",
        "dsps": {"MULT18X18D": 1, "ALU54B": 1},
        "brams": {"DP16KD": 1, "PDPW16KD": 1},
    },
}


def netlist_resources(netlist, family):
    """LUT4s, flip-flops, DSPs and block RAMs in a synthesized Yosys JSON netlist.

    ``luts`` counts LUT4 slots: on ECP5 a ``CCU2C`` carry cell is two LUT4s and
    a ``TRELLIS_DPR16X4`` distributed RAM is counted as one; on iCE40 carry
    chains (``SB_CARRY``) share the LUT4 of their logic cell and add none.
    ``ffs`` counts every flip-flop cell type (``SB_DFF*``, ``TRELLIS_FF``).
    """
    spec = _CELLS[family]
    counts = {"luts": 0, "ffs": 0, "dsps": 0, "brams": 0}
    for module in netlist["modules"].values():
        if module.get("attributes", {}).get("blackbox"):
            continue
        for cell in module.get("cells", {}).values():
            kind = cell["type"]
            if kind.startswith(spec["ffs"]):
                counts["ffs"] += 1
            for field in ("luts", "dsps", "brams"):
                counts[field] += spec[field].get(kind, 0)
    return counts


def _log_utilization(log_text):
    """``{bel: (used, available)}`` from nextpnr's 'Device utilisation' lines."""
    found = {}
    for bel, used, available in re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", log_text, re.M):
        found[bel] = (int(used), int(available))
    return found


def _does_not_fit(pe, rows, cols, board, spec, shown, utilization, log):
    detail = ", ".join(f"{bel} {u}/{a} ({100 * u / a:.0f}%)" for bel, (u, a) in shown.items() if a)
    return DoesNotFit(
        f"{pe} {rows}x{cols} does not fit on {board} ({spec.device}): nextpnr reported "
        f"{detail or 'no utilisation'}; see {log}",
        utilization,
    )


def _overfull(log_path):
    """``{bel: (used, available)}`` over capacity in nextpnr's log so far."""
    try:
        text = log_path.read_text()
    except OSError:
        return {}
    return {bel: ua for bel, ua in _log_utilization(text).items() if ua[0] > ua[1]}


def _stop(process):
    """Terminate the build script and every tool it started (then kill what is left)."""
    try:
        parent = psutil.Process(process.pid)
        tree = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for member in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(tree, timeout=10)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    process.wait()


def _run_build(out, script, env, poll_seconds=2.0, should_stop=None):
    """Run Amaranth's build script in ``out``; ``(exit status, overfull)``.

    The tools run quietly: their logs are top.rpt (Yosys) and top.tim
    (nextpnr); their console output (warnings, errors, and with --pack-only
    one warning per unplaced cell) goes to ``build.log``, empty after a clean build.
    nextpnr-ecp5 does not give up on a design larger than the device: its
    placer retries for hours. So nextpnr's log is watched, and once packing
    reports a resource over capacity the build is stopped and ``overfull``
    holds that utilisation (exit status None). ``should_stop`` (polled with
    the log) stops the build when it returns true: the exit status is then
    -SIGTERM, as for any killed tool.

    The tools stay in this process's process group, so that Ctrl-C in a
    terminal reaches them as it reaches a local cluster's workers.
    """
    log_path = out / f"{NAME}.tim"
    with open(out / "build.log", "w") as console:
        process = subprocess.Popen(["sh", f"{script}.sh"], cwd=out, env=env, stdout=console, stderr=subprocess.STDOUT)
        _RUNNING.add(process)
        try:
            while True:
                try:
                    return process.wait(timeout=poll_seconds), {}
                except subprocess.TimeoutExpired:
                    over = _overfull(log_path)
                    if over:
                        _stop(process)
                        return None, over
                    if should_stop is not None and should_stop():
                        _stop(process)
                        return -signal.SIGTERM, {}
        except BaseException:
            # Ctrl-C or an error here: leave no tool running.
            if process.poll() is None:
                _stop(process)
            raise
        finally:
            _RUNNING.discard(process)


#: Build outputs a worker sends back: the tool logs and nextpnr's report (the
#: bitstream too unless the job drops it); the synthesized netlist stays on the
#: worker, which counts its cells.
_RETURNED_LOGS = (f"{NAME}.rpt", f"{NAME}.tim", "build.log", "nextpnr.json")
_STALE = ("report.json", f"{NAME}.tim", f"{NAME}.bin", f"{NAME}.bit", "nextpnr.json", "build.log")


@dataclasses.dataclass(frozen=True)
class BuildJob:
    """One board build, self-contained: everything a worker on another machine needs.

    Made by :func:`prepare` on the client (the Amaranth elaboration), run by
    :func:`execute` anywhere the YoWASP tools are installed, its outcome turned
    into files and a report by :func:`finish`.

    Attributes
    ----------
    board, family, device : str
        The board, its FPGA family (``ice40``/``ecp5``) and device.
    array : dict
        ``pe``, ``rows``, ``cols``, ``macs``, ``acc_width``, ``depth``.
    clock : dict
        ``board_clock_mhz``, ``clock_div``, and for a PLL build ``pll``
        (:meth:`boards.pll.PLLConfig.describe`).
    seed : int
        nextpnr placer seed.
    pack_only : bool
        Stop nextpnr after packing.
    keep_bitstream : bool
        Send the bitstream back (a sweep point does not need it).
    script : str
        Base name of Amaranth's build script.
    files : dict
        ``{relative name: str or bytes}``: Amaranth's build plan (RTLIL,
        constraints, the script).
    engine_clock : str or None
        Name of the engine's clock net in nextpnr's report (None: the slowest
        constrained clock, as with the board clock or its divider).
    """

    board: str
    family: str
    device: str
    array: dict
    clock: dict
    seed: int
    pack_only: bool
    keep_bitstream: bool
    script: str
    files: dict
    engine_clock: str | None = None

    @property
    def bitstream(self):
        return f"{NAME}.bin" if self.family == "ice40" else f"{NAME}.bit"

    def with_seed(self, seed):
        """The same build with another nextpnr seed, without elaborating the design again.

        The seed is an option in Amaranth's build scripts (``build_top.sh``,
        ``.bat`` and ``.json``); each must hold it exactly once.
        """
        if self.pack_only:
            raise ValueError("a pack-only build has no placer seed")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"the nextpnr seed must be a non-negative integer, not {seed!r}")
        files = dict(self.files)
        patterns = ((f"--seed {self.seed} ", f"--seed {seed} "), (f'"--seed", "{self.seed}"', f'"--seed", "{seed}"'))
        for name, text in self.files.items():
            if not name.startswith(self.script + "."):
                continue
            found = [(old, new) for old, new in patterns if text.count(old) == 1]
            if len(found) != 1:
                raise SynthError(f"the build script {name} does not hold the nextpnr seed option exactly once")
            files[name] = text.replace(*found[0])
        return dataclasses.replace(self, seed=seed, files=files)

    def label(self):
        a = self.array
        return f"{self.board} {a['pe']} {a['rows']}x{a['cols']} seed {self.seed}" + (
            " (pack)" if self.pack_only else ""
        )


def prepare(
    board,
    *,
    pe=None,
    rows=None,
    cols=None,
    depth=256,
    seed=1,
    clock_div=None,
    clock_mhz=None,
    pack_only=False,
    keep_bitstream=True,
    lean=False,
):
    """Elaborate the engine for ``board`` into a :class:`BuildJob` (see :func:`synthesize` for the parameters).

    Raises
    ------
    ValueError, TypeError
        Unknown board or kind, bad sizes, a clock the board cannot make.
    """
    if board not in BOARDS:
        raise ValueError(unknown_board_message(board))
    spec = BOARDS[board]
    pe = spec.default_pe if pe is None else pe
    if pe not in KINDS:
        raise ValueError(f"unknown PE kind {pe!r} (known: {', '.join(KINDS)})")
    if (rows is None) != (cols is None):
        # Half a size would silently take the other half from the default and overwrite the last build.
        raise ValueError("give both --rows and --cols (make: ROWS= and COLS=), or neither for the board's default size")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"the nextpnr seed must be a non-negative integer, not {seed!r}")
    if rows is None:
        rows, cols = spec.default_size(pe)
    platform = spec.platform()
    board_hz = platform.default_clk_frequency
    pll = None
    if clock_mhz is not None:
        if clock_div not in (None, 1):
            raise ValueError("give either a clock divider or a PLL clock (--clock-mhz), not both")
        clock_div = 1
        pll = plan_pll(spec.family, board_hz, clock_mhz * 1e6)
    clock_div = spec.clock_div(pe) if clock_div is None else clock_div
    top = BoardTop(kind=pe, rows=rows, cols=cols, depth=depth, clock_div=clock_div, pll=pll, lean=lean)
    if pack_only:
        nextpnr_opts = "--pack-only --timing-allow-fail"
    else:
        nextpnr_opts = f"--report nextpnr.json --seed {seed} --timing-allow-fail"
    # No source locations: the plan is the same from every checkout (and smaller to ship).
    plan = platform.prepare(top, name=NAME, emit_src=False, synth_opts=spec.synth_opts(pe), nextpnr_opts=nextpnr_opts)
    clock = {"board_clock_mhz": round(board_hz / 1e6, 2), "clock_div": clock_div}
    if pll is not None:
        clock["pll"] = pll.describe()
    return BuildJob(
        board=board,
        family=spec.family,
        device=spec.device,
        array={
            "pe": pe,
            "rows": rows,
            "cols": cols,
            "macs": rows * cols,
            "acc_width": top_acc_width(pe, lean, depth),
            "depth": depth,
            **({"lean": True} if lean else {}),
        },
        clock=clock,
        seed=seed,
        pack_only=pack_only,
        keep_bitstream=keep_bitstream,
        script=plan.script,
        files=dict(plan.files),
        engine_clock=PLL_CLOCK_NET if pll is not None else None,
    )


def _extract(files, root):
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8", newline="\n")
        else:
            path.write_bytes(content)


#: The build scripts running in this process: stopped at exit (a dask
#: worker that is closed while it builds would otherwise leave its tools).
_RUNNING = set()


@atexit.register
def _stop_running_builds():
    for process in list(_RUNNING):
        _stop(process)


def _worker_closing():
    """True once the dask worker running this task is closing (always False outside a worker)."""
    try:
        from distributed import get_worker
        from distributed.core import Status

        worker = get_worker()
    except (ImportError, ValueError):
        return False
    return worker.status not in (Status.running, Status.paused)


def execute(job, workdir=None):
    """Run a :class:`BuildJob`'s tools; return its outcome (a dict of plain data, no path of this machine).

    This is the task a dask worker runs. The build runs in ``workdir``
    (default: a temporary directory, removed afterwards) with the YoWASP tools
    of the Python running it. The outcome has ``status`` (``built``,
    ``misfit``, ``failed`` or ``killed``), ``artifacts`` (``{name: bytes}``:
    the tool logs, nextpnr's report, the bitstream if the job keeps it),
    ``resources`` (netlist cell counts), ``utilization`` (``{bel: [used,
    available]}``), ``overfull`` (the BELs over capacity), ``fmax`` (nextpnr's
    per-clock report), ``exit_status``, ``error_log`` (``top.tim`` or ``build.log``:
    where the error is), ``tail`` and ``seconds``.
    """
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="fourbit-board-") as scratch:
            return execute(job, pathlib.Path(scratch))
    out = pathlib.Path(workdir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in _STALE:
        (out / stale).unlink(missing_ok=True)
    started = time.perf_counter()
    _extract(job.files, out)
    env = yowasp_env()
    if job.pack_only:
        # Nothing to pack into a bitstream: the build script's last step does nothing.
        env.update(ICEPACK=shutil.which("true"), ECPPACK=shutil.which("true"))
    status, overfull = _run_build(out, job.script, env, should_stop=_worker_closing)
    log = out / f"{NAME}.tim"
    text = log.read_text() if log.exists() else ""
    utilization = _log_utilization(text)
    outcome = {
        "status": "built",
        "exit_status": status,
        "resources": None,
        "utilization": utilization,
        "overfull": overfull,
        "fmax": {},
        "pnr_utilization": {},
        "error_log": log.name,
        "tail": "",
    }
    if not overfull and job.pack_only and status != 0 and utilization:
        # Packing finished and fits; nextpnr-ecp5 then fails to write the
        # configuration of an unplaced design, which says nothing.
        status = outcome["exit_status"] = 0
    over = {bel: ua for bel, ua in utilization.items() if ua[0] > ua[1]}
    if overfull:
        outcome["status"] = "misfit"
    elif status < 0 or status >= 128:
        outcome.update(status="killed", error_log="build.log")
    elif status != 0:
        if over or re.search(r"Unable to place cell|no BELs remaining|failed to place|exceeded", text, re.I):
            outcome.update(status="misfit", overfull=over or utilization)
        else:
            outcome.update(status="failed", error_log=log.name if text else "build.log")
            outcome["tail"] = "\n".join(text.splitlines()[-5:])
    elif job.pack_only and over:
        outcome.update(status="misfit", overfull=over)
    if outcome["status"] == "built":
        outcome["resources"] = netlist_resources(json.loads((out / f"{NAME}.json").read_text()), job.family)
        if not job.pack_only:
            pnr = json.loads((out / "nextpnr.json").read_text())
            outcome["fmax"] = pnr.get("fmax", {})
            outcome["pnr_utilization"] = pnr.get("utilization", {})
    names = list(_RETURNED_LOGS)
    if job.keep_bitstream and not job.pack_only:
        names.append(job.bitstream)
    outcome["artifacts"] = {name: (out / name).read_bytes() for name in names if (out / name).exists()}
    outcome["seconds"] = round(time.perf_counter() - started, 1)
    return outcome


def _artifact_files(job, outcome):
    """``{name: bytes}`` to write into the client's build directory: the build plan and what came back."""
    files = {name: content.encode() if isinstance(content, str) else content for name, content in job.files.items()}
    files.update(outcome["artifacts"])
    return files


def finish(job, outcome, out, *, written=False):
    """Write a build's outcome under ``out`` and return its report (written to ``report.json`` last).

    ``written``: the build ran in ``out`` itself, its files are there already.
    Raises what :func:`synthesize` raises for a failed build.
    """
    out = pathlib.Path(out)
    if not written:
        out.mkdir(parents=True, exist_ok=True)
        for stale in _STALE:
            (out / stale).unlink(missing_ok=True)
        for name, content in _artifact_files(job, outcome).items():
            write_atomically(
                out / name, lambda tmp, content=content: pathlib.Path(tmp).write_bytes(content), make_parents=True
            )
    a = job.array
    pe, rows, cols = a["pe"], a["rows"], a["cols"]
    log = out / outcome["error_log"]
    status = outcome["status"]
    if status == "misfit":
        shown = outcome["overfull"] or outcome["utilization"]
        raise _does_not_fit(pe, rows, cols, job.board, BOARDS[job.board], shown, outcome["utilization"], log)
    if status == "killed":
        raise SynthInterrupted(f"{job.board}: a tool was killed (exit status {outcome['exit_status']}); see {log}")
    if status == "failed":
        raise SynthError(f"{job.board}: the build failed; see {log}\n{outcome['tail']}".rstrip())
    base = {"board": job.board, "device": job.device, **outcome["resources"]}
    if job.pack_only:
        return {
            **base,
            "array": a,
            "stage": "pack",
            "utilization": {bel: {"used": u, "available": v} for bel, (u, v) in outcome["utilization"].items()},
            "seconds": outcome["seconds"],
        }
    fmax = outcome["fmax"]
    if not fmax:
        raise SynthError(f"{job.board}: nextpnr reported no clock Fmax; see {out / (NAME + '.tim')}")
    clock = _engine_clock(fmax, job.engine_clock)
    timing_met = all(float(entry["achieved"]) >= float(entry["constraint"]) for entry in fmax.values())
    bitstream = out / job.bitstream
    report = {
        **base,
        "fmax_mhz": round(float(clock["achieved"]), 2),
        "clock_mhz": round(float(clock["constraint"]), 2),
        **job.clock,
        "timing_met": timing_met,
        "clocks": {
            net: {"fmax_mhz": round(float(e["achieved"]), 2), "constraint_mhz": round(float(e["constraint"]), 2)}
            for net, e in fmax.items()
        },
        "seed": job.seed,
        "array": a,
        "stage": "pnr",
        "utilization": {
            bel: {"used": v["used"], "available": v["available"]} for bel, v in outcome["pnr_utilization"].items()
        },
        "bitstream": str(bitstream.relative_to(REPO_ROOT)) if bitstream.is_relative_to(REPO_ROOT) else str(bitstream),
        "seconds": outcome["seconds"],
    }
    if not job.keep_bitstream:
        report["bitstream"] = None
    elif not bitstream.exists():
        raise SynthError(f"{job.board}: no bitstream {bitstream} was written")
    write_text_atomically(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def _engine_clock(fmax, net):
    """nextpnr's entry for the engine's clock.

    A PLL build names its clock net; otherwise the engine's clock is the
    slowest constrained one: the board clock, or with clock_div > 1 the
    divided clock (the divider itself runs at the board clock).
    """
    if net is not None:
        matches = [entry for name, entry in fmax.items() if net in name]
        if len(matches) != 1:
            raise SynthError(f"nextpnr reported no single clock named like {net!r} (clocks: {', '.join(fmax)})")
        return matches[0]
    return min(fmax.values(), key=lambda entry: (entry["constraint"], entry["achieved"]))


def synthesize(
    board,
    *,
    pe=None,
    rows=None,
    cols=None,
    out=None,
    depth=256,
    seed=1,
    clock_div=None,
    clock_mhz=None,
    pack_only=False,
    progress=None,
    lean=False,
):
    """Build the GEMM engine for ``board`` here; return the report dict (also written to ``report.json``).

    Parameters
    ----------
    board : str
        A key of :data:`boards.platforms.BOARDS`.
    pe : str, optional
        Array kind (default: the board's).
    rows, cols : int, optional
        Array size, both or neither (default: the largest of ``pe`` that
        fits the board, :meth:`boards.platforms.Board.default_size`).
    out : path, optional
        Build directory (default ``build/boards/<board>``).
    depth : int
        Operand buffer depth.
    seed : int
        nextpnr placer seed.
    clock_div : int, optional
        Divider of the board clock for the engine (default: the board's for
        ``pe``, :meth:`boards.platforms.Board.clock_div`).
    clock_mhz : float, optional
        Run the engine from the device PLL at the nearest frequency it makes
        to this (:mod:`boards.pll`); excludes ``clock_div`` > 1.
    pack_only : bool
        Stop nextpnr after packing (``--pack-only``): a fit check that costs
        synthesis and packing only. The result has the netlist resources and
        the packed utilisation, no Fmax and no bitstream, and no
        ``report.json`` is written. Packing is necessary for a fit, not
        sufficient: placement and routing can still fail near 100%.
    lean : bool
        The engine's lean FPGA array (:mod:`hw.fpga_array`; int4 and log).
    progress : callable, optional
        Called with one line saying what is being built and where the tools'
        output goes (large ECP5 builds run for tens of minutes).

    Raises
    ------
    ValueError
        Unknown board or array kind, bad sizes, only one of ``rows`` and
        ``cols``, a clock the PLL cannot make.
    DoesNotFit
        nextpnr ran out of a resource.
    SynthError
        Another tool failure.
    """
    job = prepare(
        board,
        pe=pe,
        rows=rows,
        cols=cols,
        depth=depth,
        seed=seed,
        clock_div=clock_div,
        clock_mhz=clock_mhz,
        pack_only=pack_only,
        lean=lean,
    )
    out = pathlib.Path(out if out is not None else REPO_ROOT / "build" / "boards" / board).resolve()
    if progress is not None:
        a = job.array
        progress(
            f"{board}: {'packing' if pack_only else 'building'} the {a['pe']} {a['rows']}x{a['cols']} "
            f"{'lean ' if lean else ''}engine "
            f"({_clock_text(job.clock)}); tool logs in {out / (NAME + '.rpt')} (Yosys) and "
            f"{out / (NAME + '.tim')} (nextpnr), their warnings and errors in build.log"
        )
    outcome = execute(job, out)
    return finish(job, outcome, out, written=True)


def _clock_text(clock):
    if "pll" in clock:
        return f"{clock['pll']['achieved_mhz']:g} MHz from the PLL"
    return f"{clock['board_clock_mhz'] / clock['clock_div']:g} MHz"


def top_acc_width(pe, lean=False, depth=256):
    """Result width of the engine of ``pe`` (a lean engine's: sized for K = ``depth``, one RUN)."""
    return KINDS[pe].lean_acc_width(depth) if lean else KINDS[pe].default_acc_width


def _optional_positive(text):
    return None if text == "" else positive_int(text)


def _optional_frequency(text):
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive frequency in MHz, not {text!r}")
    return value


def main(argv=None, prog=None):
    """Entry point of ``python -m boards.synth``; returns the exit status (0, 1, 2 or 3)."""
    parser = OneLineParser(
        prog=prog or "python -m boards.synth",
        description="Build the UART GEMM engine for a board: bitstream + report.json.",
    )
    parser.add_argument("--board", required=True, help=f"one of: {', '.join(BOARDS)}")
    parser.add_argument("--pe", default="", help=f"array kind ({', '.join(KINDS)}; default: the board's)")
    parser.add_argument(
        "--rows",
        type=_optional_positive,
        default=None,
        help="array rows (default: the largest of the kind that fits the board)",
    )
    parser.add_argument("--cols", type=_optional_positive, default=None, help="array columns")
    parser.add_argument("--depth", type=positive_int, default=256, help="operand buffer depth (default 256)")
    parser.add_argument(
        "--clock-div",
        type=_optional_positive,
        default=None,
        help="run the engine at the board clock divided by N (default: the kind's divider on that board, "
        "FPGAFit.clock_div in its hw.kinds module; 1 for the 4-bit integer kinds)",
    )
    parser.add_argument(
        "--clock-mhz",
        type=_optional_frequency,
        default=None,
        help="run the engine from the device PLL at the nearest frequency it makes to this (MHz)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=1, help="nextpnr placer seed (default 1)")
    parser.add_argument(
        "--lean", type=bit_flag, default=False, help="1: the lean FPGA array (hw.fpga_array; int4, log); default 0"
    )
    parser.add_argument("--out", default=None, help="build directory (default build/boards/<board>)")
    args = parser.parse_args(argv)
    prog = parser.prog
    try:
        report = synthesize(
            args.board,
            pe=args.pe or None,
            rows=args.rows,
            cols=args.cols,
            out=args.out,
            depth=args.depth,
            clock_div=args.clock_div,
            clock_mhz=args.clock_mhz,
            seed=args.seed,
            lean=bool(args.lean),
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except (ValueError, TypeError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except DoesNotFit as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 3
    except SynthError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    array = report["array"]
    if not report["timing_met"]:
        print(
            f"{prog}: warning: Fmax {report['fmax_mhz']} MHz is below the {report['clock_mhz']} MHz engine "
            "clock: the bitstream may not work (a larger --clock-div or a lower --clock-mhz lowers the clock)",
            file=sys.stderr,
        )
    print(
        f"{args.board} ({report['device']}): {array['pe']} {array['rows']}x{array['cols']} array, "
        f"{report['luts']} LUTs, {report['ffs']} FFs, {report['dsps']} DSPs, {report['brams']} BRAMs, "
        f"Fmax {report['fmax_mhz']} MHz (clock {report['clock_mhz']} MHz); bitstream {report['bitstream']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "boards.synth"))
