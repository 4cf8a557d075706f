"""The catalog of generatable units: unit kind -> Amaranth component and its parameters.

Every PE kind of the registry (:mod:`hw.kinds`) contributes its standalone
SPEC section 3 top (``<module>``, e.g. ``int4_mac``) where it has one and its
systolic arrays, output-stationary (``<kind>_array``, :mod:`hw.array`) and
weight-stationary (``<kind>_ws_array``, :mod:`hw.ws_array`); the training datapath and the board tops'
UART GEMM engine complete the catalog. A design in an ``rtl_gen`` config
names a unit kind from :data:`UNITS` and sets some of its parameters;
:func:`build_unit` checks them and returns the component.
"""

import dataclasses
import functools

from .array import SystolicArray
from .datapath import FP4Encoder, FP16Post, GradPost, Requantizer, TrainDatapath
from .engine import GemmEngine
from .fpga_array import LeanSystolicArray
from .kinds import KINDS, default_kind
from .pe import ProcessingElement
from .ws_array import WeightStationaryArray, default_depth

__all__ = ["Unit", "UNITS", "ARRAY_DEFAULTS", "build_unit"]

#: Default size and declared largest K of the arrays in the catalog.
ARRAY_DEFAULTS = {"rows": 4, "cols": 4, "max_k": 4096}


@dataclasses.dataclass(frozen=True)
class Unit:
    """A kind of generatable module.

    Parameters
    ----------
    kind : str
        Catalog key (also the default module name).
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


def _array_defaults(kind):
    if kind.is_float:
        return {"rows": ARRAY_DEFAULTS["rows"], "cols": ARRAY_DEFAULTS["cols"], "gated": True, "zero_hold": True}
    return {
        "rows": ARRAY_DEFAULTS["rows"],
        "cols": ARRAY_DEFAULTS["cols"],
        "acc_width": kind.lean_acc_width(ARRAY_DEFAULTS["max_k"]),
        "max_k": ARRAY_DEFAULTS["max_k"],
        "gated": True,
        "zero_hold": True,
    }


def _ws_array_defaults(kind):
    defaults = _array_defaults(kind)
    defaults.pop("gated")  # the lean register option is the output-stationary array's
    defaults["zero_hold"] = False  # not measured on the weight-stationary arrays: off until it is
    rows, cols = defaults.pop("rows"), defaults.pop("cols")
    return {"rows": rows, "cols": cols, "depth": default_depth(rows), **defaults}


def _engine_factory(*, pe, **params):
    """Constructor of the :class:`hw.engine.GemmEngine` around an array of ``pe``."""
    return GemmEngine(kind=pe, **params)


def _catalog():
    kinds = list(KINDS.values())
    standalone = [
        Unit(
            kind.standalone.module,
            functools.partial(ProcessingElement, kind=kind),
            dict(kind.standalone.defaults),
            kind.standalone.description,
        )
        for kind in kinds
        if kind.standalone is not None
    ]
    arrays = [
        Unit(
            kind.array_module,
            functools.partial(SystolicArray, kind=kind),
            _array_defaults(kind),
            kind.array_description,
        )
        for kind in kinds
    ]
    ws_arrays = [
        Unit(
            kind.ws_array_module,
            functools.partial(WeightStationaryArray, kind=kind),
            _ws_array_defaults(kind),
            kind.ws_array_description,
        )
        for kind in kinds
        if kind.weight_stationary
    ]
    lean_arrays = [
        Unit(
            kind.lean_array_module,
            functools.partial(LeanSystolicArray, kind=kind),
            {
                "rows": ARRAY_DEFAULTS["rows"],
                "cols": ARRAY_DEFAULTS["cols"],
                "acc_width": kind.lean_acc_width(ARRAY_DEFAULTS["max_k"]),
                "max_k": ARRAY_DEFAULTS["max_k"],
            },
            f"lean FPGA output-stationary R x C array of {kind.name} PEs (hw/fpga_array.py): "
            "mode logic at the edges, row/column correction sums, product register",
        )
        for kind in kinds
        if kind.fpga_lean
    ]
    others = [
        Unit(
            "train_datapath",
            TrainDatapath,
            {
                "rows": 4,
                "cols": 4,
                "k_depth": 256,
                "grad_depth": 1024,
                "mask_depth": 1024,
                "acc_width": 32,
                "grad_width": 48,
            },
            "training datapath of FC layers: train array, operand buffers, requantizers, ST mask, amax, "
            "FP4 TPR encoder, command FSM (docs/datapath.md)",
        ),
        # The datapath's per-element units alone, and the FP16 baseline's counterpart,
        # which the report's training-step energy measures (docs/report.md).
        Unit(
            "requantizer",
            Requantizer,
            {"total_width": 40},
            "the datapath's integer requantizer alone: accumulator + bias -> UINT4 code and PACT masks",
        ),
        Unit(
            "fp4_encoder",
            FP4Encoder,
            {"value_width": 48},
            "the datapath's GradScale exponent and two-phase radix-4 FP4 encoder alone (one gradient word)",
        ),
        Unit(
            "grad_post",
            GradPost,
            {"value_width": 40, "amax_width": 48},
            "the datapath's POST_GRAD on one element alone: straight-through mask, amax register",
        ),
        Unit(
            "fp16_post",
            FP16Post,
            {},
            "FP16 baseline's element post-operation: PACT clamp (forward) or mask (backward), binary32 -> binary16",
        ),
        Unit(
            "gemm_engine",
            _engine_factory,
            {"pe": default_kind().name, "rows": 4, "cols": 4, "divisor": 104, "depth": 256},
            "UART GEMM engine of the board tops (boards/, docs/boards.md): 8N1 UART (divisor = clock / baud), "
            "block-RAM operand and result buffers, one systolic array of `pe`",
        ),
    ]
    return {unit.kind: unit for unit in standalone + arrays + ws_arrays + lean_arrays + others}


#: Every unit kind by name: standalone PEs, arrays, the datapath, the engine.
UNITS = _catalog()


def build_unit(kind, params):
    """The component of ``kind`` with ``params`` over its defaults.

    Returns
    -------
    (Unit, dict, Component)
        The unit, its parameters (defaults included) and the component.

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
        raise ValueError(f"{kind}: unknown parameter(s) {', '.join(unknown)} (known: {', '.join(unit.defaults)})")
    merged = {**unit.defaults, **params}
    return unit, merged, unit.factory(**merged)
