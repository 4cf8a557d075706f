"""Training recipes: which arithmetic a model trains with.

``fp32``
    The FP32 baseline: the model as built.
``ibm4``
    Sun et al. (2020) 4-bit training through the hardware's integer pipeline
    (SPEC sections 1 and 2 defaults): INT4 SAWB weights, PACT UINT4
    activations with integer requantization, INT4 image input quantizer,
    radix-4 FP4 gradients with GradScale and TPR (phase 0 -> dX, phase 1 ->
    dW), round to nearest, ties away, PACT alpha initialized to 4. The first
    and the last weight layer stay FP32, as in the paper; every knob of
    :class:`golden.layers.QuantConfig` can be overridden (``--recipe-opt
    key=value``).
``ibm4-full``
    ``ibm4`` with the first layer quantized too, reading images through the
    INT4 input quantizer (only the classifier stays FP32).
``ibm4-notpr``
    ``ibm4`` with a single gradient quantization (phase 0 for both GEMMs):
    the TPR ablation.
``luq``
    A modern alternative in the spirit of LUQ (Chmiel et al., "Accurate
    Neural Training with 4-bit Matrix Multiplications at Standard Formats",
    ICLR 2023): the same INT4/UINT4 forward, gradients in radix-2 FP4 (1 sign
    bit, 3 exponent bits: levels S * 2^-6 .. S) with unbiased stochastic
    rounding between levels, including stochastic underflow to zero below
    S * 2^-6, from the counter-based generator of :mod:`golden.formats.fp4`; one
    quantization feeds both GEMMs (no TPR). Products are shifts by 0..6 bits.
"""

import dataclasses

from .formats import FP4_RADIX2
from .layers import QuantConfig, convert

__all__ = ["Recipe", "RECIPES", "get_recipe", "prepare_model"]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named training arithmetic.

    Attributes
    ----------
    name : str
    description : str
    quant : QuantConfig or None
        None: FP32 training.
    """

    name: str
    description: str
    quant: QuantConfig = None

    def with_options(self, options):
        """A copy with QuantConfig fields overridden from ``{"key": "value string"}``."""
        if not options:
            return self
        if self.quant is None:
            raise ValueError(f"recipe {self.name!r} has no options")
        fields = {f.name: f for f in dataclasses.fields(QuantConfig)}
        changes = {}
        for key, text in options.items():
            if key not in fields or key == "grad_format":
                valid = ", ".join(k for k in fields if k != "grad_format")
                raise ValueError(f"unknown recipe option {key!r}; valid: {valid}")
            current = getattr(self.quant, key)
            try:
                if isinstance(current, bool):
                    if text.lower() not in ("0", "1", "true", "false"):
                        raise ValueError
                    value = text.lower() in ("1", "true")
                elif isinstance(current, tuple):
                    value = tuple(float(v) for v in text.split(","))
                    if len(value) != len(current):
                        raise ValueError
                else:
                    value = type(current)(text)
            except ValueError:
                raise ValueError(f"recipe option {key}={text!r}: expected a value like {current!r}") from None
            changes[key] = value
        return dataclasses.replace(self, quant=dataclasses.replace(self.quant, **changes))


RECIPES = {
    "fp32": Recipe("fp32", "FP32 baseline"),
    "ibm4": Recipe("ibm4", "INT4 SAWB weights, UINT4 PACT activations, radix-4 FP4 TPR gradients", QuantConfig()),
    "ibm4-full": Recipe(
        "ibm4-full", "ibm4 with the first layer quantized (INT4 input quantizer)", QuantConfig(keep_first=False)
    ),
    "ibm4-notpr": Recipe("ibm4-notpr", "ibm4 without two-phase rounding", QuantConfig(tpr=False)),
    "luq": Recipe(
        "luq",
        "INT4/UINT4 forward, radix-2 FP4 gradients, stochastic rounding and underflow",
        QuantConfig(grad_format=FP4_RADIX2, tpr=False, dx_phase=0, dw_phase=0, rounding="stochastic"),
    ),
}


def get_recipe(name, options=None):
    """Recipe by name (unknown names raise ValueError listing the valid ones), with options applied."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid: {', '.join(RECIPES)}")
    return RECIPES[name].with_options(options or {})


def prepare_model(model, recipe):
    """Apply a recipe to a freshly built model (in place; returns it)."""
    if recipe.quant is not None:
        convert(model, recipe.quant)
    return model
