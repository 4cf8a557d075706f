"""The knobs of the 4-bit pipeline: :class:`QuantConfig` (SPEC section 1 defaults)."""

import dataclasses

__all__ = ["QuantConfig", "INPUT_MODES"]

#: Input quantizers of a quantized layer (see :class:`QLinear`).
INPUT_MODES = ("image", "codes", "signed", "auto")


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    """Every knob of the 4-bit pipeline (SPEC section 1 defaults).

    Attributes
    ----------
    grad_format : golden.formats.LogFormat
        Gradient format (radix-4 FP4 by default).
    sawb_c : tuple of float
        SAWB coefficients (c1, c2).
    pact_alpha : float
        Initial PACT clip value.
    tpr : bool
        Two-phase rounding: quantize dY twice (phases ``dx_phase`` / ``dw_phase``);
        otherwise once with ``dx_phase`` for both GEMMs.
    dx_phase, dw_phase : int
        TPR phase feeding the dX and the dW GEMM.
    rounding : str
        ``"nearest"``, ``"log"`` or ``"stochastic"`` (see :mod:`golden.formats.fp4`).
    ties : str
        ``"away"`` or ``"zero"``.
    integer_requant : bool
        Requantize accumulators with (M0, shift) (the hardware); if False, PACT
        quantizes the float output (the host path, for ablation).
    input_quantizer : bool
        Quantize images with the INT4 input quantizer when the first layer is quantized.
    keep_first, keep_last : bool
        Keep the first / last weight layer in FP32 (both True by default, as in the paper).
    """

    grad_format: object = None
    sawb_c: tuple = (12.68, 12.80)
    pact_alpha: float = 4.0
    tpr: bool = True
    dx_phase: int = 0
    dw_phase: int = 1
    rounding: str = "nearest"
    ties: str = "away"
    integer_requant: bool = True
    input_quantizer: bool = True
    keep_first: bool = True
    keep_last: bool = True

    def __post_init__(self):
        from ..formats import FP4_RADIX4, LogFormat

        if self.grad_format is None:
            object.__setattr__(self, "grad_format", FP4_RADIX4)
        if not isinstance(self.grad_format, LogFormat):
            raise TypeError("grad_format must be a golden.formats.LogFormat")
        for name in ("dx_phase", "dw_phase"):
            if getattr(self, name) not in range(self.grad_format.phases):
                raise ValueError(f"{name} must be in 0..{self.grad_format.phases - 1}")
        if not self.pact_alpha > 0:
            raise ValueError("pact_alpha must be > 0")
        if self.rounding not in ("nearest", "log", "stochastic"):
            raise ValueError(f"rounding must be nearest, log or stochastic, not {self.rounding!r}")
        if self.ties not in ("away", "zero"):
            raise ValueError(f"ties must be away or zero, not {self.ties!r}")
