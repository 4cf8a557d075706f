"""The registry of generatable units: kind -> Amaranth component and its parameters.

A design in a config names a ``kind`` from :data:`UNITS` and sets some of its
parameters; :func:`build_unit` checks them and returns the component. Later
units (arrays, the train PE) register here too.
"""

import dataclasses

from hw import FP16MAC, Int4MAC, LogMAC


__all__ = ["Unit", "UNITS", "build_unit"]


@dataclasses.dataclass(frozen=True)
class Unit:
    """A kind of generatable module.

    Parameters
    ----------
    kind : str
        Registry key (also the default module name).
    factory : callable
        Keyword-only constructor of the :class:`~amaranth.lib.wiring.Component`.
    defaults : dict
        Every parameter with its default value (the only accepted keys).
    description : str
        One line for ``--list`` and the manifest.
    """

    kind: str
    factory: object
    defaults: dict
    description: str

    def max_k(self, component):
        """Largest K with no accumulator overflow, or None (floating point)."""
        return getattr(component, "max_k", None)


UNITS = {unit.kind: unit for unit in (
    Unit("int4_mac", Int4MAC, {"acc_width": 24, "pipeline": 0, "min_k": 1},
         "INT4/UINT4 x INT4 multiply-accumulate, wrapping signed accumulator"),
    Unit("log_mac", LogMAC, {"acc_width": 32, "pipeline": 0, "min_k": 1},
         "INT4/UINT4 x radix-4 FP4 shift-accumulate, wrapping signed accumulator"),
    Unit("fp16_mac", FP16MAC, {"pipeline": 0},
         "binary16 x binary16 -> binary32 IEEE MAC (round to nearest even)"),
)}


def build_unit(kind, params):
    """The component of ``kind`` with ``params`` over its defaults.

    Raises
    ------
    ValueError
        Unknown kind or parameter, or a parameter value the component rejects.
    TypeError
        A parameter of the wrong type.
    """
    if kind not in UNITS:
        raise ValueError(f"unknown unit kind {kind!r} (known: {', '.join(sorted(UNITS))})")
    unit = UNITS[kind]
    unknown = sorted(set(params) - set(unit.defaults))
    if unknown:
        raise ValueError(f"{kind}: unknown parameter(s) {', '.join(unknown)} "
                         f"(known: {', '.join(unit.defaults)})")
    merged = {**unit.defaults, **params}
    return unit, merged, unit.factory(**merged)
