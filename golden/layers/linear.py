"""``nn.Linear`` as a quantized layer: :class:`QLinear`."""

import torch
from torch import nn

from .. import pipeline
from .gemm import _forward, _QuantLayer

__all__ = ["QLinear"]


class QLinear(nn.Linear, _QuantLayer):
    """``nn.Linear`` computed with INT4 weight codes and INT4/UINT4 input codes (see module docstring).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    config : QuantConfig
    input_mode : {"image", "codes", "signed", "auto"}
        ``"image"``: quantize the float input with the INT4 input quantizer;
        ``"codes"``: read the UINT4 codes tagged by the preceding :class:`PACT`
        (a ``RuntimeError`` without them); ``"signed"``: quantize the float
        input with the signed INT4 activation quantizer
        (:func:`golden.formats.quantize_activation`); ``"auto"``: ``"codes"``
        when the input carries them, else ``"signed"`` (what :func:`convert` uses).
    name : str
        Name used in captures and error messages.
    """

    def __init__(self, in_features, out_features, bias=True, *, config, input_mode="codes", name="linear"):
        super().__init__(in_features, out_features, bias=bias)
        self._init_quant(config, input_mode, name)

    @property
    def _codes_dtype(self):
        # int8 codes feed torch._int_mm directly (forward and both backward GEMMs) on the CPU.
        return torch.int8 if pipeline.INT_MM and self.weight.device.type == "cpu" else torch.float32

    def _fwd(self, x_codes, w_codes, x_max):
        xm = x_codes.reshape(-1, x_codes.shape[-1])
        acc = pipeline.forward_gemm(xm, w_codes, x_max, integer=True)
        return acc.reshape(*x_codes.shape[:-1], w_codes.shape[0])

    def _channel_view(self, b, acc):
        return b

    def _matrices(self, x_codes, w_codes, acc):
        xm = x_codes.reshape(-1, x_codes.shape[-1])
        return xm, w_codes, None if acc is None else acc.reshape(-1, acc.shape[-1])

    def _grad_matrix(self, g):
        return g.reshape(-1, g.shape[-1])

    def _dx_from_matrix(self, dxm, x_shape):
        return dxm.reshape(x_shape)

    def _dx(self, g_codes, w_codes, x_codes, fmt):
        gm = self._grad_matrix(g_codes)
        dxm = pipeline.log_int_mm(gm, w_codes, 7, fmt)
        if dxm is None:
            dxm = pipeline.log_bilinear(torch.matmul, gm, w_codes, terms=gm.shape[1], x_max=7, fmt=fmt, sum_dims=(1,))
        return dxm.reshape(x_codes.shape)

    def _dw(self, g_codes, x_codes, w_codes, x_max, fmt):
        gm = self._grad_matrix(g_codes)
        xm = x_codes.reshape(-1, x_codes.shape[-1])
        dwm = pipeline.log_int_mm(gm, xm, x_max, fmt, transpose_g=True)
        if dwm is None:
            dwm = pipeline.log_bilinear(
                lambda a, b: a.t() @ b, gm, xm, terms=gm.shape[0], x_max=x_max, fmt=fmt, sum_dims=(0,)
            )
        return dwm

    def _bias_grad(self, g):
        return g.reshape(-1, g.shape[-1]).sum(0)

    def forward(self, x):
        return _forward(self, x)
