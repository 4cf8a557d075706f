"""``python -m boards.density``: LUT4s, FFs and DSPs per MAC of the plain and the lean FPGA arrays (Yosys only).

Example::

    python -m boards.density [--families ecp5 ice40] [--kinds int4 log] [--sizes 1 8 16] \\
        [--variants plain lean lean:4096] [--out build/boards/density]

Synthesizes each bare array (no engine, no place and route) with the Yosys
the boards use (YoWASP ``synth_ecp5 -nodsp`` / ``synth_ice40``, the 4-bit
kinds' board options, :meth:`boards.platforms.Board.synth_opts`) and counts
its cells as ``report.json`` does (:func:`boards.synth.netlist_resources`:
an ECP5 ``CCU2C`` is two LUT4s). Variants:

* ``plain``: :class:`hw.array.SystolicArray` as the board engine builds it
  (the kind's default accumulator width, gated registers);
* ``lean``: :class:`hw.fpga_array.LeanSystolicArray` with the same result
  width (the same K bound);
* ``lean:K`` / ``plain:K``: the array sized for a declared ``max_k = K``.

Prints a Markdown table (per array and per MAC; ``marginal`` is the cost of
one more PE between the two largest sizes, without the edges) and writes it
with the raw counts to ``<out>/density.md`` and ``<out>/density.json``.
Points already in ``density.json`` (same design) are not synthesized again.
Exit status: 0 done; 2 bad input; 1 a Yosys failure.
"""

import json
import pathlib
import subprocess
import sys
import tempfile
import time

from amaranth.back import rtlil

from fourbit.util.cli import OneLineParser, positive_int, run_main
from fourbit.util.files import write_text_atomically
from hw.array import SystolicArray
from hw.fpga_array import LeanSystolicArray, lean_kinds
from hw.kinds import get_kind

from .platforms import BOARDS, yowasp_env
from .synth import SynthError, netlist_resources

__all__ = ["FAMILIES", "Variant", "design", "measure", "table", "main"]

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
#: Board whose synthesis options each family uses.
FAMILIES = {spec.family: name for name, spec in BOARDS.items()}
_SYNTH = {"ecp5": "synth_ecp5", "ice40": "synth_ice40"}


class Variant:
    """``plain`` / ``lean``, optionally ``:K`` (a declared ``max_k``)."""

    def __init__(self, text):
        name, _, k = text.partition(":")
        if name not in ("plain", "lean") or (k and not k.isdigit()) or k == "0":
            raise ValueError(f"unknown variant {text!r} (plain, lean, plain:K, lean:K)")
        self.name, self.max_k, self.text = name, int(k) if k else None, text

    def __repr__(self):
        return self.text


def design(kind, rows, cols, variant):
    """The array of ``variant`` (a :class:`Variant`), and its result width."""
    spec = get_kind(kind)
    if variant.max_k is None:
        # The board engine's width (and the K bound that goes with it).
        options = {"acc_width": spec.default_acc_width, "max_k": 1}
    else:
        options = {"max_k": variant.max_k}
    if variant.name == "plain":
        return SystolicArray(kind=kind, rows=rows, cols=cols, **options)
    return LeanSystolicArray(kind=kind, rows=rows, cols=cols, **options)


