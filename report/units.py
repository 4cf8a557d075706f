"""The units a report measures, each inside the same register boundary.

Units come from ``make rtl``'s ``build/rtl/manifest.json`` (the processing
elements, and the unified training PE and arrays once they are generated)
and from two calibration circuits (an 8-bit adder and an 8-bit multiplier,
compared with Horowitz's ISSCC 2014 figures).

The *register boundary*: every data and control input of a unit is
registered (``<port>`` -> flip-flop -> unit), and every output is a register:
units whose manifest latency is at least 1 already end in one (the
accumulator), combinational ones get one added.  So all units are measured
register-to-register, and a unit's area and energy include its operand
registers.
"""

import json
import os
import re
from dataclasses import dataclass, field

from fourbit.util.files import write_text_atomically
from hw.kinds import KINDS, TOPS

from . import stimulus

__all__ = ["Unit", "EXPECTED_KINDS", "discover", "calibration_units", "boundary_verilog"]

#: Kinds a full report covers, with what each is: every standalone top of the
#: PE-kind registry, and the arrays.
EXPECTED_KINDS = {
    **{module: kind.standalone.description for module, kind in TOPS.items()},
    "arrays": "R x C arrays of each PE kind (4x4, 8x8, 16x16)",
}


@dataclass
class Unit:
    """One design to measure.

    Attributes
    ----------
    name : str
        Module name (the report's key).
    kind : str
        Unit kind (manifest ``kind``, or ``calibration``).
    sources : list of str
        Verilog files defining ``name``.
    inputs, outputs : list of (str, int)
        Ports (without ``clk``/``rst``) and widths.
    registered_outputs : bool
        Outputs already come from registers.
    has_clock, has_reset : bool
        The unit has a ``clk`` (``rst``) port.
    workloads : tuple of str
        Workloads it is simulated on (see :mod:`report.stimulus`); calibration
        units use ``("random",)``; empty: no energy.
    pe_count : int
        Processing elements in the unit (1 for a PE).
    array : tuple or None
        ``(pe, rows, cols)`` for a systolic array (``hw.array``).
    description : str
    """

    name: str
    kind: str
    sources: list
    inputs: list
    outputs: list
    registered_outputs: bool
    has_clock: bool = True
    has_reset: bool = True
    workloads: tuple = ()
    pe_count: int = 1
    array: tuple | None = None
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def top(self):
        return f"{self.name}__bound"


