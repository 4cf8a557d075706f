"""Hardware-in-the-loop training of a quantized MLP: the host side, and the golden twin.

The host keeps the scalars and the FP32 master weights (SPEC section 2) and
runs exactly the golden pipeline's host functions: SAWB weight quantization
(:func:`golden.pipeline.quantize_weight_sawb`), bias codes, the (M0, shift)
derivation (:func:`golden.requant.requant_params`), gradient units
(:func:`golden.pipeline.grad_unit`), the loss, autograd-equivalent float
glue and the optimizer. Every tensor operation of SPEC section 2 (the three
GEMMs of each layer, requantization with ReLU/PACT clamp and masks, amax
reduction and FP4 TPR encoding of gradients) runs on the simulated datapath.

The golden twin is :mod:`golden` itself: the same MLP converted with
:func:`golden.layers.convert` (every weight layer quantized) and trained by
autograd, from the same initial state with the same optimizer and batches.

Loss gradient entry: the gradient of the logits is a float32 tensor (unit 1).
The host writes it to the gradient memory as fixed point with ``F = 45``
fraction bits, rounded to odd (truncate, then set the last bit if anything
was cut off). Round-to-odd on a grid twice as fine as the coarsest one that
matters preserves every compare the quantizer makes (``2^k >= amax`` and the
level boundaries, all multiples of ``2^(k-14)``), so the hardware's integer
GradScale and codes equal the golden float ones whenever ``amax >= 2^-30``
(checked; ``|v| <= 1`` holds for a softmax cross-entropy gradient).
"""

import copy
import math

import torch
import torch.nn.functional as F

from golden import pipeline
from golden.formats import quantize_input
from golden.layers import PACT, QLinear, QuantConfig, convert
from golden.models import MLP
from golden.requant import QMAX, requant_params
from hw.datapath.top import POST_GRAD, POST_MASK, POST_NONE
from hw.kinds.train import MODE_INT, MODE_LOG

__all__ = [
    "LOSS_FRACTION_BITS",
    "COSIM_CONFIG",
    "build_models",
    "loss_gradient_fixed",
    "HostTrainer",
    "GoldenTrainer",
    "same_bits",
]

#: Fraction bits of the loss gradient's fixed-point entry into the gradient memory.
LOSS_FRACTION_BITS = 45
#: Every weight layer quantized: each GEMM of the network runs on the datapath.
COSIM_CONFIG = QuantConfig(keep_first=False, keep_last=False)


def build_models(*, n_in, hidden, n_out, depth=1, seed=0):
    """The golden MLP (quantized) and an identical copy for the host (master weights)."""
    torch.manual_seed(seed)
    model = convert(MLP(input_shape=(n_in,), num_classes=n_out, hidden=hidden, depth=depth), COSIM_CONFIG)
    return model, copy.deepcopy(model)


def _make_optimizer(model, lr, momentum, weight_decay, total_steps):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / max(total_steps, 1)))
    )
    return opt, sched


def same_bits(a, b):
    """True when two models' parameters are identical bit for bit."""
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return pa.keys() == pb.keys() and all(
        pa[n].dtype == pb[n].dtype and torch.equal(pa[n].detach().view(torch.int32), pb[n].detach().view(torch.int32))
        for n in pa
    )


class GoldenTrainer:
    """Pure-software training of the golden model (:mod:`golden.layers` under autograd)."""

    def __init__(self, model, *, lr, momentum, weight_decay, total_steps):
        self.model = model
        self.opt, self.sched = _make_optimizer(model, lr, momentum, weight_decay, total_steps)

    def step(self, xb, yb):
        out = self.model(xb)
        loss = F.cross_entropy(out, yb)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        return float(loss.detach())


def loss_gradient_fixed(g):
    """Float32 logit gradients -> signed fixed-point ints (``F`` fraction bits, round to odd), as Python ints."""
    v = g.detach().to(torch.float64).reshape(-1)
    if v.numel() and float(v.abs().max()) > 1.0:
        raise ValueError("loss gradient outside [-1, 1]: not representable in the gradient memory")
    amax = float(v.abs().max()) if v.numel() else 0.0
    if 0.0 < amax < 2.0**-30:
        raise ValueError(f"loss gradient amax {amax!r} below 2^-30: the fixed-point entry would not be exact")
    scaled = v.abs() * 2.0**LOSS_FRACTION_BITS  # exact: a power-of-two scaling
    floor = torch.floor(scaled)
    odd = floor.to(torch.int64) | (scaled != floor).to(torch.int64)
    return (torch.where(v < 0, -odd, odd)).tolist()


