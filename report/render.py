"""Writing the report: ``report.json``, ``report.md``, ``report.html`` and PNG plots."""

import html
import json
import os

from fourbit.util.files import write_atomically, write_files_atomically
from hw.kinds import KINDS, baseline_kind

__all__ = ["HOROWITZ_45NM", "SCALING", "ratios", "calibration_rows", "write_all"]

#: Horowitz, "Computing's energy problem", ISSCC 2014 (45 nm, 0.9 V): (pJ, um^2).
HOROWITZ_45NM = {
    "cal_add8": (0.03, 36.0),
    "cal_mul8": (0.2, 282.0),
    "fp16 add": (0.4, 1360.0),
    "fp16 mult": (1.1, 1640.0),
    "fp32 add": (0.9, 4184.0),
    "fp32 mult": (3.7, 7700.0),
}

#: First-order (Dennard) scaling from 45 nm / 0.9 V to SKY130's 130 nm / 1.8 V:
#: energy ~ C V^2 with C ~ feature size, area ~ feature size^2.
SCALING = {"energy": (130 / 45) * (1.8 / 0.9) ** 2, "area": (130 / 45) ** 2}

PAPER_CLAIM = "more than 7x (Sun et al., NeurIPS 2020: 4-bit training vs FP16 hardware, simulated)"


def _ratio(num, den):
    return num / den if num is not None and den else None


def _compared():
    """The baseline kind and the kinds compared with it: ``(baseline, [(kind, workload or None)])``.

    A kind that runs one workload is compared on it; one that runs several
    (the unified training PE) on its energy over all of them (workload None).
    """
    baseline = baseline_kind()
    others = [
        (kind, kind.workloads[0] if len(kind.workloads) == 1 else None)
        for kind in KINDS.values()
        if kind is not baseline and kind.workloads
    ]
    return baseline, others


def _energy(entry, workload, part="pj_per_mac"):
    if workload is None:
        return entry.get("energy_pj_per_mac") if part == "pj_per_mac" else None
    return entry.get("energy", {}).get(workload, {}).get(part)


def glitch_view(units):
    """The units with their glitch-aware energy in place of the zero-delay one (for :func:`ratios`)."""
    out = {}
    for name, entry in units.items():
        view = dict(entry)
        view["energy"] = entry.get("energy_glitch") or {}
        view["energy_pj_per_mac"] = entry.get("energy_glitch_pj_per_mac")
        out[name] = view
    return out


def ratios(units):
    """Baseline (FP16) over each 4-bit standalone PE: area, energy (matching workloads), transistors.

    Keys are ``<baseline>_over_<kind>_<metric>``, e.g. ``fp16_over_int4_energy``;
    kinds compared on one workload also get the transistor and logic-only ratios.
    """
    baseline, others = _compared()
    if baseline is None:
        return {}
    fp = units.get(baseline.standalone.module, {})
    out = {}
    for kind, workload in others:
        if kind.standalone is None:
            continue
        other = units.get(kind.standalone.module, {})
        key = f"{baseline.name}_over_{kind.name}"
        out[f"{key}_area"] = _ratio(fp.get("area_um2"), other.get("area_um2"))
        out[f"{key}_energy"] = _ratio(_energy(fp, workload), _energy(other, workload))
        if workload is not None:
            out[f"{key}_transistors"] = _ratio(fp.get("transistors"), other.get("transistors"))
            # the arithmetic alone: combinational logic, without the (ungated) registers
            out[f"{key}_logic_area"] = _ratio(fp.get("area_logic_um2"), other.get("area_logic_um2"))
            out[f"{key}_logic_energy"] = _ratio(_energy(fp, workload, "logic_pj"), _energy(other, workload, "logic_pj"))
        # pipelined variants of the baseline top (e.g. fp16_mac_p1) against the same 4-bit top
        for name, variant in sorted(units.items()):
            if variant.get("kind") == baseline.standalone.module and name != baseline.standalone.module:
                out[f"{name}_over_{kind.name}_area"] = _ratio(variant.get("area_um2"), other.get("area_um2"))
                out[f"{name}_over_{kind.name}_energy"] = _ratio(_energy(variant, workload), _energy(other, workload))
    return out


