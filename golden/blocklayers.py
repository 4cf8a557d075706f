"""Layers that train with block-scaled 4-bit GEMMs: the ``mxfp4`` and ``nvfp4`` recipes (SPEC 7).

Every quantized GEMM is SPEC 7's block GEMM (:func:`block_matmul`, bit for bit
:func:`golden.reference.block_gemm` on each matrix): E2M1 codes with block
scales along the GEMM's reduction axis, an exact integer sum inside a block,
one FP32 rounding per block term and FP32 accumulation over the blocks in
ascending order. NVFP4's tensor scales are applied after the GEMM, once per
output: ``y = float32(float64(C) / (g_a * g_b))`` (``g_a * g_b`` is exact in
float64).

The three GEMMs of a weight layer ``Y = X W^T`` (``X``: M x K, ``W``: N x K)
and the axis each operand is blocked along:

============  ==========================  ============================
GEMM          A (blocks along its axis 1)  B (blocks along its axis 0)
============  ==========================  ============================
forward Y     X, along K                   W^T, along K
dX = dY W     dY, along N                  W, along N
dW = dY^T X   dY^T, along M (the batch)    X, along M
============  ==========================  ============================

So each of X, W and dY is quantized twice, once per axis, unless
``weight_tiles``: W is then quantized once in ``bs x bs`` tiles
(:func:`golden.formats.blockfp.block_quantize_tiles`), whose codes and
per-tile scales serve both GEMMs (NVIDIA's 16 x 16 NVFP4 weights). Convolutions
are their im2col GEMM (M = batch x output positions, K = C_in x kh x kw);
col2im's sum of overlapping patches is a host FP32 operation (``F.fold``), as
are bias adds, ReLU, pooling and BatchNorm, which stay the float modules they
are.

Options (:class:`BlockConfig`): ``grad_rounding="stochastic"`` rounds the
gradient operands' E2M1 elements stochastically
(:func:`golden.formats.blockfp.block_quantize_stochastic`, the counter-based
generator of ``luq``), and ``hadamard`` applies a 16-point random Hadamard
transform along the batch axis to both operands of dW before quantizing them
(:func:`hadamard16`).
"""

import collections
import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from .formats.blockfp import (
    BLOCK_FORMATS,
    E2M1,
    MXFP4,
    block_quantize,
    block_quantize_stochastic,
    block_quantize_tiles,
    pow2_f64,
    tile_scales_for_axis,
)
from .formats.fp4 import lowbias32, uniform16
from .formats.fp16 import canonicalize_nan32
from .layers import QConv2d, QLinear, QMatMul
from .layers.convert import _children, _conv2d_args, _mark_fp32
from .layers.gemm import _QuantLayer

__all__ = [
    "BlockConfig",
    "BlockLinear",
    "BlockConv2d",
    "BlockMatMul",
    "block_matmul",
    "block_linear_gemms",
    "hadamard16",
    "convert_block",
    "GRAD_ROUNDING",
]

GRAD_ROUNDING = ("nearest", "stochastic")
#: Salts of the per-use seeds drawn from a layer's backward seed (see :func:`_seeds`).
_SALT_DX, _SALT_DW, _SALT_SIGNS = 0x1, 0x2, 0x3


@dataclasses.dataclass(frozen=True)
class BlockConfig:
    """Knobs of the block-scaled recipes.

    Attributes
    ----------
    fmt : {"mxfp4", "nvfp4"}
    weight_tiles : bool
        Quantize weights once in ``bs x bs`` tiles serving both GEMMs (True for ``nvfp4``, as
        NVIDIA's recipe); otherwise once per GEMM, along its reduction axis.
    grad_rounding : {"nearest", "stochastic"}
        Element rounding of the gradient operands (dY for dX and for dW).
    hadamard : bool
        16-point random Hadamard transform along the batch axis before the dW GEMM.
    keep_first, keep_last : bool
        Keep the first / last weight layer in FP32 (as ``ibm4``).
    """

    fmt: str = "mxfp4"
    weight_tiles: bool = False
    grad_rounding: str = "nearest"
    hadamard: bool = False
    keep_first: bool = True
    keep_last: bool = True

    def __post_init__(self):
        if self.fmt not in BLOCK_FORMATS:
            raise ValueError(f"fmt must be one of {', '.join(BLOCK_FORMATS)}, not {self.fmt!r}")
        if self.grad_rounding not in GRAD_ROUNDING:
            raise ValueError(f"grad_rounding must be one of {', '.join(GRAD_ROUNDING)}, not {self.grad_rounding!r}")


