"""The PE-kind registry: every processing-element kind, found by module.

Each module of this package (other than :mod:`hw.kinds.base`) defines one
kind as ``KIND`` (a :class:`~hw.kinds.base.PEKind`) and may define the GEMM it
introduces as ``GEMM`` (a :class:`~hw.kinds.base.GemmType`). This package
imports them all, so adding a kind is adding one module here (and its tests):
``hw.array``, ``hw.units``, ``verify``, ``report``, ``rtl_gen`` and ``boards``
read the kinds from :data:`KINDS` and the GEMMs from :data:`GEMMS` and name
none of them (docs/rtl.md, "Adding a PE kind").
"""

import importlib
import pkgutil

from .base import (
    FPGAFit,
    GemmInputError,
    GemmType,
    IntegerGemm,
    IntegerKind,
    PEKind,
    StandaloneTop,
    check_clock_div,
)

__all__ = [
    "KINDS",
    "GEMMS",
    "TOPS",
    "get_kind",
    "get_gemm",
    "dedicated_kind",
    "default_kind",
    "baseline_kind",
    "PEKind",
    "IntegerKind",
    "GemmType",
    "IntegerGemm",
    "StandaloneTop",
    "check_clock_div",
    "FPGAFit",
    "GemmInputError",
]


def _discover():
    kinds = []
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, PEKind):
            raise TypeError(f"{module.__name__} defines no KIND (a hw.kinds.base.PEKind)")
        if kind.name != info.name:
            raise ValueError(f"{module.__name__} defines kind {kind.name!r}: a kind's module is named after it")
        kinds.append(kind)
    kinds.sort(key=lambda kind: (kind.order, kind.name))
    return {kind.name: kind for kind in kinds}


#: Every kind by name, in listing order (:attr:`PEKind.order`).
KINDS = _discover()

#: The kind of each standalone SPEC section 3 top, by module name (e.g. ``int4_mac``).
TOPS = {kind.standalone.module: kind for kind in KINDS.values() if kind.standalone is not None}

#: Every GEMM type by name, in the order of the kinds that introduce them.
GEMMS = {}
for _kind in KINDS.values():
    for _gemm, _ in _kind.gemms:
        GEMMS.setdefault(_gemm.name, _gemm)
del _kind, _gemm


def get_kind(name):
    """The kind called ``name`` (a :class:`PEKind` is returned as is).

    Raises
    ------
    ValueError
        No such kind (the message lists the known ones).
    """
    if isinstance(name, PEKind):
        return name
    if name not in KINDS:
        raise ValueError(f"unknown PE kind {name!r} (known: {', '.join(KINDS)})")
    return KINDS[name]


def get_gemm(name):
    """The GEMM type called ``name``.

    Raises
    ------
    GemmInputError
        No such GEMM (the message lists the known ones).
    """
    if isinstance(name, GemmType):
        return name
    if name not in GEMMS:
        raise GemmInputError(f"unknown --pe {name!r} (choose from {', '.join(GEMMS)})")
    return GEMMS[name]


def dedicated_kind(gemm):
    """The kind whose own GEMM is ``gemm`` (its dedicated array)."""
    gemm = get_gemm(gemm)
    return next(kind for kind in KINDS.values() if kind.gemm is gemm)


def default_kind():
    """The kind tools build when none is named (the first in listing order)."""
    return next(iter(KINDS.values()))


def baseline_kind():
    """The floating-point baseline the 4-bit kinds are compared with, or None."""
    return next((kind for kind in KINDS.values() if kind.baseline), None)
