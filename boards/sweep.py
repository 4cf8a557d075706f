"""``python -m boards.sweep``: resources and Fmax of the UART GEMM engine over PE kinds and array sizes.

Example::

    python -m boards.sweep [--boards icebreaker ulx3s] [--pes int4 log fp16 train] [--sizes 1 2 4 8] \\
        [--seeds N] [--clock-mhz ulx3s=90] [--workers N | --scheduler tcp://HOST:PORT] [--out build/boards/sweep]

For each board and PE kind, builds square R x R engines (:mod:`boards.synth`)
in ascending size until one does not fit; then bisects the gap between the
last size that fits and the first that does not with pack-only fit checks
(synthesis and nextpnr packing, minutes even for the largest arrays), and
places and routes the largest size that packs, stepping down while placement
or routing fails: the sweep ends at the largest square array that fits
(``--no-refine`` builds only the given sizes). Each build's ``report.json``
(or its does-not-fit utilisation) is appended to ``results.jsonl``; a rerun
skips what is already there, so the sweep can be stopped and resumed. From
the results it writes ``sweep.md`` (table + headline) and ``sweep.png``
(LUTs and Fmax versus MACs), atomically.

The builds are ``dask.distributed`` tasks (:mod:`boards.cluster`): on a
local cluster of one worker process per CPU (``--workers N``) or on an
existing scheduler (``--scheduler tcp://HOST:PORT`` or
``DASK_SCHEDULER_ADDRESS``). Each (board, kind) is a chain of rounds (the
ladder, then the bisection), the chains run side by side, and a round's
place and route runs with ``--seeds N`` nextpnr seeds as N parallel tasks:
every seed is a line of ``results.jsonl``, the table shows the best Fmax.
``--clock-mhz BOARD=MHZ`` clocks a board's engines from its PLL.

Headline per board and kind: the largest placed-and-routed array and its
peak throughput, ``MACs x Fmax`` (GMAC/s), Fmax being nextpnr's achieved
clock.
"""

import argparse
import contextlib
import json
import pathlib
import sys
from uuid import uuid4

from fourbit.util.cli import OneLineParser, positive_int, run_main
from fourbit.util.files import write_atomically, write_text_atomically
from hw.kinds import KINDS

from .cluster import ClusterError, add_cluster_options, check_scheduler, connect
from .platforms import BOARDS, unknown_board_message
from .pll import plan_pll
from .synth import DoesNotFit, SynthError, SynthInterrupted, execute, finish, prepare

__all__ = [
    "DEFAULT_SIZES",
    "SweepFailed",
    "run_sweep",
    "load_results",
    "best_of_seeds",
    "collapse_seeds",
    "table",
    "plot",
    "main",
]


REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
#: Square sizes built per board (ascending; a kind stops at its first misfit,
#: then bisection finds the largest that fits). 24x24 of every kind is beyond
#: the LFE5U-85F; larger arrays only make Yosys slower.
DEFAULT_SIZES = {"icebreaker": (1, 2, 4, 8), "ulx3s": (1, 2, 4, 8, 16, 24)}


def _pll_mhz(entry):
    """The PLL clock requested for a build (MHz), None for the board clock or its divider."""
    pll = entry.get("pll")
    return None if pll is None else pll["requested_mhz"]


def _key(entry):
    """(board, pe, rows, cols, stage, PLL clock, seed): one line of results.jsonl."""
    stage, seed = entry.get("stage", "pnr"), entry.get("seed", 1)
    return entry["board"], entry["pe"], entry["rows"], entry["cols"], stage, _pll_mhz(entry), seed


def _point(entry):
    """The build an entry belongs to, whatever its seed."""
    return _key(entry)[:-1]


def load_results(path):
    """Entries of ``results.jsonl`` (later lines win for the same build, stage and seed)."""
    path = pathlib.Path(path)
    results = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                results[_key(entry)] = entry
    return list(results.values())