def discover(rtl_dir):
    """Units listed in ``<rtl_dir>/manifest.json``.

    Returns
    -------
    (units, problems) : (list of Unit, list of str)
        ``problems``: why the manifest or a module could not be used.
    """
    path = os.path.join(rtl_dir, "manifest.json")
    if not os.path.isfile(path):
        return [], [f"no {path}: run `make rtl` first"]
    try:
        with open(path) as f:
            manifest = json.load(f)
        modules = manifest["modules"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return [], [f"unreadable manifest {path}: {e}"]
    units, problems = [], []
    for name, entry in modules.items():
        try:
            source = os.path.join(rtl_dir, entry.get("file", f"{name}.v"))
            if not os.path.isfile(source):
                problems.append(f"{name}: {source} missing")
                continue
            ports = entry["ports"]
            header = _module_ports(source, name)
            inputs = [
                (p["name"], int(p["width"]))
                for p in ports
                if p["direction"] == "input" and p["name"] not in ("clk", "rst")
            ]
            outputs = [(p["name"], int(p["width"])) for p in ports if p["direction"] == "output"]
            kind = entry.get("kind", name)
            params = entry.get("parameters", {})
            rows = entry.get("rows", params.get("rows"))
            cols = entry.get("cols", params.get("cols"))
            pe = entry.get("pe", params.get("pe", params.get("kind")))
            # Only arrays run per-PE operand streams; an engine (gemm_engine) also
            # has a pe, rows and cols but is measured as nothing.
            is_array = pe in KINDS and kind in (KINDS[pe].array_module, KINDS[pe].ws_array_module)
            is_array = is_array and bool(rows and cols)
            array = (pe, int(rows), int(cols)) if is_array else None
            dataflow = entry.get("dataflow", "output-stationary") if is_array else None
            workloads = stimulus.ARRAY_WORKLOADS.get(pe, ()) if array else stimulus.PE_WORKLOADS.get(kind, ())
            units.append(
                Unit(
                    name=name,
                    kind=kind,
                    sources=[source],
                    inputs=inputs,
                    outputs=outputs,
                    registered_outputs=int(entry.get("latency") or 0) >= 1,
                    # the manifest lists clk and rst for every module; a combinational one has neither
                    has_clock="clk" in header and any(p["name"] == "clk" for p in ports),
                    has_reset="rst" in header and any(p["name"] == "rst" for p in ports),
                    workloads=workloads,
                    pe_count=int(rows) * int(cols) if array else 1,
                    array=array,
                    description=entry.get("description", ""),
                    extra={
                        "parameters": params,
                        "latency": entry.get("latency"),
                        "dataflow": dataflow,
                        "depth": entry.get("depth"),
                    },
                )
            )
        except (KeyError, TypeError, ValueError) as e:
            problems.append(f"{name}: malformed manifest entry ({e})")
    return units, problems


def _module_ports(path, name):
    """Port names in the header of module ``name`` of a Verilog file (empty if not found)."""
    with open(path) as f:
        text = f.read()
    m = re.search(rf"\bmodule\s+{re.escape(name)}\s*\(([^)]*)\)", text)
    return set(re.findall(r"[\\\w$]+", m.group(1).replace("\\", ""))) if m else set()


_CALIBRATION = {
    "cal_add8": ("8-bit adder (a + b, 9-bit sum)", "assign y = a + b;", 9),
    "cal_mul8": ("8-bit multiplier (a * b, 16-bit product)", "assign y = a * b;", 16),
}


def calibration_units(workdir):
    """The 8-bit adder and multiplier, written as Verilog under ``workdir``."""
    os.makedirs(workdir, exist_ok=True)
    units = []
    for name, (description, body, width) in _CALIBRATION.items():
        path = os.path.join(workdir, f"{name}.v")
        text = f"module {name}(input [7:0] a, input [7:0] b, output [{width - 1}:0] y);\n  {body}\nendmodule\n"
        _write(path, text)
        units.append(
            Unit(
                name=name,
                kind="calibration",
                sources=[path],
                inputs=[("a", 8), ("b", 8)],
                outputs=[("y", width)],
                registered_outputs=False,
                has_clock=False,
                has_reset=False,
                workloads=("random",),
                description=description,
            )
        )
    return units


def _rng(width):
    return f" [{width - 1}:0]" if width > 1 else ""


def boundary_verilog(unit):
    """Verilog of ``<name>__bound``: the unit with registered inputs (and outputs)."""
    ports = ["input clk"] + (["input rst"] if unit.has_reset else [])
    ports += [f"input{_rng(w)} {n}" for n, w in unit.inputs]
    ports += [f"output{_rng(w)} {n}" for n, w in unit.outputs]
    lines = [f"module {unit.top}(", "  " + ",\n  ".join(ports), ");"]
    for n, w in unit.inputs:
        lines.append(f"  reg{_rng(w)} {n}_q;")
    for n, w in unit.outputs:
        lines.append(f"  wire{_rng(w)} {n}_d;")
        if not unit.registered_outputs:
            lines.append(f"  reg{_rng(w)} {n}_q;")
            lines.append(f"  assign {n} = {n}_q;")
        else:
            lines.append(f"  assign {n} = {n}_d;")
    regs = [f"{n}_q <= {n};" for n, _ in unit.inputs]
    if not unit.registered_outputs:
        regs += [f"{n}_q <= {n}_d;" for n, _ in unit.outputs]
    lines.append("  always @(posedge clk) begin")
    lines += [f"    {r}" for r in regs]
    lines.append("  end")
    conns = ([".clk(clk)"] if unit.has_clock else []) + ([".rst(rst)"] if unit.has_reset else [])
    conns += [f".{n}({n}_q)" for n, _ in unit.inputs] + [f".{n}({n}_d)" for n, _ in unit.outputs]
    lines.append(f"  {unit.name} u({', '.join(conns)});")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _write(path, text):
    if os.path.isfile(path):
        with open(path) as f:
            if f.read() == text:
                return
    write_text_atomically(path, text)
