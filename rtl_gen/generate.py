"""Verilog and manifest generation for configured designs.

Everything is elaborated in memory first; files are written only when every
design succeeded, each to a temporary name in the output directory and then
renamed, so a failed or interrupted run leaves no partial files.
"""

import json
import pathlib

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

from fourbit.util.files import write_files_atomically
from hw.units import build_unit

__all__ = ["Generated", "port_list", "generate", "write_outputs", "MANIFEST_NAME"]


MANIFEST_NAME = "manifest.json"


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
        text = verilog.convert(component, name=design.name, emit_src=False, strip_internal_attrs=True)
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
        "generator": "fourbit rtl_gen (Amaranth, emit_src=False)",
        "modules": {**(kept_entries or {}), **{g.name: g.entry for g in generated}},
    }
    files = {g.filename: g.verilog for g in generated}
    files[MANIFEST_NAME] = json.dumps(manifest, indent=2) + "\n"
    write_files_atomically(out_dir, files)
    return [out_dir / name for name in files]