def headline(r):
    """One line of the main ratios (the report's closing message)."""
    baseline, others = _compared()
    if baseline is None:
        return "no baseline kind"
    parts = []
    for kind, workload in others:
        key = f"{baseline.name}_over_{kind.name}"
        if workload is not None and f"{key}_area" in r:
            parts.append(
                f"{baseline.name}/{kind.name} area {_x(r[f'{key}_area'])} energy {_x(r[f'{key}_energy'])} "
                f"transistors {_x(r[f'{key}_transistors'])}"
            )
    return "; ".join(parts)


def array_ratios(units):
    """Per array size: the baseline array over each 4-bit array (area; energy per MAC on matching workloads)."""
    baseline, others = _compared()
    by_size = {}
    for u in units.values():
        if u.get("array"):
            pe, rows, cols = u["array"]
            flow = " weight-stationary" if u.get("dataflow") == "weight-stationary" else ""
            by_size.setdefault(f"{rows}x{cols}{flow}", {})[pe] = u
    out = {}
    for size, kinds in sorted(by_size.items(), key=lambda kv: (int(kv[0].split("x")[0]), kv[0])):
        fp = kinds.get(baseline.name) if baseline else None
        if not fp:
            continue
        row = {}
        for kind, workload in others:
            other = kinds.get(kind.name)
            if not other:
                continue
            row[f"{baseline.name}_over_{kind.name}_area"] = _ratio(fp.get("area_um2"), other.get("area_um2"))
            row[f"{baseline.name}_over_{kind.name}_energy"] = _ratio(_energy(fp, workload), _energy(other, workload))
        out[size] = row
    return out


def calibration_rows(calibration):
    """Rows comparing the flow's operator-only figures with Horowitz (raw and scaled)."""
    rows = []
    for name, entry in calibration.items():
        pj, um2 = HOROWITZ_45NM[name]
        e = entry.get("energy", {}).get("random", {}).get("logic_pj")
        a = entry.get("area_logic_um2")
        rows.append(
            {
                "unit": name,
                "description": entry.get("description", ""),
                "energy_pj": e,
                "area_um2": a,
                "transistors": entry.get("transistors"),
                "horowitz_pj_45nm": pj,
                "horowitz_um2_45nm": um2,
                "horowitz_pj_scaled": pj * SCALING["energy"],
                "horowitz_um2_scaled": um2 * SCALING["area"],
                "energy_over_scaled": _ratio(e, pj * SCALING["energy"]),
                "area_over_scaled": _ratio(a, um2 * SCALING["area"]),
            }
        )
    return rows


def _x(v):
    """A ratio cell: ``6.36x`` or ``n/a``."""
    return "n/a" if v is None else f"{_fmt(v)}x"


def _fmt(v, digits=3):
    if v is None:
        return "n/a"
    if isinstance(v, int):
        return str(v)
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


#: The three classes of the breakdown (report.energy.cell_classes), as keys and labels.
_PARTS = ("registers_pj", "arithmetic_pj", "control_pj")
_PART_LABELS = ("registers + clock", "arithmetic", "control")


def _energy_parts(entry):
    """(registers, arithmetic, control) pJ per MAC averaged over the unit's workloads, or None."""
    energy = entry.get("energy") or {}
    if not energy:
        return None
    return tuple(sum(e.get(part) or 0.0 for e in energy.values()) / len(energy) for part in _PARTS)


def _split(e):
    """``total (registers / arithmetic / control)`` of one workload's energy."""
    return f"{_fmt(e['pj_per_mac'])} ({' / '.join(_fmt(e.get(p)) for p in _PARTS)})"


def _stacked(ax, names, parts, labels):
    """Stacked bars on a linear axis from 0: bar heights are the values, so ratios read true."""
    bottom = [0.0] * len(names)
    for values, label, color in zip(parts, labels, ("#cc6677", "#4477aa", "#ddcc77", "#eeaabb", "#99bbdd", "#eeeebb")):
        ax.bar(names, values, bottom=bottom, label=label, color=color)
        bottom = [b + v for b, v in zip(bottom, values)]
    for i, total in enumerate(bottom):
        ax.annotate(_fmt(total), (i, total), ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, max(bottom) * 1.15 if bottom and max(bottom) > 0 else 1)
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)


