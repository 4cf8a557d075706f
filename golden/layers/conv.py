"""``nn.Conv2d`` as a quantized layer: :class:`QConv2d` (exact integer convolutions, im2col GEMMs in captures)."""

import torch
import torch.nn.functional as F
from torch import nn

from .. import pipeline
from .gemm import _forward, _QuantLayer

__all__ = ["QConv2d"]


class QConv2d(nn.Conv2d, _QuantLayer):
    """``nn.Conv2d`` (groups = 1) computed as exact integer GEMMs of INT4/UINT4 codes.

    The three GEMMs run as PyTorch's own convolution kernels on float tensors
    of integers, each proven exact by the bounds of
    :func:`golden.pipeline.log_bilinear` (a convolution is a sum of at most
    ``terms`` products per output, like the im2col GEMM it equals); captures
    record the im2col GEMMs and check them against these results.

    Parameters are those of ``nn.Conv2d`` (numeric padding only) plus
    ``config``, ``input_mode`` and ``name`` as in :class:`QLinear`.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        bias=True,
        *,
        config,
        input_mode="codes",
        name="conv",
    ):
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=bias
        )
        if isinstance(self.padding, str):
            raise ValueError("QConv2d needs numeric padding")
        self._init_quant(config, input_mode, name)

    def _unfold_args(self):
        return dict(kernel_size=self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)

    def _conv_args(self):
        return (list(self.stride), list(self.padding), list(self.dilation), False, [0, 0], 1)

    def _fwd(self, x_codes, w_codes, x_max):
        terms = w_codes[0].numel()
        if terms * x_max * 7 >= pipeline.FLOAT32_EXACT:
            raise OverflowError(f"{self.fourbit_name}: forward GEMM bound exceeds 2^24")
        return F.conv2d(x_codes, w_codes, None, self.stride, self.padding, self.dilation)

    def _channel_view(self, b, acc):
        return b.reshape(1, -1, 1, 1)

    def _matrices(self, x_codes, w_codes, acc):
        cols = F.unfold(x_codes, **self._unfold_args())  # B x K x L
        xm = cols.transpose(1, 2).reshape(-1, cols.shape[1])  # (B*L) x K
        return xm, w_codes.reshape(w_codes.shape[0], -1), None if acc is None else self._grad_matrix(acc)

    def _grad_matrix(self, g):
        return g.reshape(g.shape[0], g.shape[1], -1).transpose(1, 2).reshape(-1, g.shape[1])

    def _dx_from_matrix(self, dxm, x_shape):
        b = x_shape[0]
        cols = dxm.reshape(b, -1, dxm.shape[-1]).transpose(1, 2)
        # col2im sums overlapping patches: exact integers in float64.
        return F.fold(cols.to(torch.float64), x_shape[2:], **self._unfold_args())

    def _dx(self, g_codes, w_codes, x_codes, fmt):
        terms = w_codes.shape[0] * w_codes.shape[2] * w_codes.shape[3]

        def op(m, w):
            like = torch.empty((), dtype=m.dtype, device=m.device).expand(x_codes.shape)
            return torch.ops.aten.convolution_backward(
                m, like, w.to(m.dtype), None, *self._conv_args(), [True, False, False]
            )[0]

        # An input gradient sums codes of one image (a window of them): sum_dims (1, 2, 3).
        return pipeline.log_bilinear(op, g_codes, w_codes, terms=terms, x_max=7, fmt=fmt, sum_dims=(1, 2, 3))

    def _dw(self, g_codes, x_codes, w_codes, x_max, fmt):
        terms = g_codes.shape[0] * g_codes.shape[2] * g_codes.shape[3]

        # Channels-last operands: the weight-gradient kernel is about 2x faster on CPU, and the
        # exact integer result does not depend on the layout. The codes go in as NHWC, so that the
        # multiplier gathers write channels-last memory directly; the input codes become
        # channels-last float32 in one pass (log_bilinear keeps a float32 x as it is).
        x_cl = x_codes.to(torch.float32, memory_format=torch.channels_last)

        def op(m, x):
            like = torch.empty((), dtype=m.dtype, device=m.device).expand(w_codes.shape)
            return torch.ops.aten.convolution_backward(
                m.permute(0, 3, 1, 2), x.to(m.dtype), like, None, *self._conv_args(), [False, True, False]
            )[1].contiguous()

        g_nhwc = g_codes.permute(0, 2, 3, 1).contiguous()
        return pipeline.log_bilinear(op, g_nhwc, x_cl, terms=terms, x_max=x_max, fmt=fmt, sum_dims=(0, 1, 2))

    def _bias_grad(self, g):
        return g.sum((0, 2, 3))

    def forward(self, x):
        if x.dim() != 4:
            raise ValueError(f"QConv2d {self.fourbit_name!r} expects a 4-D input, got shape {tuple(x.shape)}")
        return _forward(self, x)
