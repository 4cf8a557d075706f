"""``python -m report.compare``: the side-by-side table of the 4-bit formats, generated from measured results.

One row per training recipe of the accuracy benchmark (:mod:`golden.bench`),
beside the hardware that runs its GEMMs (the PE kind that lists the recipe,
:attr:`hw.kinds.base.PEKind.recipes`):

* test top-1 of every benchmark run (``accuracy.json`` of ``python -m
  golden.bench accuracy``, ``make bench-accuracy``);
* the kind's standalone PE and 4x4 output-stationary array from
  ``report.json`` (``make report LIBERTY=...``): area, energy per MAC at zero
  delay and glitch-aware (both training workloads of the captured step), and
  the FP16 baseline over each;
* the MACs of the largest array each FPGA board places
  (:attr:`hw.kinds.base.PEKind.fpga`, from the sweep of docs/boards.md).

A recipe whose arithmetic no kind implements gets its accuracy and ``not
generated`` for the hardware. Nothing is typed in: ``--update FILE`` replaces
the text between the markers ``<!-- formats-table:begin -->`` and
``<!-- formats-table:end -->`` of README.md and docs/formats.md (``make
formats-table``). Exit status 2, with one line and nothing written, on a
missing or foreign input or a file without the markers.
"""

import json
import re
import sys

from fourbit.util.cli import OneLineParser, check_output_file, run_main
from fourbit.util.files import write_text_atomically
from golden.recipes import RECIPES
from hw.kinds import KINDS, baseline_kind

__all__ = ["BEGIN", "END", "CompareError", "load_inputs", "table", "splice", "main"]

BEGIN = "<!-- formats-table:begin -->"
END = "<!-- formats-table:end -->"


class CompareError(ValueError):
    """An input the table cannot be made from."""


def _load_json(path, what, key, make):
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise CompareError(f"no {what} at {path} (run `{make}`)") from None
    except (OSError, ValueError) as e:
        raise CompareError(f"cannot read {what} {path}: {e}") from None
    if not isinstance(data, dict) or key not in data:
        raise CompareError(f"{path} is not a {what} (no {key!r})")
    return data


def load_inputs(report_path, accuracy_path):
    """``(report, accuracy)`` dictionaries, checked.

    Raises
    ------
    CompareError
        A file is missing, unreadable or not of its kind.
    """
    report = _load_json(report_path, "report", "units", "make report LIBERTY=...")
    accuracy = _load_json(accuracy_path, "accuracy benchmark", "rows", "make bench-accuracy")
    return report, accuracy


def _kind_of(recipe):
    return next((kind for kind in KINDS.values() if recipe in kind.recipes), None)


def _array_unit(units, kind, size=4):
    """The report entry of the kind's ``size`` x ``size`` output-stationary array, or None."""
    for entry in units.values():
        array = entry.get("array")
        if array and list(array) == [kind.name, size, size] and entry.get("dataflow") != "weight-stationary":
            return entry
    return None


def _num(v, digits=3):
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _ratio(num, den):
    return f"{num / den:.2f}x" if num is not None and den else "n/a"


def _energy_cell(entry, base):
    """``pJ (FP16 / this)`` at zero delay and glitch-aware, or n/a."""
    if not entry or entry.get("energy_pj_per_mac") is None:
        return "n/a", "n/a"
    cells = []
    for key in ("energy_pj_per_mac", "energy_glitch_pj_per_mac"):
        mine = entry.get(key)
        theirs = base.get(key) if base else None
        cells.append(f"{_num(mine)} ({_ratio(theirs, mine)})" if mine is not None else "n/a")
    return tuple(cells)


def _fpga_cell(kind):
    if not kind.fpga.largest:
        return "not placed yet"
    # Every board some kind was placed on (report does not import boards), so a missing one shows.
    boards = sorted({board for other in KINDS.values() for board in other.fpga.largest})
    sizes = kind.fpga.largest
    return ", ".join(
        f"{board} {sizes[board][0] * sizes[board][1]}" if board in sizes else f"{board} not placed yet"
        for board in boards
    )