# ---------------------------------------------------------------------------------------------- GEMM

#: ``N = 2 * value`` of every E2M1 code (0x8 is 0), float32.
_N_TABLE = (2 * E2M1.decode(torch.arange(16))).to(torch.float32)


def _int_values(codes):
    """float32 ``N = 2 * value`` of E2M1 codes."""
    return _N_TABLE.to(codes.device)[codes.to(torch.int64)]


def block_matmul(a_codes, a_scales, b_codes, b_scales, fmt):
    """SPEC 7 block GEMM of (batched) matrices: float32 ``C[..., m, n]``; NVFP4 tensor scales not applied.

    ``a_codes``: ``(..., M, K)`` E2M1 codes, ``a_scales``: ``(..., M, ceil(K / bs))``; ``b_codes``:
    ``(..., K, N)``, ``b_scales``: ``(..., ceil(K / bs), N)``; leading dims equal. Each matrix of the
    result equals :func:`golden.reference.block_gemm` bit for bit: the block sums are integer float32
    matmuls (every partial sum is an integer below 2^24, so exact in any order), each term
    ``P / 4 * scale_a * scale_b`` is exact in float64 and rounded once to float32, and the terms
    are added in ascending block order from +0.0.
    """
    bf = BLOCK_FORMATS[fmt]
    bs = bf.block_size
    *lead, m, k = a_codes.shape
    n = b_codes.shape[-1]
    nb = bf.num_blocks(k)
    pad = nb * bs - k
    na = F.pad(_int_values(a_codes), (0, pad)).reshape(*lead, m, nb, bs).transpose(-3, -2)
    nbv = F.pad(_int_values(b_codes), (0, 0, 0, pad)).reshape(*lead, nb, bs, n)
    p = torch.matmul(na, nbv).to(torch.float64)  # (..., nb, M, N), |P| <= 4608
    sa = a_scales.to(torch.int64).transpose(-1, -2).unsqueeze(-1)  # (..., nb, M, 1)
    sb = b_scales.to(torch.int64).unsqueeze(-2)  # (..., nb, 1, N)
    # P * (scale_a / 4) * scale_b: every factor and product is exact in float64 (|P| < 2^13, the scales
    # powers of two or E4M3 values, exponents >= -258), so the order of the products does not matter.
    if bf is MXFP4:
        fa, fb = pow2_f64(sa - 127 - 2), pow2_f64(sb - 127)
    else:
        fa, fb = bf.scale_values(sa) / 4, bf.scale_values(sb)
    terms = p.mul_(fa).mul_(fb).to(torch.float32)
    acc = torch.zeros((*lead, m, n), dtype=torch.float32, device=terms.device)
    for b in range(nb):
        acc += terms[..., b, :, :]  # one round-to-nearest-even per add, ascending b
    return canonicalize_nan32(acc)


def _scaled(c, ga, gb):
    """NVFP4's tensor scales applied once per output: ``float32(float64(c) / (ga * gb))``; MXFP4: ``c``."""
    if ga == 1.0 and gb == 1.0:
        return c
    return (c.to(torch.float64) / (ga * gb)).to(torch.float32)


def hadamard16(x, signs):
    """The 16-point random Hadamard transform along axis 0 of ``x`` (zero-padded to a multiple of 16).

    Each group of 16 rows ``x_g`` becomes ``H x_g`` with ``H = Had16 diag(signs) / 4`` (``Had16``
    Sylvester's +-1 matrix, ``signs`` 16 values +-1): orthogonal, so ``(H a)^T (H b) = a^T b`` and
    the transformed dW GEMM has the same exact value. Returns float64, the padded length.
    """
    m = x.shape[0]
    had = torch.ones(1, 1, dtype=torch.float64)
    for _ in range(4):
        had = torch.cat([torch.cat([had, had], 1), torch.cat([had, -had], 1)], 0)
    h = (had * signs.to(torch.float64)) / 4
    xp = F.pad(x.to(torch.float64), (0, 0, 0, -m % 16)).reshape(-1, 16, x.shape[1])
    return torch.matmul(h, xp).reshape(-1, x.shape[1])


