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
``mxfp4``
    OCP Microscaling MXFP4 (SPEC 7): weights, activations and gradients in E2M1
    with an E8M0 scale per 32 elements, blocked along each GEMM's reduction
    axis (each tensor is quantized once per GEMM that reads it), every GEMM
    SPEC 7's block GEMM (:mod:`golden.blocklayers`). First and last weight
    layer FP32; ReLU, pooling and BatchNorm stay float. Options
    (:class:`golden.blocklayers.BlockConfig`): ``grad_rounding=stochastic``,
    ``hadamard=1``, ``weight_tiles=1`` (32 x 32 weight tiles), ``keep_first``,
    ``keep_last``.
``nvfp4``
    NVIDIA's NVFP4 (SPEC 7): E2M1 with an E4M3 scale per 16 elements and an
    FP32 tensor scale, as ``mxfp4`` except that weights are quantized once in
    16 x 16 tiles serving both the forward and the dX GEMM (NVIDIA's
    pretraining recipe; ``weight_tiles=0`` quantizes them per GEMM along 1 x 16
    blocks). Stochastic rounding of gradients and the random Hadamard transform
    of NVIDIA's recipe are the options ``grad_rounding=stochastic`` and
    ``hadamard=1`` (off by default).
"""

import dataclasses

from .blocklayers import BlockConfig, convert_block
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
    quant : QuantConfig, BlockConfig or None
        None: FP32 training.
    """

    name: str
    description: str
    quant: QuantConfig = None

    def with_options(self, options):
        """A copy with fields of its QuantConfig / BlockConfig overridden from ``{"key": "value string"}``."""
        if not options:
            return self
        if self.quant is None:
            raise ValueError(f"recipe {self.name!r} has no options")
        # The number formats define the recipe: they are not options.
        fixed = ("grad_format", "fmt")
        fields = {f.name: f for f in dataclasses.fields(self.quant) if f.name not in fixed}
        changes = {}
        for key, text in options.items():
            if key not in fields:
                valid = ", ".join(fields)
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
    "mxfp4": Recipe(
        "mxfp4", "MXFP4: E2M1, E8M0 scale per 32 along each GEMM's reduction axis", BlockConfig(fmt="mxfp4")
    ),
    "nvfp4": Recipe(
        "nvfp4",
        "NVFP4: E2M1, E4M3 scale per 16 + FP32 tensor scale, 16x16 weight tiles",
        BlockConfig(fmt="nvfp4", weight_tiles=True),
    ),
}


def get_recipe(name, options=None):
    """Recipe by name (unknown names raise ValueError listing the valid ones), with options applied."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid: {', '.join(RECIPES)}")
    return RECIPES[name].with_options(options or {})


def prepare_model(model, recipe):
    """Apply a recipe to a freshly built model (in place; returns it)."""
    if isinstance(recipe.quant, BlockConfig):
        convert_block(model, recipe.quant)
    elif recipe.quant is not None:
        convert(model, recipe.quant)
    return model