def _plots(report, out_dir):
    """Stacked bar charts (linear scale, registers/clock vs logic) of area and energy per unit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    units = report["units"]
    library = report["liberty_name"] or "technology-independent"
    gating = "clock-gated" if report.get("clock_gating") else "no clock gating"
    labels = _PART_LABELS
    for title, pick, prefix in (
        ("processing elements", lambda u: not u.get("array"), ""),
        ("arrays, per PE", lambda u: u.get("array"), "arrays_"),
    ):
        chosen = [(n, u) for n, u in units.items() if pick(u)]
        areas = [(n, u) for n, u in chosen if u.get("area_um2") is not None]
        if areas:
            fig, ax = plt.subplots(figsize=(7, 4))
            per = [u.get("pe_count", 1) for _, u in areas]
            _stacked(
                ax,
                [n for n, _ in areas],
                [
                    [u["area_registers_um2"] / p for (_, u), p in zip(areas, per)],
                    [(u.get("area_arithmetic_um2") or 0.0) / p for (_, u), p in zip(areas, per)],
                    [(u.get("area_control_um2") or 0.0) / p for (_, u), p in zip(areas, per)],
                ],
                ("registers", "arithmetic", "control"),
            )
            ax.set_ylabel("area per PE (um^2)" if prefix else "area (um^2)")
            ax.set_title(f"Area, {title} ({library})", fontsize=10)
            fig.tight_layout()
            _save(fig, os.path.join(out_dir, f"{prefix}area.png"))
            plt.close(fig)
            written.append(f"{prefix}area.png")
        energies = [(n, _energy_parts(u)) for n, u in chosen if _energy_parts(u)]
        if energies:
            fig, ax = plt.subplots(figsize=(7, 4))
            _stacked(ax, [n for n, _ in energies], [[e[k] for _, e in energies] for k in range(3)], labels)
            ax.set_ylabel("energy per MAC (pJ)")
            ax.set_title(f"Energy per MAC, {title} ({library}, {gating})", fontsize=10)
            fig.tight_layout()
            _save(fig, os.path.join(out_dir, f"{prefix}energy.png"))
            plt.close(fig)
            written.append(f"{prefix}energy.png")
    written += _step_plot(report, out_dir, plt)
    counts = [(n, u["transistors"]) for n, u in units.items() if u.get("transistors") and not u.get("array")]
    if counts:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.bar([n for n, _ in counts], [v for _, v in counts], color="#4477aa")
        for i, (_, v) in enumerate(counts):
            ax.annotate(_fmt(v), (i, v), ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, max(v for _, v in counts) * 1.15)
        ax.set_ylabel("transistors")
        ax.set_title("Transistors (Yosys cmos estimate)", fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        fig.tight_layout()
        _save(fig, os.path.join(out_dir, "transistors.png"))
        plt.close(fig)
        written.append("transistors.png")
    return written


def _save(fig, path):
    write_atomically(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110), suffix=".tmp.png")


def _calibration_md(report):
    lines = []
    lines.append("## Calibration against Horowitz (ISSCC 2014, 45 nm, 0.9 V)")
    lines.append("")
    lines.append(
        "Operator logic only (boundary registers excluded), uniformly random operands. "
        f"Scaled = Horowitz x {SCALING['energy']:.2f} (energy, C V^2 with C ~ L) and "
        f"x {SCALING['area']:.2f} (area, L^2) to 130 nm / 1.8 V: first-order only."
    )
    lines.append("")
    lines.append(
        "| circuit | energy pJ | Horowitz pJ (45 nm / scaled) | ratio to scaled | "
        "area um^2 | Horowitz um^2 (45 nm / scaled) | ratio to scaled |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for row in report["calibration"]:
        lines.append(
            f"| {row['description']} | {_fmt(row['energy_pj'])} | {_fmt(row['horowitz_pj_45nm'])} / "
            f"{_fmt(row['horowitz_pj_scaled'])} | {_fmt(row['energy_over_scaled'])} | "
            f"{_fmt(row['area_um2'])} | {_fmt(row['horowitz_um2_45nm'])} / "
            f"{_fmt(row['horowitz_um2_scaled'])} | {_fmt(row['area_over_scaled'])} |"
        )
    lines.append("")
    lines.append(
        "Horowitz's FP figures for reference (45 nm): FP16 add 0.4 pJ / 1360 um^2, "
        "FP16 mult 1.1 pJ / 1640 um^2, FP32 add 0.9 pJ / 4184 um^2, FP32 mult 3.7 pJ / 7700 um^2."
    )
    lines.append("")
    return lines


def _ratio_table(r, array_ratios):
    """Markdown rows of the baseline-over-4-bit ratios (PEs, then arrays by size)."""
    lines = []
    lines.append("| ratio | area | energy per MAC | transistors | logic-only area | logic-only energy |")
    lines.append("|---|---|---|---|---|---|")
    baseline, others = _compared()
    for kind, workload in others if baseline else ():
        key = f"{baseline.name}_over_{kind.name}"
        if kind.standalone is None or (r.get(f"{key}_area") is None and workload is None):
            continue
        label = f"{baseline.standalone.module} / {kind.standalone.module} ({workload or 'both'})"
        if workload is None:
            lines.append(f"| {label} | {_x(r[f'{key}_area'])} | {_x(r[f'{key}_energy'])} | | | |")
        else:
            lines.append(
                f"| {label} | {_x(r.get(f'{key}_area'))} | {_x(r.get(f'{key}_energy'))} | "
                f"{_x(r.get(f'{key}_transistors'))} | {_x(r.get(f'{key}_logic_area'))} | "
                f"{_x(r.get(f'{key}_logic_energy'))} |"
            )
    for kind, workload in others if baseline else ():
        if kind.standalone is None:
            continue
        for key in sorted(r):
            variant = key.removesuffix(f"_over_{kind.name}_energy")
            if key.endswith(f"_over_{kind.name}_energy") and variant != baseline.name and r[key] is not None:
                lines.append(
                    f"| {variant} (pipelined) / {kind.standalone.module} ({workload or 'both'}) | "
                    f"{_x(r.get(f'{variant}_over_{kind.name}_area'))} | {_x(r[key])} | | | |"
                )
    for size, row in array_ratios.items():
        for kind, _ in others if baseline else ():
            key = f"{baseline.name}_over_{kind.name}"
            if f"{key}_area" in row:
                lines.append(
                    f"| {baseline.name} / {kind.name} array {size} | {_x(row[f'{key}_area'])} | "
                    f"{_x(row[f'{key}_energy'])} | | | |"
                )
    return lines


def _markdown(report, plots):
    r = report["ratios"]
    lines = ["# fourbit: area and energy against FP16", ""]
    lines.append(
        f"- Liberty: `{report['liberty'] or 'none (technology-independent estimates only)'}`"
        + (f", {report['voltage']} V" if report.get("voltage") else "")
    )
    lines.append(
        f"- Operand streams: **{report['stimulus']}**, {report['macs']} MACs per workload; "
        f"clock {report['clock_ns']} ns (leakage window)"
    )
    lines.append(
        f"- Yosys: {report['yosys']['map'] or 'n/a'} (mapping), {report['yosys']['cmos'] or 'n/a'} (cmos estimate)"
    )
    lines.append(f"- Command: `{report['command']}`")
    lines.append("")
    lines.append("## FP16 over 4-bit")
    lines.append("")
    lines.append(
        f"The paper claims {PAPER_CLAIM}. Measured here (same register boundary, "
        "same operand tensors; energy on matching workloads):"
    )
    lines.append("")
    lines += _ratio_table(r, report.get("array_ratios", {}))
    glitch = report.get("glitch")
    if glitch and any(v is not None for v in glitch["ratios"].values()):
        lines.append("| paper claim | >7x | >7x | | | |")
        lines.append("")
        lines.append("Glitch-aware (Liberty cell delays; see Method), the same units:")
        lines.append("")
        lines += _ratio_table(glitch["ratios"], glitch["array_ratios"])
    lines.append("| paper claim | >7x | >7x | | | |")
    lines.append("")
    gating = report.get("clock_gating")
    lines.append(
        "Logic-only: combinational cells and the nets they drive, without the flip-flops "
        "(operand registers, accumulators) and clock gates. "
        + (
            "Flip-flops that share an enable are clock-gated (see Method), on every unit alike."
            if gating
            else "Every flip-flop is clocked every cycle (no clock gating)."
        )
    )
    lines.append("")
    ungated = report.get("variants", {}).get("ungated")
    if ungated:
        lines.append("### Without clock gating")
        lines.append("")
        lines.append(
            "The same units mapped without clock gates: every flip-flop is clocked every cycle and an "
            "enable is a multiplexer in front of it."
        )
        lines.append("")
        lines += _ratio_table(ungated["ratios"], ungated["array_ratios"])
        lines.append("| paper claim | >7x | >7x | | | |")
        lines.append("")
        lines.append("| unit | energy pJ/MAC gated | ungated | gated / ungated | registers pJ/MAC gated | ungated |")
        lines.append("|---|---|---|---|---|---|")
        for name, u in report["units"].items():
            v = ungated["units"].get(name, {})
            g_e, u_e = u.get("energy_pj_per_mac"), v.get("energy_pj_per_mac")
            regs = [
                sum(e["registers_pj"] for e in x.get("energy", {}).values()) / len(x["energy"])
                if x.get("energy")
                else None
                for x in (u, v)
            ]
            lines.append(
                f"| {name} | {_fmt(g_e)} | {_fmt(u_e)} | {_fmt(_ratio(g_e, u_e))} | {_fmt(regs[0])} | {_fmt(regs[1])} |"
            )
        lines.append("")
    header = [
        "| unit | PEs | transistors | area um^2 (regs / arith / control) | area um^2 per PE | delay ns | "
        "energy pJ/MAC | by workload: pJ/MAC (regs / arith / control) | glitch-aware pJ/MAC (regs / arith / control) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for title, pick in (("Processing elements", lambda u: not u.get("array")), ("Arrays", lambda u: u.get("array"))):
        chosen = [(n, u) for n, u in report["units"].items() if pick(u)]
        if not chosen:
            continue
        lines += [f"## {title}", "", *header]
        for name, u in chosen:
            split = (
                f"{_fmt(u['area_um2'])} ({_fmt(u['area_registers_um2'])} / "
                f"{_fmt(u.get('area_arithmetic_um2'))} / {_fmt(u.get('area_control_um2'))})"
                if u.get("area_um2") is not None
                else "n/a"
            )
            per_pe = u["area_um2"] / u.get("pe_count", 1) if u.get("area_um2") is not None else None
            work = "; ".join(f"{w}: {_split(e)}" for w, e in u.get("energy", {}).items()) or "n/a"
            glitch = "; ".join(f"{w}: {_split(e)}" for w, e in u.get("energy_glitch", {}).items()) or "n/a"
            lines.append(
                f"| {name} | {u.get('pe_count', 1)} | {_fmt(u['transistors'])} | {split} | "
                f"{_fmt(per_pe)} | {_fmt(u['delay_ns'])} | {_fmt(u['energy_pj_per_mac'])} | {work} | {glitch} |"
            )
        lines.append("")
    lines += _step_md(report.get("step"))
    if report["missing"]:
        lines.append("Not measured (not generated yet): " + "; ".join(report["missing"]))
        lines.append("")
    if report.get("skipped"):
        lines.append(
            "Skipped (arrays over the transistor budget are measured with `--max-transistors 0`): "
            + "; ".join(f"{n}: {why}" for n, why in report["skipped"].items())
        )
        lines.append("")
    if report["calibration"] and report.get("liberty"):
        lines += _calibration_md(report)
    if plots:
        lines.append("## Plots")
        lines.append("")
        lines += [f"![{p}]({p})" for p in plots]
        lines.append("")
    step_units = (report.get("step") or {}).get("units", {})
    errors = report["errors"] + [
        f"{n}: {e}" for n, u in {**report["units"], **step_units}.items() for e in u.get("errors", [])
    ]
    if errors:
        lines.append("## Problems")
        lines.append("")
        lines += [f"- {e}" for e in errors]
        lines.append("")
    lines.append("## Method")
    lines.append("")
    lines += [f"- {m}" for m in report["method"]]
    return "\n".join(lines) + "\n"


def _html(markdown_text, title):
    """A plain HTML rendering of the Markdown report (tables, lists, images)."""
    out = [
        "<!DOCTYPE html>",
        "<html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}"
        "code{background:#eee}</style></head><body>",
    ]
    in_table = in_list = False
    for line in markdown_text.splitlines():
        esc = html.escape(line)
        esc = _inline(esc)
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= {"-"} for c in cells):
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
                out.append("<tr>" + "".join(f"<th>{_inline(html.escape(c))}</th>" for c in cells) + "</tr>")
            else:
                out.append("<tr>" + "".join(f"<td>{_inline(html.escape(c))}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{_inline(html.escape(line[2:]))}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if line.startswith("## "):
            out.append(f"<h2>{esc[3:]}</h2>")
        elif line.startswith("# "):
            out.append(f"<h1>{esc[2:]}</h1>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1 : -1]
            out.append(f"<p><img src='{html.escape(src)}' alt='{html.escape(src)}'></p>")
        elif line:
            out.append(f"<p>{esc}</p>")
    if in_table:
        out.append("</table>")
    if in_list:
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _inline(text):
    import re

    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def write_all(report, out_dir):
    """Write ``report.json``, the PNG plots, ``report.md`` and ``report.html``; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    plots = _plots(report, out_dir)
    report = dict(report, plots=plots)
    md = _markdown(report, plots)
    texts = {
        "report.json": json.dumps(report, indent=2) + "\n",
        "report.md": md,
        "report.html": _html(md, "fourbit report"),
    }
    paths = [str(path) for path in write_files_atomically(out_dir, texts)]
    return paths + [os.path.join(out_dir, p) for p in plots]