def measure(family, kind, rows, cols, variant):
    """Synthesize one array; its cell counts, widths and the synthesis time."""
    array = design(kind, rows, cols, variant)
    text = rtlil.convert(array, name="top")
    board = BOARDS[FAMILIES[family]]
    opts = board.synth_opts(kind)
    script = f"read_rtlil top.il\n{_SYNTH[family]} {opts} -top top\nwrite_json top.json\n"
    with tempfile.TemporaryDirectory(prefix="fourbit-density-") as scratch:
        work = pathlib.Path(scratch)
        (work / "top.il").write_text(text)
        (work / "top.ys").write_text(script)
        started = time.perf_counter()
        done = subprocess.run(
            [yowasp_env()["YOSYS"], "-q", "-l", "top.log", "top.ys"],
            cwd=work,
            capture_output=True,
            text=True,
            env=yowasp_env(),
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            tail = (work / "top.log").read_text().splitlines()[-5:] if (work / "top.log").exists() else []
            raise SynthError(f"yosys failed on {kind} {rows}x{cols} {variant} ({family}): " + " | ".join(tail))
        counts = netlist_resources(json.loads((work / "top.json").read_text()), family)
    widths = {"acc_width": array.acc_width, "pe_acc_width": getattr(array, "pe_acc_width", array.acc_width)}
    return {
        "family": family,
        "kind": kind,
        "rows": rows,
        "cols": cols,
        "variant": variant.text,
        "max_k": array.max_k,
        **widths,
        **counts,
        "seconds": round(seconds, 1),
    }


def _key(point):
    return (point["family"], point["kind"], point["variant"], point["rows"], point["cols"])


def table(points):
    """Markdown table of the measured points: per array, per MAC, and the marginal PE."""
    lines = [
        "| family | kind | variant | acc bits (PE / out) | array | LUT4s | FFs | DSPs | LUT4s/MAC | FFs/MAC "
        "| marginal LUT4s/MAC | marginal FFs/MAC |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups = {}
    for point in points:
        groups.setdefault(_key(point)[:3], []).append(point)
    for (family, kind, variant), group in groups.items():
        group.sort(key=lambda p: p["rows"] * p["cols"])
        marginal = None
        if len(group) >= 2 and group[-1]["rows"] * group[-1]["cols"] > group[-2]["rows"] * group[-2]["cols"]:
            big, small = group[-1], group[-2]
            extra = big["rows"] * big["cols"] - small["rows"] * small["cols"]
            marginal = {f: (big[f] - small[f]) / extra for f in ("luts", "ffs")}
        for point in group:
            macs = point["rows"] * point["cols"]
            last = point is group[-1] and marginal is not None
            lines.append(
                f"| {family} | {kind} | {variant} | {point['pe_acc_width']} / {point['acc_width']} "
                f"| {point['rows']}x{point['cols']} | {point['luts']} | {point['ffs']} | {point['dsps']} "
                f"| {point['luts'] / macs:.1f} | {point['ffs'] / macs:.1f} "
                f"| {_cell(marginal, 'luts', last)} | {_cell(marginal, 'ffs', last)} |"
            )
    return "\n".join(lines) + "\n"


def _cell(marginal, field, shown):
    return f"{marginal[field]:.1f}" if shown else ""


def _parser(prog=None):
    parser = OneLineParser(prog=prog or "python -m boards.density", description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=list(_SYNTH), choices=list(_SYNTH))
    parser.add_argument(
        "--kinds",
        nargs="+",
        default=lean_kinds()[:1],
        help=f"kinds (lean: {', '.join(lean_kinds())}; default the first)",
    )
    parser.add_argument("--sizes", nargs="+", type=positive_int, default=[1, 8, 16], help="square sizes N (N x N)")
    parser.add_argument("--variants", nargs="+", default=["plain", "lean", "lean:4096"], help="plain, lean, X:K")
    parser.add_argument("--out", type=pathlib.Path, default=REPO_ROOT / "build" / "boards" / "density")
    return parser


def main(argv=None, prog=None):
    """Entry point of ``python -m boards.density``; returns the exit status (0, 1 or 2)."""
    parser = _parser(prog)
    args = parser.parse_args(argv)
    try:
        variants = [Variant(text) for text in args.variants]
    except ValueError as e:
        parser.error(str(e))
    for kind in args.kinds:
        if kind not in lean_kinds():
            parser.error(f"--kinds: {kind!r} has no lean FPGA array (lean kinds: {', '.join(lean_kinds())})")
    store = args.out / "density.json"
    points = json.loads(store.read_text()) if store.exists() else []
    known = {_key(p): p for p in points}
    try:
        for family in args.families:
            for kind in args.kinds:
                for variant in variants:
                    for n in args.sizes:
                        key = (family, kind, variant.text, n, n)
                        if key not in known:
                            print(f"{parser.prog}: {family} {kind} {variant} {n}x{n} ...", file=sys.stderr, flush=True)
                            known[key] = measure(family, kind, n, n, variant)
                            write_text_atomically(
                                store, json.dumps(list(known.values()), indent=1) + "\n", make_parents=True
                            )
    except SynthError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    chosen = [
        known[(f, k, v.text, n, n)] for f in args.families for k in args.kinds for v in variants for n in args.sizes
    ]
    text = table(chosen)
    write_text_atomically(args.out / "density.md", text, make_parents=True)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "boards.density"))