def _hadamard_signs(seed, device):
    """16 signs +-1: bit 15 of ``uniform16(seed, i)``, i = 0..15 (1 -> -1)."""
    return 1.0 - 2.0 * (uniform16(seed, 16, device=device) >> 15).to(torch.float64)


def _seeds(seed):
    """Independent seeds for dY's dX quantization, dY's dW quantization and the Hadamard signs:
    ``lowbias32(seed ^ salt)``."""
    return tuple(lowbias32((seed ^ salt) & 0xFFFFFFFF) for salt in (_SALT_DX, _SALT_DW, _SALT_SIGNS))


def _quantize(v, cfg, axis, seed=None):
    """(codes, scales, g) of ``v`` blocked along ``axis``; stochastic elements when ``seed`` is given."""
    if seed is None:
        return block_quantize(v, cfg.fmt, axis)
    return block_quantize_stochastic(v, cfg.fmt, axis, seed=seed)


def _weight_operands(w, cfg):
    """(fwd B operand, dX B operand), each (codes, scales, g): ``W^T`` along K and ``W`` along N."""
    if cfg.weight_tiles:
        codes, tiles, g = block_quantize_tiles(w, cfg.fmt)
        fwd = (codes.t(), tile_scales_for_axis(tiles, w.shape, 1, cfg.fmt).t(), g)
        return fwd, (codes, tile_scales_for_axis(tiles, w.shape, 0, cfg.fmt), g)
    codes, scales, g = block_quantize(w, cfg.fmt, 1)
    return (codes.t(), scales.t(), g), block_quantize(w, cfg.fmt, 0)


def block_linear_gemms(x, w, grad_y, cfg, seed):
    """The three GEMMs of a block-quantized ``Y = X W^T`` step: ``(y, dx, dw)``, float32 matrices.

    ``x``: M x K, ``w``: N x K, ``grad_y``: M x N (float); ``seed``: the layer's backward seed
    (used by the stochastic rounding and the Hadamard signs). ``grad_y=None`` gives ``(y, None, None)``.
    """
    y, w_dx = _forward_gemm(x, w, cfg)
    if grad_y is None:
        return y, None, None
    dx, dw = _backward_gemms(x, w_dx, grad_y, cfg, seed, need_dx=True, need_dw=True)
    return y, dx, dw


def _forward_gemm(x, w, cfg):
    """``(Y, W's dX operand)``: the forward GEMM of X (along K) and W^T (along K)."""
    xa, xa_s, gx = _quantize(x, cfg, 1)
    (wb, wb_s, gw), w_dx = _weight_operands(w, cfg)
    return _scaled(block_matmul(xa, xa_s, wb, wb_s, cfg.fmt), gx, gw), w_dx


def _backward_gemms(x, w_dx, grad_y, cfg, seed, *, need_dx, need_dw):
    stochastic = cfg.grad_rounding == "stochastic"
    seed_dx, seed_dw, seed_signs = _seeds(seed)
    dx = dw = None
    if need_dx:
        ga, ga_s, gg = _quantize(grad_y, cfg, 1, seed_dx if stochastic else None)
        wd, wd_s, gw = w_dx
        dx = _scaled(block_matmul(ga, ga_s, wd, wd_s, cfg.fmt), gg, gw)
    if need_dw:
        g, xb = grad_y, x
        if cfg.hadamard:
            signs = _hadamard_signs(seed_signs, grad_y.device)
            g, xb = hadamard16(grad_y, signs), hadamard16(x, signs)
        gc, gs, gg = _quantize(g, cfg, 0, seed_dw if stochastic else None)
        xc, xs, gx = _quantize(xb, cfg, 0)
        dw = _scaled(block_matmul(gc.t(), gs.t(), xc, xs, cfg.fmt), gg, gx)
    return dx, dw