def _side(side):
    """Display name of a training-step side: ``4-bit``, or the baseline kind's name in capitals."""
    from .step import BASELINE

    return BASELINE.upper() if side == "baseline" else side


def _step_views(step):
    """(label, composed step) for the zero-delay and glitch-aware figures that exist."""
    if not step:
        return []
    views = [("zero-delay", step.get("zero_delay")), ("glitch-aware", step.get("glitch"))]
    return [(label, v) for label, v in views if v and not v.get("missing")]


def _step_md(step):
    """The training-step section (report.step): blocks, totals, ratio, Amdahl limits, traffic."""
    if not step:
        return []
    counts = step["counts"]
    lines = ["## One training step: the 4-bit datapath against an FP16 datapath", ""]
    lines.append(
        "The captured step's quantized layers ("
        + ", ".join(f"layer {g['layer']} {g['op']} {g['shape']}" for g in counts["gemms"])
        + "). **Measured**: each block's energy per operation with the same gate-level flow "
        f"({'clock-gated' if step.get('clock_gating') else 'no clock gating'}), the arrays on that GEMM's own "
        "captured operands (FP16: its float operands in binary16), the element units on the step's "
        "accumulators, gradients and masks. **Composed**: operations in the step x measured energy per "
        "operation. **Not priced**: memory traffic, the FP32 layers, the host's weight update, bias adds, "
        "the datapath's idle cycles (below)."
    )
    lines.append("")
    views = _step_views(step)
    for label, v in [("zero-delay", step.get("zero_delay")), ("glitch-aware", step.get("glitch"))]:
        if v and v.get("missing"):
            lines.append(f"Not composed ({label}): no measurement of {', '.join(v['missing'])}.")
            lines.append("")
    if not views:
        return lines
    lines.append(
        "| side | block | operations | "
        + " | ".join(f"{label} pJ/op | {label} uJ (regs / arith / control)" for label, _ in views)
        + " |"
    )
    lines.append("|---|---|---|" + "---|---|" * len(views))
    rows = views[0][1]["blocks"]
    for k, row in enumerate(rows):
        cells = []
        for _, v in views:
            b = v["blocks"][k]
            cells.append(
                f"{_fmt(b['pj_per_op'])} | {_fmt(b['uj'])} ({_fmt(b['registers_uj'])} / "
                f"{_fmt(b['arithmetic_uj'])} / {_fmt(b['control_uj'])})"
            )
        lines.append(f"| {_side(row['side'])} | {row['block']} | {row['operations']:,} | " + " | ".join(cells) + " |")
    for side in ("4-bit", "baseline"):
        cells = []
        for _, v in views:
            t = v["sides"][side]
            cells.append(
                f"GEMM {100 * t['gemm_share']:.1f} % | **{_fmt(t['uj'])}** ({_fmt(t['registers_uj'])} / "
                f"{_fmt(t['arithmetic_uj'])} / {_fmt(t['control_uj'])})"
            )
        lines.append(f"| {_side(side)} | **step total** | | " + " | ".join(cells) + " |")
    lines.append(
        f"| | **{_side('baseline')} / 4-bit, whole step** | | "
        + " | ".join(f" | **{_x(v['ratio'])}**" for _, v in views)
        + " |"
    )
    lines.append("| | paper claim | | " + " | ".join(" | >7x" for _ in views) + " |")
    lines.append("")
    fp32 = views[0][1].get("fp32_layers")
    if fp32:
        lines.append(
            f"Amdahl: the FP32 first and last layers the recipe keeps run {fp32['macs']:,} MACs per step "
            "(" + "; ".join(f"layer {layer['layer']} {layer['shape']}" for layer in counts["fp32_layers"]) + "), "
            "the same on both sides. Priced at the FP16 array's energy per MAC (a lower bound for FP32), "
            + "; ".join(
                f"{label}: {_fmt(v['fp32_layers']['pj_per_mac_lower_bound'])} pJ/MAC, "
                f"{_fmt(v['fp32_layers']['uj'])} uJ, {100 * v['fp32_layers']['share_of_4bit_step']:.0f} % of the "
                f"4-bit step with them, whole-network ratio **{_x(v['fp32_layers']['ratio_with_them'])}**"
                for label, v in views
                if v.get("fp32_layers")
            )
            + "."
        )
    elif counts.get("note"):
        lines.append(f"Amdahl: {counts['note']}.")
    lines.append("")
    traffic = counts["bytes"]
    lines.append(
        f"Memory traffic per step (not priced; each tensor written and read once per use, the quantized "
        f"layers): 4-bit {traffic['4-bit'] / 1024:,.0f} KiB, {_side('baseline')} {traffic['baseline'] / 1024:,.0f} KiB "
        "(4-bit: 0.5 B codes, 6 B gradient words before encoding, 5 B dW accumulators to the host; FP16: "
        "2 B operands and results, 4 B dW to the host). The host's FP32 weight update touches "
        f"{counts['params']:,} parameters per step (weights, biases) on both sides; not priced."
    )
    lines.append("")
    return lines


