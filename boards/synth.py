"""``python -m boards.synth``: bitstream and resource/Fmax report of the UART GEMM engine on a board.

Example::

    python -m boards.synth --board icebreaker [--pe int4] [--rows 4] [--cols 4] [--out build/boards/icebreaker]

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
``fp16`` by default), ``timing_met`` (every clock meets its constraint),
``array`` (``pe``, ``rows``, ``cols``, ...), ``utilization`` (nextpnr's
per-BEL used / available), ``bitstream``, ``seconds``.

Exit status: 0 built; 2 bad input (an unknown board lists the supported
ones); 3 the design does not fit (the message carries the utilisation
nextpnr reported); 1 any other tool failure.
"""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

from fourbit.util.cli import OneLineParser, positive_int, run_main
from fourbit.util.files import write_text_atomically
from hw.kinds import KINDS

from .platforms import BOARDS, BoardTop, unknown_board_message, yowasp_env

__all__ = ["SynthError", "SynthInterrupted", "DoesNotFit", "synthesize", "netlist_resources", "main"]


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


def _run_build(out, script, env, poll_seconds=2.0):
    """Run Amaranth's build script in ``out``; ``(exit status, overfull)``.

    The tools run quietly: their logs are top.rpt (Yosys) and top.tim
    (nextpnr); their console output (warnings, errors, and with --pack-only
    one warning per unplaced cell) goes to ``build.log``, empty after a clean build.
    nextpnr-ecp5 does not give up on a design larger than the device: its
    placer retries for hours. So nextpnr's log is watched, and once packing
    reports a resource over capacity the build is stopped and ``overfull``
    holds that utilisation (exit status None).
    """
    log_path = out / f"{NAME}.tim"
    with open(out / "build.log", "w") as console:
        process = subprocess.Popen(
            ["sh", f"{script}.sh"], cwd=out, env=env, stdout=console, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            while True:
                try:
                    return process.wait(timeout=poll_seconds), {}
                except subprocess.TimeoutExpired:
                    over = _overfull(log_path)
                    if over:
                        os.killpg(process.pid, signal.SIGTERM)
                        process.wait()
                        return None, over
        except BaseException:
            # Ctrl-C or an error here: leave no tool running.
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait()
            raise


def synthesize(
    board, *, pe=None, rows=None, cols=None, out=None, depth=256, seed=1, clock_div=None, pack_only=False, progress=None
):
    """Build the GEMM engine for ``board``; return the report dict (also written to ``report.json``).

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
    pack_only : bool
        Stop nextpnr after packing (``--pack-only``): a fit check that costs
        synthesis and packing only. The result has the netlist resources and
        the packed utilisation, no Fmax and no bitstream, and no
        ``report.json`` is written. Packing is necessary for a fit, not
        sufficient: placement and routing can still fail near 100%.
    progress : callable, optional
        Called with one line saying what is being built and where the tools'
        output goes (large ECP5 builds run for tens of minutes).

    Raises
    ------
    ValueError
        Unknown board or array kind, bad sizes, only one of ``rows`` and ``cols``.
    DoesNotFit
        nextpnr ran out of a resource.
    SynthError
        Another tool failure.
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
    if rows is None:
        rows, cols = spec.default_size(pe)
    clock_div = spec.clock_div(pe) if clock_div is None else clock_div
    top = BoardTop(kind=pe, rows=rows, cols=cols, depth=depth, clock_div=clock_div)
    out = pathlib.Path(out if out is not None else REPO_ROOT / "build" / "boards" / board).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("report.json", f"{NAME}.tim", f"{NAME}.bin", f"{NAME}.bit", "nextpnr.json", "build.log"):
        (out / stale).unlink(missing_ok=True)
    platform = spec.platform()
    if progress is not None:
        clock_mhz = platform.default_clk_frequency / 1e6 / clock_div
        progress(
            f"{board}: {'packing' if pack_only else 'building'} the {pe} {rows}x{cols} engine "
            f"({clock_mhz:g} MHz); tool logs in {out / (NAME + '.rpt')} (Yosys) and {out / (NAME + '.tim')} "
            "(nextpnr), their warnings and errors in build.log"
        )
    started = time.perf_counter()
    env = yowasp_env()
    if pack_only:
        nextpnr_opts = "--pack-only --timing-allow-fail"
        # Nothing to pack into a bitstream: the build script's last step does nothing.
        env.update(ICEPACK=shutil.which("true"), ECPPACK=shutil.which("true"))
    else:
        nextpnr_opts = f"--report nextpnr.json --seed {seed} --timing-allow-fail"
    plan = platform.prepare(top, name=NAME, synth_opts=spec.synth_opts(pe), nextpnr_opts=nextpnr_opts)
    plan.extract(str(out))
    status, overfull = _run_build(out, plan.script, env)
    log = out / f"{NAME}.tim"
    if overfull:
        raise _does_not_fit(pe, rows, cols, board, spec, overfull, _log_utilization(log.read_text()), log)
    if pack_only and status != 0 and log.exists() and _log_utilization(log.read_text()):
        # Packing finished and fits; nextpnr-ecp5 then fails to write the
        # configuration of an unplaced design, which says nothing.
        status = 0
    if status < 0 or status >= 128:
        raise SynthInterrupted(f"{board}: a tool was killed (exit status {status}); see {out / 'build.log'}")
    if status != 0:
        text = log.read_text() if log.exists() else ""
        utilization = _log_utilization(text)
        over = {bel: ua for bel, ua in utilization.items() if ua[0] > ua[1]}
        if over or re.search(r"Unable to place cell|no BELs remaining|failed to place|exceeded", text, re.I):
            raise _does_not_fit(pe, rows, cols, board, spec, over or utilization, utilization, log)
        where = log if text else out / "build.log"
        tail = "\n".join(text.splitlines()[-5:]) if text else ""
        raise SynthError(f"{board}: the build failed; see {where}\n{tail}".rstrip())
    netlist = json.loads((out / f"{NAME}.json").read_text())
    resources = netlist_resources(netlist, spec.family)
    array = {"pe": pe, "rows": rows, "cols": cols, "macs": rows * cols, "acc_width": top_acc_width(pe), "depth": depth}
    if pack_only:
        utilization = _log_utilization(log.read_text())
        over = {bel: ua for bel, ua in utilization.items() if ua[0] > ua[1]}
        if over:
            raise _does_not_fit(pe, rows, cols, board, spec, over, utilization, log)
        return {
            "board": board,
            "device": spec.device,
            **resources,
            "array": array,
            "stage": "pack",
            "utilization": {bel: {"used": u, "available": a} for bel, (u, a) in utilization.items()},
            "seconds": round(time.perf_counter() - started, 1),
        }
    pnr = json.loads((out / "nextpnr.json").read_text())
    fmax = pnr.get("fmax", {})
    if not fmax:
        raise SynthError(f"{board}: nextpnr reported no clock Fmax; see {out / (NAME + '.tim')}")
    # The engine's clock is the slowest constrained one: the board clock, or
    # with clock_div > 1 the divided clock (the divider itself runs at the
    # board clock). Every clock must meet its constraint.
    clock = min(fmax.values(), key=lambda entry: (entry["constraint"], entry["achieved"]))
    timing_met = all(float(entry["achieved"]) >= float(entry["constraint"]) for entry in fmax.values())
    bitstream = out / (f"{NAME}.bin" if spec.family == "ice40" else f"{NAME}.bit")
    report = {
        "board": board,
        "device": spec.device,
        **resources,
        "fmax_mhz": round(float(clock["achieved"]), 2),
        "clock_mhz": round(float(clock["constraint"]), 2),
        "board_clock_mhz": round(platform.default_clk_frequency / 1e6, 2),
        "clock_div": clock_div,
        "timing_met": timing_met,
        "array": array,
        "stage": "pnr",
        "utilization": {
            bel: {"used": v["used"], "available": v["available"]} for bel, v in pnr.get("utilization", {}).items()
        },
        "bitstream": str(bitstream.relative_to(REPO_ROOT)) if bitstream.is_relative_to(REPO_ROOT) else str(bitstream),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if not bitstream.exists():
        raise SynthError(f"{board}: no bitstream {bitstream} was written")
    write_text_atomically(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def top_acc_width(pe):
    return KINDS[pe].default_acc_width


def _optional_positive(text):
    return None if text == "" else positive_int(text)


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
        help="run the engine at the board clock divided by N (default: 2 for fp16, else 1)",
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
            "clock: the bitstream may not work (a larger --clock-div lowers the clock)",
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