class _BlockLinearFn(torch.autograd.Function):
    """``X W^T`` of matrices through the three block GEMMs."""

    @staticmethod
    def forward(ctx, x, weight, layer):
        y, w_dx = _forward_gemm(x.detach(), weight.detach(), layer.config)
        ctx.layer, ctx.w_dx = layer, w_dx
        ctx.save_for_backward(x.detach())
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_y):
        (x,) = ctx.saved_tensors
        layer = ctx.layer
        dx, dw = _backward_gemms(
            x,
            ctx.w_dx,
            grad_y.to(torch.float32),
            layer.config,
            layer._next_seed(),
            need_dx=ctx.needs_input_grad[0],
            need_dw=ctx.needs_input_grad[1],
        )
        ctx.w_dx = None
        return dx, dw, None


class _BlockLayer(_QuantLayer):
    """Shared state of the block layers (the :class:`golden.layers.QLinear` bookkeeping)."""

    def _init_block(self, config, name):
        if not isinstance(config, BlockConfig):
            raise TypeError("config must be a BlockConfig")
        self.config = config
        self.input_mode = "block"
        self.fourbit_name = name
        self.capture = None
        self.inexact_grad_steps = 0
        self.input_paths = collections.Counter()
        self._seed_counter = 0
        self._out_tag = None

    def _check_capture(self):
        if self.capture is not None and self.capture.active:
            raise RuntimeError(f"{self.fourbit_name}: tensor capture does not record block-scaled GEMMs")
        self.input_paths["block"] += 1


class BlockLinear(QLinear, _BlockLayer):
    """``nn.Linear`` whose three GEMMs are SPEC 7 block GEMMs (see the module docstring).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
        Added in FP32 after the GEMM; its gradient is the FP32 sum of dY.
    config : BlockConfig
    name : str
    """

    def __init__(self, in_features, out_features, bias=True, *, config, name="linear"):
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        self._init_block(config, name)

    def forward(self, x):
        self._check_capture()
        y = _BlockLinearFn.apply(x.reshape(-1, x.shape[-1]), self.weight, self)
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


class BlockConv2d(QConv2d, _BlockLayer):
    """``nn.Conv2d`` (groups = 1) as its im2col GEMM through :class:`BlockLinear`'s block GEMMs.

    Parameters are those of ``nn.Conv2d`` (numeric padding only) plus ``config`` and ``name``.
    """

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True, *, config, name="conv"
    ):
        nn.Conv2d.__init__(
            self, in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=bias
        )
        if isinstance(self.padding, str):
            raise ValueError("BlockConv2d needs numeric padding")
        self._init_block(config, name)

    def forward(self, x):
        if x.dim() != 4:
            raise ValueError(f"BlockConv2d {self.fourbit_name!r} expects a 4-D input, got shape {tuple(x.shape)}")
        self._check_capture()
        cols = F.unfold(x, **self._unfold_args())  # B x K x L
        b, k, positions = cols.shape
        xm = cols.transpose(1, 2).reshape(-1, k)
        ym = _BlockLinearFn.apply(xm, self.weight.reshape(self.out_channels, -1), self)
        h = (x.shape[2] + 2 * self.padding[0] - self.dilation[0] * (self.kernel_size[0] - 1) - 1) // self.stride[0] + 1
        y = ym.reshape(b, positions, self.out_channels).transpose(1, 2).reshape(b, self.out_channels, h, -1)
        return y if self.bias is None else y + self.bias.reshape(1, -1, 1, 1)