def _step_plot(report, out_dir, plt):
    """``step_energy.png``: the step's energy per side, stacked by block (linear axis from 0)."""
    views = _step_views(report.get("step"))
    if not views:
        return []
    fig, axes = plt.subplots(1, len(views), figsize=(5 * len(views), 4), squeeze=False)
    for ax, (label, v) in zip(axes[0], views):
        sides = ("4-bit", "baseline")
        kinds = ("GEMM", "post-ops")
        parts = []
        for kind in kinds:
            for part, name in zip(("registers_uj", "arithmetic_uj", "control_uj"), _PART_LABELS):
                parts.append(
                    (
                        f"{kind}: {name}",
                        [
                            sum(
                                b[part]
                                for b in v["blocks"]
                                if b["side"] == side and b["block"].startswith("GEMM") == (kind == "GEMM")
                            )
                            for side in sides
                        ],
                    )
                )
        _stacked(ax, [_side(x) for x in sides], [p for _, p in parts], [n for n, _ in parts])
        ax.set_ylabel("energy per step (uJ)")
        ax.set_title(f"Training step, {label}: {_side('baseline')} / 4-bit {_fmt(v['ratio'])}x", fontsize=10)
    fig.tight_layout()
    _save(fig, os.path.join(out_dir, "step_energy.png"))
    plt.close(fig)
    return ["step_energy.png"]
