"""The registry of generatable units: kind -> Amaranth component and its parameters.

A design in a config names a ``kind`` from :data:`UNITS` and sets some of its
parameters; :func:`build_unit` checks them and returns the component. Later
units (arrays, the train PE) register here too.
"""

import dataclasses

from boards.engine import GemmEngine
from hw import FP16MAC, Int4MAC, LogMAC
from hw.array import SystolicArray
from hw.datapath import TrainDatapath
from hw.train_pe import TrainMAC

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


def _engine_factory(*, pe, **params):
    """Constructor of the :class:`boards.engine.GemmEngine` around an array of ``pe``."""
    return GemmEngine(kind=pe, **params)


def _array_factory(kind):
    """Constructor of the :class:`hw.array.SystolicArray` of one PE kind."""

    def factory(**params):
        return SystolicArray(kind=kind, **params)

    return factory


UNITS = {
    unit.kind: unit
    for unit in (
        Unit(
            "int4_mac",
            Int4MAC,
            {"acc_width": 24, "pipeline": 0, "min_k": 1},
            "INT4/UINT4 x INT4 multiply-accumulate, wrapping signed accumulator",
        ),
        Unit(
            "log_mac",
            LogMAC,
            {"acc_width": 32, "pipeline": 0, "min_k": 1},
            "INT4/UINT4 x radix-4 FP4 shift-accumulate, wrapping signed accumulator",
        ),
        Unit("fp16_mac", FP16MAC, {"pipeline": 0}, "binary16 x binary16 -> binary32 IEEE MAC (round to nearest even)"),
        Unit(
            "train_mac",
            TrainMAC,
            {"acc_width": 32, "pipeline": 0, "min_k": 1},
            "unified training PE: mode 0 INT4/UINT4 x INT4/UINT4, mode 1 FP4 x INT4/UINT4, shared accumulator",
        ),
        Unit(
            "int4_array",
            _array_factory("int4"),
            {"rows": 4, "cols": 4, "acc_width": 24, "max_k": 4096},
            "output-stationary R x C array of INT4/UINT4 x INT4/UINT4 MACs",
        ),
        Unit(
            "log_array",
            _array_factory("log"),
            {"rows": 4, "cols": 4, "acc_width": 32, "max_k": 4096},
            "output-stationary R x C array of FP4 x INT4/UINT4 shift-accumulate PEs",
        ),
        Unit(
            "fp16_array",
            _array_factory("fp16"),
            {"rows": 4, "cols": 4},
            "output-stationary R x C array of FP16 x FP16 -> FP32 MACs (ascending k)",
        ),
        Unit(
            "train_array",
            _array_factory("train"),
            {"rows": 4, "cols": 4, "acc_width": 32, "max_k": 4096},
            "output-stationary R x C array of unified training PEs (INT4 forward / FP4 backward by `mode`)",
        ),
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
        Unit(
            "gemm_engine",
            _engine_factory,
            {"pe": "int4", "rows": 4, "cols": 4, "divisor": 104, "depth": 256},
            "UART GEMM engine of the board tops (boards/, docs/boards.md): 8N1 UART (divisor = clock / baud), "
            "block-RAM operand and result buffers, one systolic array of `pe`",
        ),
    )
}


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
        raise ValueError(f"{kind}: unknown parameter(s) {', '.join(unknown)} (known: {', '.join(unit.defaults)})")
    merged = {**unit.defaults, **params}
    return unit, merged, unit.factory(**merged)