class _BlockMatMulFn(torch.autograd.Function):
    """``a @ b`` of two activations: forward and both backward products as block GEMMs."""

    @staticmethod
    def forward(ctx, a, b, layer):
        cfg = layer.config
        ac, as_, ga = _quantize(a.detach(), cfg, -1)
        bc, bs_, gb = _quantize(b.detach(), cfg, -2)
        ctx.layer = layer
        ctx.save_for_backward(a.detach(), b.detach())
        return _scaled(block_matmul(ac, as_, bc, bs_, cfg.fmt), ga, gb).to(a.dtype)

    @staticmethod
    def backward(ctx, grad_y):
        a, b = ctx.saved_tensors
        layer = ctx.layer
        cfg = layer.config
        stochastic = cfg.grad_rounding == "stochastic"
        seed_da, seed_db, _ = _seeds(layer._next_seed())
        g = grad_y.to(torch.float32)
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            # dA = dY B^T: reduces over N (dY along -1, B^T along -2 = B along -1).
            gc, gs, gg = _quantize(g, cfg, -1, seed_da if stochastic else None)
            bc, bs_, gb = _quantize(b, cfg, -1)
            grad_a = _scaled(block_matmul(gc, gs, bc.transpose(-1, -2), bs_.transpose(-1, -2), cfg.fmt), gg, gb)
        if ctx.needs_input_grad[1]:
            # dB = A^T dY: reduces over M (A along -2, dY along -2).
            ac, as_, ga = _quantize(a, cfg, -2)
            gc, gs, gg = _quantize(g, cfg, -2, seed_db if stochastic else None)
            grad_b = _scaled(block_matmul(ac.transpose(-1, -2), as_.transpose(-1, -2), gc, gs, cfg.fmt), ga, gg)
        return grad_a, grad_b, None


class BlockMatMul(QMatMul, _BlockLayer):
    """Product ``a @ b`` of two activations (attention's Q K^T and A V) as block GEMMs.

    Both operands are block-quantized along the product's reduction axis (the
    operand kinds of :class:`golden.models.MatMul` do not matter: a block scale
    covers probabilities as any other value); ``dA = dY B^T`` and ``dB = A^T dY``
    re-quantize each operand along their own reduction axis. Leading (batch,
    head) dims must be equal; one NVFP4 tensor scale covers the whole batch.

    Parameters
    ----------
    config : BlockConfig
    a_kind, b_kind : str
        Kept for listing only.
    name : str
    """

    def __init__(self, *, config, a_kind="signed", b_kind="signed", name="matmul"):
        nn.Module.__init__(self)
        self._init_block(config, name)
        self.a_kind, self.b_kind = a_kind, b_kind

    def forward(self, a, b):
        if a.dim() < 2 or b.dim() < 2 or a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-2]:
            raise ValueError(
                f"BlockMatMul {self.fourbit_name!r}: shapes {tuple(a.shape)} @ {tuple(b.shape)} "
                "are not batched matrices"
            )
        self._check_capture()
        return _BlockMatMulFn.apply(a, b, self)


def convert_block(model, config):
    """Swap ``model``'s ``nn.Linear`` / ``nn.Conv2d`` / :class:`golden.models.MatMul` for block layers.

    In place; returns ``model``. The first / last weight layer stay FP32 per
    ``config.keep_first`` / ``keep_last`` (as :func:`golden.layers.convert`;
    ``nn.Embedding`` counts as a weight layer and is never quantized). ReLU,
    pooling, BatchNorm and every other module stay as they are (float).
    """
    from .models import MatMul

    if not isinstance(config, BlockConfig):
        raise TypeError("config must be a BlockConfig")
    weight_types = (nn.Linear, nn.Conv2d, nn.Embedding)
    weights = [name for _, _, name, m in _children(model, "") if isinstance(m, weight_types)]
    if not any(isinstance(m, (nn.Linear, nn.Conv2d)) for _, _, _, m in _children(model, "")):
        raise ValueError("model has no nn.Linear or nn.Conv2d layer to quantize")
    keep = {}
    if config.keep_last:
        keep[weights[-1]] = "last weight layer (keep_last)"
    if config.keep_first:
        keep[weights[0]] = "first weight layer (keep_first)"
    for parent, child_name, name, child in list(_children(model, "")):
        if isinstance(child, (nn.Linear, nn.Conv2d, MatMul)) and name in keep:
            _mark_fp32(child, keep[name])
            continue
        if isinstance(child, nn.Linear):
            new = BlockLinear(child.in_features, child.out_features, child.bias is not None, config=config, name=name)
        elif isinstance(child, nn.Conv2d):
            new = BlockConv2d(*_conv2d_args(child, name), config=config, name=name)
        elif isinstance(child, MatMul):
            setattr(parent, child_name, BlockMatMul(config=config, a_kind=child.a_kind, b_kind=child.b_kind, name=name))
            continue
        else:
            continue
        new.load_state_dict(child.state_dict())
        new.to(device=child.weight.device, dtype=child.weight.dtype)
        setattr(parent, child_name, new)
    return model