def table(report, accuracy, *, sources=""):
    """The Markdown table (with its one-paragraph header) of ``report`` and ``accuracy``."""
    units = report["units"]
    baseline = baseline_kind()
    base_pe = units.get(baseline.standalone.module) if baseline and baseline.standalone else None
    base_array = _array_unit(units, baseline) if baseline else None
    runs = accuracy["rows"]
    recipes = [r for r in RECIPES if any(r in row for row in runs)]
    run_labels = [f"{row['dataset']} {row['model']} ({row['epochs']} ep.)" for row in runs]
    header = (
        ["recipe", "arithmetic"]
        + [f"{label} top-1 %" for label in run_labels]
        + [
            "PE",
            "PE area um^2 (FP16 / PE)",
            "PE pJ/MAC zero-delay (FP16 / PE)",
            "PE pJ/MAC glitch-aware (FP16 / PE)",
            "4x4 array pJ/MAC zero-delay (FP16 / array)",
            "4x4 array glitch-aware",
            "FPGA MACs (largest placed array)",
        ]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for recipe in recipes:
        cells = [f"`{recipe}`", RECIPES[recipe].description]
        for row in runs:
            entry = row.get(recipe)
            cells.append(f"{100 * entry['test_accuracy']:.2f}" if entry else "-")
        kind = _kind_of(recipe)
        pe = units.get(kind.standalone.module) if kind and kind.standalone else None
        if kind is None:
            cells += ["not generated"] + ["-"] * 6
        else:
            area = pe.get("area_um2") if pe else None
            base_area = base_pe.get("area_um2") if base_pe else None
            area_cell = "n/a" if area is None else f"{_num(area)} ({_ratio(base_area, area)})"
            cells += [f"`{kind.standalone.module}`" if kind.standalone else kind.name, area_cell]
            cells += list(_energy_cell(pe, base_pe))
            cells += list(_energy_cell(_array_unit(units, kind), base_array))
            cells.append(_fpga_cell(kind))
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        "Energy per MAC over both training workloads (forward; dX and dW) of the captured step, "
        "the FP16 baseline on the same tensors' real values; the baseline's own row is its "
        "hardware beside FP32 training accuracy (the golden model has no FP16 recipe)."
    )
    return "\n".join(([sources, ""] if sources else []) + lines + ["", note]) + "\n"


def splice(text, block, *, path="the file"):
    """``text`` with the part between :data:`BEGIN` and :data:`END` replaced by ``block``.

    Raises
    ------
    CompareError
        The markers are missing or out of order.
    """
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if len(pattern.findall(text)) != 1:
        raise CompareError(f"{path} has no single {BEGIN} ... {END} pair to replace")
    return pattern.sub(lambda _: f"{BEGIN}\n{block}{END}", text)


def _parser(prog=None):
    p = OneLineParser(
        prog=prog or "python -m report.compare",
        description="The side-by-side table of the 4-bit formats: accuracy, area, energy, FPGA MACs.",
    )
    p.add_argument("--report", default="build/report/report.json", help="report.json (default: %(default)s)")
    p.add_argument(
        "--accuracy",
        default="build/golden/accuracy/accuracy.json",
        help="accuracy.json of the accuracy benchmark (default: %(default)s)",
    )
    p.add_argument("--out", default="build/report/formats.md", help="the table alone (default: %(default)s)")
    p.add_argument(
        "--update",
        action="append",
        default=[],
        metavar="FILE",
        help="replace the table between the formats-table markers of FILE (repeatable)",
    )
    return p


def main(argv=None, prog=None):
    """Entry point; returns the exit status (0 written, 2 bad input: nothing written)."""
    args = _parser(prog).parse_args(argv)
    prog = prog or "report.compare"
    try:
        problem = check_output_file(args.out, "--out", make_parents=True)
        if problem:
            raise CompareError(problem)
        report, accuracy = load_inputs(args.report, args.accuracy)
        sources = (
            f"Generated by `python -m report.compare` from `{args.report}` "
            f"({report.get('liberty_name') or 'no Liberty'}; {report.get('stimulus', 'stimulus n/a')}) "
            f"and `{args.accuracy}` (seed {accuracy['rows'][0].get('seed', 'n/a') if accuracy['rows'] else 'n/a'}; "
            f"torch CPU kernels {', '.join(accuracy.get('cpu_capabilities') or ['unknown'])})."
        )
        block = table(report, accuracy, sources=sources)
        updates = {}
        for path in args.update:
            try:
                with open(path) as f:
                    updates[path] = splice(f.read(), block, path=path)
            except OSError as e:
                raise CompareError(f"cannot read {path}: {e}") from None
    except CompareError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    write_text_atomically(args.out, block, make_parents=True)
    for path, text in updates.items():
        write_text_atomically(path, text)
    print(f"{prog}: {args.out}" + "".join(f", {path}" for path in updates), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "report.compare"))