class HostTrainer:
    """The host of hardware-in-the-loop training: master weights, scalars, loss, optimizer.

    Parameters
    ----------
    model : nn.Sequential
        Converted MLP (Flatten, QLinear, PACT, ..., QLinear) holding the master weights.
    datapath : verify.cosim.remote.RemoteDatapath
        The simulated datapath (``gemm``, ``clear_amax``, ``load_grad``, ``encode``, ``geometry``).
    lr, momentum, weight_decay, total_steps
        Optimizer and cosine schedule (as :func:`golden.train.train`).
    """

    def __init__(self, model, datapath, *, lr, momentum, weight_decay, total_steps):
        self.model, self.dp = model, datapath
        self.cfg = COSIM_CONFIG
        mods = [mod for mod in model.modules() if isinstance(mod, (QLinear, PACT))]
        self.layers = [mod for mod in mods if isinstance(mod, QLinear)]
        self.pacts = [mod for mod in mods if isinstance(mod, PACT)]
        if len(self.pacts) != len(self.layers) - 1:
            raise ValueError("HostTrainer expects an MLP: QLinear (PACT QLinear)*")
        self.opt, self.sched = _make_optimizer(model, lr, momentum, weight_decay, total_steps)

    def check_shapes(self, batch, geometry=None):
        """ValueError (with the datapath's limits) unless a batch of this size fits the datapath
        (``geometry``, default: the datapath's)."""
        g = geometry or self.dp.geometry
        mask_end = 0
        for i, layer in enumerate(self.layers):
            name = layer.fourbit_name
            n, k = layer.out_features, layer.in_features
            g.check_gemm(f"{name} forward", batch, k, n)
            g.check_gemm(f"{name} dW", n, batch, k)
            g.check_grad(f"{name} output gradient", batch * n)
            if i > 0:
                g.check_gemm(f"{name} dX", batch, n, k)
            if i + 1 < len(self.layers):
                mask_end += batch * n
        g.check_mask("hidden activations", mask_end)

    def _forward(self, xb):
        """The forward pass through the datapath: ``(logits, saved tensors per layer, [GemmStats...])``."""
        dp, cfg = self.dp, self.cfg
        batch = xb.shape[0]
        self.check_shapes(batch)
        stats = []
        x = xb.reshape(batch, -1)
        x_codes = quantize_input(x.detach()).to(torch.float32)
        x_step, x_signed = 1.0 / 15, True
        saved, mask_base = [], 0
        logits = None
        for i, layer in enumerate(self.layers):
            w_codes, w_step = pipeline.quantize_weight_sawb(layer.weight, cfg.sawb_c)
            unit = x_step * w_step
            b_codes = pipeline.bias_codes(layer.bias, unit)
            n, _k = w_codes.shape
            name = f"{layer.fourbit_name}.fwd"
            args = dict(mode=MODE_INT, a_signed=x_signed, b_signed=True, bias=b_codes.to(torch.int64).numpy())
            if i + 1 < len(self.layers):
                pact = self.pacts[i]
                alpha = float(pact.alpha.detach())
                if not alpha > 0:
                    raise FloatingPointError(f"PACT {pact.fourbit_name!r}: alpha became {alpha}; must stay > 0")
                step = alpha / QMAX
                m0, shift = requant_params(unit / step)
                (total, codes, inside, sat), st = dp.gemm(
                    name,
                    x_codes.numpy(),
                    w_codes.t().numpy(),
                    post=POST_MASK,
                    m0=m0,
                    shift=shift,
                    base=mask_base,
                    stride=n,
                    want_codes=True,
                    **args,
                )
                saved.append(
                    dict(
                        x_codes=x_codes,
                        x_step=x_step,
                        x_signed=x_signed,
                        w_codes=w_codes,
                        w_step=w_step,
                        inside=torch.from_numpy(inside),
                        saturated=torch.from_numpy(sat),
                        mask_base=mask_base,
                    )
                )
                stats.append(st)
                mask_base += batch * n
                x_codes, x_step, x_signed = torch.from_numpy(codes).to(torch.float32), step, False
            else:
                total, st = dp.gemm(name, x_codes.numpy(), w_codes.t().numpy(), **args)
                stats.append(st)
                saved.append(dict(x_codes=x_codes, x_step=x_step, x_signed=x_signed, w_codes=w_codes, w_step=w_step))
                logits = (torch.from_numpy(total).to(torch.float64) * unit).to(torch.float32)
        return logits, saved, stats

    def evaluate(self, x, y, batch):
        """Test accuracy with every forward GEMM and requantization on the datapath: ``(correct, total)``."""
        correct = 0
        with torch.no_grad():
            for lo in range(0, len(y), batch):
                logits, _, _ = self._forward(x[lo : lo + batch])
                correct += int((logits.argmax(1) == y[lo : lo + batch]).sum())
        return correct, len(y)

    def step(self, xb, yb):
        """One training step through the datapath; returns ``(loss, [GemmStats...], encode cycles)``."""
        dp, cfg, fmt = self.dp, self.cfg, self.cfg.grad_format
        batch = xb.shape[0]
        logits, saved, stats = self._forward(xb)
        encode_cycles = 0
        # ---- loss (host) ----
        logits.requires_grad_(True)
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        grad_y = logits.grad
        self.opt.zero_grad(set_to_none=True)
        # ---- backward ----
        phases = (cfg.dx_phase, cfg.dw_phase) if cfg.tpr else (cfg.dx_phase, cfg.dx_phase)
        unit_g, count = 1.0, grad_y.numel()
        dp.clear_amax()
        dp.load_grad(loss_gradient_fixed(grad_y))
        from_loss = True  # the gradient memory holds the loss gradient in fixed point (unit 2^-F)
        for i in reversed(range(len(self.layers))):
            layer, s = self.layers[i], saved[i]
            c0, c1, k_hw, amax, cyc = dp.encode(count)
            encode_cycles += cyc
            if amax == 0:
                scale = float(unit_g)
            elif from_loss:
                scale = math.ldexp(1.0, k_hw - LOSS_FRACTION_BITS)
            else:
                scale = math.ldexp(float(unit_g), k_hw)
            n = layer.out_features
            codes = {0: c0.reshape(batch, n), 1: c1.reshape(batch, n)}
            g0, g1 = codes[phases[0]], codes[phases[1]]
            grad_x = None
            if i > 0:
                below = saved[i - 1]
                dp.clear_amax()
                dx, st = dp.gemm(
                    f"{layer.fourbit_name}.dx",
                    g0,
                    s["w_codes"].numpy(),
                    mode=MODE_LOG,
                    a_signed=False,
                    b_signed=True,
                    post=POST_GRAD,
                    base=below["mask_base"],
                    stride=layer.in_features,
                    use_mask=True,
                )
                stats.append(st)
                dx_unit = pipeline.grad_unit(fmt, scale, phases[0]) * s["w_step"]
                grad_x = (torch.from_numpy(dx).to(torch.float64) * dx_unit).to(torch.float32)
            dw, st = dp.gemm(
                f"{layer.fourbit_name}.dw",
                g1.T,
                s["x_codes"].numpy(),
                mode=MODE_LOG,
                a_signed=False,
                b_signed=s["x_signed"],
                post=POST_NONE,
            )
            stats.append(st)
            dw_unit = pipeline.grad_unit(fmt, scale, phases[1]) * s["x_step"]
            layer.weight.grad = (
                (torch.from_numpy(dw).to(torch.float64) * dw_unit).to(torch.float32).reshape(layer.weight.shape)
            )
            layer.bias.grad = grad_y.reshape(-1, grad_y.shape[-1]).sum(0)
            if i > 0:
                # PACT backward (host float glue, as golden.layers.pact._Pact.backward).
                zero = torch.zeros((), dtype=grad_x.dtype)
                grad_prev = torch.where(below["inside"], grad_x, zero)
                self.pacts[i - 1].alpha.grad = torch.where(below["saturated"], grad_x, zero).sum().reshape(1)
                # The integers the hardware wrote to the gradient memory are the masked dX; the golden
                # layer recovers them from the float gradient and must find them exactly.
                hw_ints = torch.where(below["inside"], torch.from_numpy(dx), torch.zeros((), dtype=torch.int64))
                ints = torch.round(grad_prev.to(torch.float64) / dx_unit)
                if not (
                    torch.equal(ints.to(torch.int64), hw_ints)
                    and torch.equal((ints * dx_unit).to(torch.float32), grad_prev)
                ):
                    raise ArithmeticError(
                        f"{layer.fourbit_name}: the golden model would not recover the integer "
                        "dX from its float gradient (inexact path); not comparable"
                    )
                grad_y, unit_g, count, from_loss = grad_prev, dx_unit, grad_prev.numel(), False
        self.opt.step()
        self.sched.step()
        return float(loss.detach()), stats, encode_cycles
