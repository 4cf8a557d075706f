"""``python -m boards.sweep``: resources and Fmax of the UART GEMM engine over PE kinds and array sizes.

Example::

    python -m boards.sweep [--boards icebreaker ulx3s] [--pes int4 log fp16 train] [--sizes 1 2 4 8] \\
        [--out build/boards/sweep]

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

Headline per board and kind: the largest placed-and-routed array and its
peak throughput, ``MACs x Fmax`` (GMAC/s), Fmax being nextpnr's achieved
clock.
"""

import json
import pathlib
import sys

from fourbit.util.cli import OneLineParser, positive_int, run_main
from fourbit.util.files import write_atomically, write_text_atomically
from hw.kinds import KINDS

from .platforms import BOARDS, unknown_board_message
from .synth import DoesNotFit, SynthError, SynthInterrupted, synthesize

__all__ = ["DEFAULT_SIZES", "run_sweep", "load_results", "table", "plot", "main"]


REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
#: Square sizes built per board (ascending; a kind stops at its first misfit,
#: then bisection finds the largest that fits). 24x24 of every kind is beyond
#: the LFE5U-85F; larger arrays only make Yosys slower.
DEFAULT_SIZES = {"icebreaker": (1, 2, 4, 8), "ulx3s": (1, 2, 4, 8, 16, 24)}


def _key(entry):
    return entry["board"], entry["pe"], entry["rows"], entry["cols"], entry.get("stage", "pnr")


def load_results(path):
    """Entries of ``results.jsonl`` (later lines win for the same build and stage)."""
    path = pathlib.Path(path)
    results = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                results[_key(entry)] = entry
    return list(results.values())


class _Points:
    """The sweep's builds: cached in ``results.jsonl``, built and appended when missing."""

    def __init__(self, out, log):
        self.out, self.log = pathlib.Path(out), log
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = self.out / "results.jsonl"
        self.done = {_key(entry): entry for entry in load_results(self.path)}

    def get(self, board, pe, size, stage):
        """The entry of a square ``size`` build of ``pe`` on ``board``; ``stage`` 'pnr' or 'pack'."""
        key = (board, pe, size, size, stage)
        if key in self.done:
            return self.done[key]
        build_dir = self.out / board / (f"{pe}_{size}x{size}" + ("_pack" if stage == "pack" else ""))
        entry = {"board": board, "pe": pe, "rows": size, "cols": size, "macs": size * size, "stage": stage}
        try:
            report = synthesize(board, pe=pe, rows=size, cols=size, out=build_dir, pack_only=stage == "pack")
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
            fields = ("device", "luts", "ffs", "dsps", "brams", "utilization", "seconds")
            if stage == "pnr":
                fields += ("fmax_mhz", "clock_mhz", "board_clock_mhz", "clock_div", "timing_met")
            entry.update(fits=True, **{field: report[field] for field in fields})
            # The bitstream of every sweep point is not worth keeping.
            for name in ("top.bin", "top.bit", "top.asc", "top.config", "top.svf"):
                (build_dir / name).unlink(missing_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
        self.done[key] = entry
        if not entry["fits"]:
            outcome = entry["error"].splitlines()[0]
        elif stage == "pack":
            outcome = f"packs: {entry['luts']} LUTs, {entry['ffs']} FFs, {entry['dsps']} DSPs"
        else:
            outcome = f"{entry['luts']} LUTs, {entry['ffs']} FFs, {entry['dsps']} DSPs, Fmax {entry['fmax_mhz']} MHz"
        self.log(f"{board} {pe} {size}x{size}{' (pack only)' if stage == 'pack' else ''}: {outcome}")
        return entry


def run_sweep(boards, pes, sizes, out, *, refine=True, log=print):
    """Build every (board, pe, size) not yet in ``out/results.jsonl``; return all results.

    Per board and kind: full builds (placed and routed) of the ``sizes`` in
    ascending order up to the first that does not fit. With ``refine``, the
    gap between the last size that fits and the first that does not is then
    bisected with pack-only fit checks, and the largest size that packs is
    placed and routed (stepping down while placement or routing fails), so
    that the sweep ends at the largest square array that fits.
    """
    points = _Points(out, log)
    for board in boards:
        ladder = sizes.get(board, DEFAULT_SIZES[board]) if isinstance(sizes, dict) else sizes
        for pe in pes:
            last_fit = first_misfit = None
            for size in ladder:
                if points.get(board, pe, size, "pnr")["fits"]:
                    last_fit = size
                else:
                    first_misfit = size
                    break
            if not (refine and last_fit and first_misfit and first_misfit - last_fit > 1):
                continue
            low, high = last_fit, first_misfit
            while high - low > 1:
                middle = (low + high) // 2
                if points.get(board, pe, middle, "pack")["fits"]:
                    low = middle
                else:
                    high = middle
            while low > last_fit and not points.get(board, pe, low, "pnr")["fits"]:
                low -= 1
    return list(points.done.values())


def _device_luts(entry):
    for bel in ("ICESTORM_LC", "TRELLIS_COMB"):
        if bel in entry.get("utilization", {}):
            return entry["utilization"][bel]["available"]
    return None


def _routed(entry):
    return entry.get("stage", "pnr") == "pnr"


def headline(results):
    """Per (board, pe): the largest placed-and-routed build (most MACs) and its peak GMAC/s."""
    best = {}
    for entry in results:
        if entry["fits"] and _routed(entry):
            key = (entry["board"], entry["pe"])
            if key not in best or entry["macs"] > best[key]["macs"]:
                best[key] = entry
    return {key: dict(entry, gmacs=entry["macs"] * entry["fmax_mhz"] / 1000) for key, entry in best.items()}


def _clock_cell(entry):
    met = entry.get("timing_met", entry["fmax_mhz"] >= entry["clock_mhz"])
    divided = entry.get("clock_div", 1)
    source = f" = {entry['board_clock_mhz']:g}/{divided}" if divided > 1 else ""
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
    and routed; it has resources but no Fmax.
    """
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
            cells += [
                f"{entry['fmax_mhz']:.1f}",
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
    return "\n".join(lines) + "\n"


def plot(results, path):
    """LUTs and Fmax versus MACs, one line per (board, pe)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_luts, ax_fmax) = plt.subplots(1, 2, figsize=(11, 4.2))
    series = {}
    for entry in results:
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
    out = pathlib.Path(args.out)
    if args.report_only:
        results = load_results(out / "results.jsonl")
    else:
        sizes = sorted(set(args.sizes)) if args.sizes else DEFAULT_SIZES
        try:
            results = run_sweep(
                args.boards, args.pes, sizes, out, refine=not args.no_refine, log=lambda line: print(line, flush=True)
            )
        except SynthInterrupted as error:
            print(f"{prog}: error: {error} (nothing recorded; a rerun resumes)", file=sys.stderr)
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