def best_of_seeds(entries):
    """The entry that stands for one build over its seeds: the highest Fmax that fits, with ``seeds``.

    Ties go to the lowest seed; when no seed fits, the lowest seed's misfit.
    ``seeds`` (how many seeds were built) and ``seed_fmax_mhz`` (``{seed:
    Fmax}`` of those that routed) are added when there is more than one.
    """
    entries = sorted(entries, key=lambda e: e.get("seed", 1))
    routed = [e for e in entries if e["fits"] and "fmax_mhz" in e]
    best = max(routed, key=lambda e: e["fmax_mhz"]) if routed else next((e for e in entries if e["fits"]), entries[0])
    if len(entries) == 1:
        return best
    return dict(best, seeds=len(entries), seed_fmax_mhz={str(e.get("seed", 1)): e["fmax_mhz"] for e in routed})


def collapse_seeds(results):
    """One entry per build (:func:`best_of_seeds`), in first-seen order."""
    groups = {}
    for entry in results:
        groups.setdefault(_point(entry), []).append(entry)
    return [best_of_seeds(entries) for entries in groups.values()]


class SweepFailed(RuntimeError):
    """A task failed on its worker for a reason that says nothing about the design (nothing was recorded)."""


class _Points:
    """The sweep's builds: cached in ``results.jsonl``, submitted to the cluster when missing."""

    def __init__(self, out, log, seeds, clocks):
        self.out, self.log, self.seeds = pathlib.Path(out), log, seeds
        self.clocks = {board: round(mhz, 4) for board, mhz in clocks.items()}
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = self.out / "results.jsonl"
        self.done = {_key(entry): entry for entry in load_results(self.path)}

    def seeds_of(self, stage):
        # Packing does not depend on the placer seed.
        return range(1, self.seeds + 1) if stage == "pnr" else (1,)

    def _key(self, board, pe, size, stage, seed):
        return board, pe, size, size, stage, self.clocks.get(board), seed

    def missing(self, board, pe, size, stage):
        return [seed for seed in self.seeds_of(stage) if self._key(board, pe, size, stage, seed) not in self.done]

    def entry(self, board, pe, size, stage):
        return best_of_seeds([self.done[self._key(board, pe, size, stage, seed)] for seed in self.seeds_of(stage)])

    def build_dir(self, board, pe, size, stage, seed):
        clock = self.clocks.get(board)
        name = f"{pe}_{size}x{size}" + ("_pack" if stage == "pack" else "")
        name += (f"_pll{clock:g}" if clock is not None else "") + (f"_seed{seed}" if seed != 1 else "")
        return self.out / board / name

    def record(self, entry):
        """Append one seed's result (one line, written whole) and log it."""
        with open(self.path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
        self.done[_key(entry)] = entry
        if not entry["fits"]:
            outcome = entry["error"].splitlines()[0]
        elif entry["stage"] == "pack":
            outcome = f"packs: {entry['luts']} LUTs, {entry['ffs']} FFs, {entry['dsps']} DSPs"
        else:
            outcome = f"{entry['luts']} LUTs, {entry['ffs']} FFs, {entry['dsps']} DSPs, Fmax {entry['fmax_mhz']} MHz"
        seed = f" seed {entry['seed']}" if self.seeds > 1 and entry["stage"] == "pnr" else ""
        size = f"{entry['rows']}x{entry['cols']}"
        self.log(
            f"{entry['board']} {entry['pe']} {size}{seed}{' (pack only)' if entry['stage'] == 'pack' else ''}: "
            f"{outcome} ({entry.get('seconds', 0):g} s)"
        )


def _entry(job, outcome, build_dir):
    """The results.jsonl line of one finished task (its files written under ``build_dir``)."""
    a = job.array
    stage = "pack" if job.pack_only else "pnr"
    entry = {"board": job.board, "pe": a["pe"], "rows": a["rows"], "cols": a["cols"], "macs": a["macs"]}
    entry.update(stage=stage, seed=job.seed)
    if "pll" in job.clock:
        entry["pll"] = job.clock["pll"]
    try:
        report = finish(job, outcome, build_dir)
    except DoesNotFit as error:
        entry.update(
            fits=False,
            error=str(error),
            utilization={bel: {"used": u, "available": a} for bel, (u, a) in error.utilization.items()},
        )
    except SynthInterrupted:
        raise
    except SynthError as error:
        entry.update(fits=False, error=str(error), utilization={})
    else:
        fields = ("device", "luts", "ffs", "dsps", "brams", "utilization")
        if stage == "pnr":
            fields += ("fmax_mhz", "clock_mhz", "board_clock_mhz", "clock_div", "timing_met")
        entry.update(fits=True, **{field: report[field] for field in fields})
    entry["seconds"] = outcome["seconds"]
    return entry


def _chain(ladder, refine):
    """One (board, pe)'s rounds: yields ``(size, stage)``, is sent that build's entry (best of its seeds).

    Full builds of the ``ladder`` in ascending order up to the first that does
    not fit; with ``refine``, bisection of the gap by pack-only checks, then
    place and route of the largest size that packs, stepping down while
    placement or routing fails.
    """
    last_fit = first_misfit = None
    for size in ladder:
        if (yield size, "pnr")["fits"]:
            last_fit = size
        else:
            first_misfit = size
            break
    if not (refine and last_fit and first_misfit and first_misfit - last_fit > 1):
        return
    low, high = last_fit, first_misfit
    while high - low > 1:
        middle = (low + high) // 2
        if (yield middle, "pack")["fits"]:
            low = middle
        else:
            high = middle
    while low > last_fit and not (yield low, "pnr")["fits"]:
        low -= 1


def run_sweep(boards, pes, sizes, out, *, client, refine=True, seeds=1, clock_mhz=None, build=execute, log=print):
    """Build every (board, pe, size, seed) not yet in ``out/results.jsonl`` on ``client``; return all results.

    Each (board, pe) is a chain of rounds (:func:`_chain`); the chains run
    side by side, and each round's builds (one per nextpnr seed, ``seeds``
    of them for a place and route) are tasks on the dask ``client``: the job
    (:func:`boards.synth.prepare`, elaborated here) goes to a worker, which
    runs ``build`` on it (:func:`boards.synth.execute`); its outcome comes
    back and is written under ``out/<board>/`` here. ``client`` is a
    :class:`distributed.Client` or a callable that returns one, called only
    once a build is missing (a sweep whose results are all in starts no
    cluster). A task's result is
    appended to ``results.jsonl`` as soon as it is in; one that fails or is
    interrupted is not, so a rerun builds it again. ``clock_mhz``
    (``{board: MHz}``) clocks that board's engines from its PLL
    (:func:`boards.synth.prepare`); those builds are results of their own.

    Raises
    ------
    SynthInterrupted
        A tool was killed on its worker.
    SweepFailed
        A task failed on its worker (a worker lost, a missing tool).
    """
    from distributed import as_completed

    clocks = dict(clock_mhz or {})
    points = _Points(out, log, seeds, clocks)
    chains = []
    for board in boards:
        ladder = sizes.get(board, DEFAULT_SIZES[board]) if isinstance(sizes, dict) else sizes
        chains += [_chain(ladder, refine) for _ in pes]
    labels = [(board, pe) for board in boards for pe in pes]
    cluster = {}
    tasks, remaining = {}, {}

    def submit(job):
        if not cluster:
            cluster["client"] = client() if callable(client) else client
            cluster["pending"] = as_completed(loop=cluster["client"].loop)
        key = f"build-{job.label().replace(' ', '-')}-{uuid4()}"
        future = cluster["client"].submit(build, job, pure=False, key=key)
        cluster["pending"].add(future)
        return future

    def advance(index, value):
        """Run chain ``index`` on from ``value`` until a round needs builds (submitted) or the chain ends."""
        board, pe = labels[index]
        chain = chains[index]
        while True:
            try:
                size, stage = chain.send(value)
            except StopIteration:
                return
            missing = points.missing(board, pe, size, stage)
            if not missing:
                value = points.entry(board, pe, size, stage)
                continue
            remaining[index] = (board, pe, size, stage, len(missing))
            # One elaboration per round: the seeds differ only in the build script.
            first = prepare(
                board,
                pe=pe,
                rows=size,
                cols=size,
                seed=missing[0],
                clock_mhz=clocks.get(board),
                pack_only=stage == "pack",
                keep_bitstream=False,
            )
            for seed in missing:
                job = first if seed == first.seed else first.with_seed(seed)
                tasks[submit(job)] = (index, job, points.build_dir(board, pe, size, stage, seed))
            return

    for index in range(len(chains)):
        advance(index, None)
    try:
        for future in cluster.get("pending", ()):
            index, job, build_dir = tasks.pop(future)
            try:
                outcome = future.result()
            except Exception as error:  # the worker's exception, or one of distributed's
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise SweepFailed(f"{job.label()}: the task failed on its worker: {reason}") from None
            points.record(_entry(job, outcome, build_dir))
            board, pe, size, stage, left = remaining[index]
            remaining[index] = (board, pe, size, stage, left - 1)
            if left == 1:
                advance(index, points.entry(board, pe, size, stage))
    finally:
        for future in tasks:
            future.cancel()
    return list(points.done.values())


def _device_luts(entry):
    for bel in ("ICESTORM_LC", "TRELLIS_COMB"):
        if bel in entry.get("utilization", {}):
            return entry["utilization"][bel]["available"]
    return None


def _routed(entry):
    return entry.get("stage", "pnr") == "pnr"


def headline(results):
    """Per (board, pe): the largest placed-and-routed build (most MACs, best seed) and its peak GMAC/s."""
    best = {}
    for entry in collapse_seeds(results):
        if entry["fits"] and _routed(entry):
            key = (entry["board"], entry["pe"])
            if key not in best or entry["macs"] > best[key]["macs"]:
                best[key] = entry
    return {key: dict(entry, gmacs=entry["macs"] * entry["fmax_mhz"] / 1000) for key, entry in best.items()}


def _clock_cell(entry):
    met = entry.get("timing_met", entry["fmax_mhz"] >= entry["clock_mhz"])
    divided = entry.get("clock_div", 1)
    source = f" = {entry['board_clock_mhz']:g}/{divided}" if divided > 1 else ""
    if "pll" in entry:
        source = " PLL"
    return f"{'yes' if met else 'no'} ({entry['clock_mhz']:g} MHz{source})"


def _misfit_cell(entry):
    over = ", ".join(
        f"{bel} {v['used']}/{v['available']}"
        for bel, v in entry["utilization"].items()
        if v["available"] and v["used"] > v["available"]
    )
    if _routed(entry):
        if over:
            return f"no: {over}"
        # nextpnr's own message (e.g. a routing failure), else the tool's.
        reason = next((line.strip() for line in entry.get("error", "").splitlines() if "ERROR" in line), "build failed")
        return f"no: {reason}"
    return f"no (packing): {over}" if over else "no (packing failed)"


def table(results):
    """Markdown: every build, then the headline.

    A pack-only fit check is listed only for sizes that were not also placed
    and routed; it has resources but no Fmax. A build placed and routed with
    several nextpnr seeds shows its best seed (Fmax "best of N"), and every
    seed's Fmax is listed after the headline.
    """
    results = collapse_seeds(results)
    routed = {_key(entry)[:4] for entry in results if _routed(entry)}
    shown = [entry for entry in results if _routed(entry) or _key(entry)[:4] not in routed]
    lines = [
        "| board | PE | array | MACs | LUTs | FFs | DSPs | BRAMs | Fmax (MHz) | engine clock met | "
        "peak GMAC/s | fits |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    order = {name: i for i, name in enumerate(BOARDS)}
    kinds = {name: i for i, name in enumerate(KINDS)}
    for entry in sorted(shown, key=lambda e: (order.get(e["board"], 99), kinds.get(e["pe"], 99), e["macs"])):
        cells = [entry["board"], entry["pe"], f"{entry['rows']}x{entry['cols']}", str(entry["macs"])]
        if not entry["fits"]:
            cells += [""] * 7 + [_misfit_cell(entry)]
        elif not _routed(entry):
            cells += [str(entry[field]) for field in ("luts", "ffs", "dsps", "brams")]
            cells += ["", "", "", "packs (not placed and routed)"]
        else:
            cells += [str(entry[field]) for field in ("luts", "ffs", "dsps", "brams")]
            best_of = f" (best of {entry['seeds']} seeds)" if entry.get("seeds", 1) > 1 else ""
            cells += [
                f"{entry['fmax_mhz']:.1f}{best_of}",
                _clock_cell(entry),
                f"{entry['macs'] * entry['fmax_mhz'] / 1000:.3f}",
                "yes",
            ]
        lines.append("|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|")
    lines += [
        "",
        "Largest array that fits (placed and routed) and its peak throughput (MACs x Fmax):",
        "",
        "| board | PE | largest array | MACs | LUTs used | Fmax (MHz) | peak GMAC/s | bound |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for (board, pe), entry in sorted(
        headline(results).items(), key=lambda item: (order.get(item[0][0], 99), kinds.get(item[0][1], 99))
    ):
        total = _device_luts(entry)
        misfits = sorted(
            (e["macs"], f"{e['rows']}x{e['cols']}", _routed(e))
            for e in results
            if (e["board"], e["pe"]) == (board, pe) and not e["fits"] and e["macs"] > entry["macs"]
        )
        if misfits:
            _, size, routed_misfit = misfits[0]
            bound = f"{size} does not fit" + ("" if routed_misfit else " (packing)")
        else:
            bound = "larger sizes not tried"
        lines.append(
            f"| {board} | {pe} | {entry['rows']}x{entry['cols']} | {entry['macs']} | {entry['luts']}"
            f"{f' of {total}' if total else ''} | {entry['fmax_mhz']:.1f} | {entry['gmacs']:.3f} | {bound} |"
        )
    seeded = [entry for entry in results if entry.get("seeds", 1) > 1]
    if seeded:
        lines += ["", "nextpnr seeds: Fmax (MHz) of every seed that placed and routed:", ""]
        lines += ["| board | PE | array | seeds | Fmax per seed | best |", "|---|---|---|---:|---|---:|"]
        for entry in sorted(seeded, key=lambda e: (order.get(e["board"], 99), kinds.get(e["pe"], 99), e["macs"])):
            per_seed = ", ".join(f"{seed}: {fmax:.1f}" for seed, fmax in entry["seed_fmax_mhz"].items())
            best = f"{entry['fmax_mhz']:.1f} (seed {entry['seed']})" if entry["fits"] else "none fits"
            lines.append(
                f"| {entry['board']} | {entry['pe']} | {entry['rows']}x{entry['cols']} | {entry['seeds']} | "
                f"{per_seed or '-'} | {best} |"
            )
    return "\n".join(lines) + "\n"


def plot(results, path):
    """LUTs and Fmax versus MACs, one line per (board, pe)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_luts, ax_fmax) = plt.subplots(1, 2, figsize=(11, 4.2))
    series = {}
    for entry in collapse_seeds(results):
        if entry["fits"] and _routed(entry):
            series.setdefault((entry["board"], entry["pe"]), []).append(entry)
    for (board, pe), entries in sorted(series.items()):
        entries.sort(key=lambda e: e["macs"])
        macs = [e["macs"] for e in entries]
        style = "-o" if board == "icebreaker" else "--s"
        ax_luts.plot(macs, [e["luts"] for e in entries], style, label=f"{board} {pe}")
        ax_fmax.plot(macs, [e["fmax_mhz"] for e in entries], style, label=f"{board} {pe}")
    for ax, label in ((ax_luts, "LUT4s"), (ax_fmax, "Fmax (MHz)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("MACs in the array (R x C)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    ax_luts.set_yscale("log")
    ax_luts.legend(fontsize=7)
    ax_luts.set_title("UART GEMM engine: LUTs")
    ax_fmax.set_title("Fmax (nextpnr, achieved)")
    fig.tight_layout()
    try:
        write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)


def _board_clock(text):
    board, sep, mhz = text.partition("=")
    try:
        value = float(mhz)
    except ValueError:
        value = float("nan")
    if not sep or not board or not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected BOARD=MHZ (e.g. ulx3s=90), not {text!r}")
    return board, value


def main(argv=None, prog=None):
    """Entry point of ``python -m boards.sweep``; returns the exit status (0, 1 no results, 2 bad input)."""
    parser = OneLineParser(
        prog=prog or "python -m boards.sweep", description="FPGA resource / Fmax sweep of the UART GEMM engine."
    )
    parser.add_argument("--boards", nargs="+", default=list(BOARDS))
    # By default the kinds placed on the boards (a non-empty FPGAFit.largest); others only when named.
    parser.add_argument("--pes", nargs="+", default=[name for name, kind in KINDS.items() if kind.fpga.largest])
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=positive_int,
        default=None,
        help="square sizes to try (default: per board, see DEFAULT_SIZES)",
    )
    parser.add_argument("--out", default=str(REPO_ROOT / "build" / "boards" / "sweep"))
    parser.add_argument("--report-only", action="store_true", help="rewrite sweep.md/png from results.jsonl")
    parser.add_argument(
        "--no-refine",
        action="store_true",
        help="only the given sizes: no bisection towards the largest array that fits",
    )
    parser.add_argument(
        "--seeds",
        type=positive_int,
        default=1,
        metavar="N",
        help="place and route each size with nextpnr seeds 1..N (parallel tasks), keep the best Fmax (default 1)",
    )
    parser.add_argument(
        "--clock-mhz",
        nargs="+",
        type=_board_clock,
        default=[],
        metavar="BOARD=MHZ",
        help="clock that board's engines from its PLL at this frequency (e.g. icebreaker=30 ulx3s=90)",
    )
    add_cluster_options(parser)
    args = parser.parse_args(argv)
    prog = parser.prog
    for board in args.boards:
        if board not in BOARDS:
            print(f"{prog}: error: {unknown_board_message(board)}", file=sys.stderr)
            return 2
    for pe in args.pes:
        if pe not in KINDS:
            print(f"{prog}: error: unknown PE kind {pe!r} (known: {', '.join(KINDS)})", file=sys.stderr)
            return 2
    clocks = dict(args.clock_mhz)
    for board, mhz in clocks.items():
        if board not in BOARDS:
            print(f"{prog}: error: --clock-mhz: {unknown_board_message(board)}", file=sys.stderr)
            return 2
        try:
            plan_pll(BOARDS[board].family, BOARDS[board].platform().default_clk_frequency, mhz * 1e6)
        except ValueError as error:
            print(f"{prog}: error: --clock-mhz {board}={mhz:g}: {error}", file=sys.stderr)
            return 2
    out = pathlib.Path(args.out)
    if args.report_only:
        results = load_results(out / "results.jsonl")
    else:
        sizes = sorted(set(args.sizes)) if args.sizes else DEFAULT_SIZES
        try:
            with contextlib.ExitStack() as stack:
                check_scheduler(args.scheduler, workers=args.workers)
                results = run_sweep(
                    args.boards,
                    args.pes,
                    sizes,
                    out,
                    client=lambda: stack.enter_context(connect(args.scheduler, workers=args.workers)),
                    refine=not args.no_refine,
                    seeds=args.seeds,
                    clock_mhz=clocks,
                    log=lambda line: print(line, flush=True),
                )
        except ClusterError as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            return 2
        except (SynthInterrupted, SweepFailed) as error:
            print(f"{prog}: error: {error} (not recorded; a rerun resumes)", file=sys.stderr)
            return 1
    if not results:
        print(f"{prog}: error: no results in {out / 'results.jsonl'}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out / "sweep.md", table(results))
    plot(results, out / "sweep.png")
    print(table(results))
    print(f"wrote {out / 'sweep.md'} and {out / 'sweep.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "boards.sweep"))
