"""The quantized state carried by the tensor (golden.quantized): it follows the values through
reshapes, indexing, pooling, checkpointing and compiled regions, and nothing else."""

import pytest
import torch
import torch.nn.functional as F
import torch.utils.checkpoint as checkpoint
from torch import nn

from golden.layers import PACT, QLinear, QuantConfig, convert
from golden.quantized import CodeState, QuantizedTensor, state_of


def _pact(alpha=3.0):
    return PACT(config=QuantConfig(pact_alpha=alpha), name="pact")


def _codes(t):
    return state_of(t).codes


@pytest.mark.parametrize(
    "op",
    [
        lambda t: t.reshape(4, 24),
        lambda t: t.view(4, 24),
        lambda t: torch.flatten(t, 1),
        lambda t: t.flatten(1),
        lambda t: nn.Flatten()(t),
        lambda t: t.permute(0, 2, 1).contiguous().transpose(1, 2).reshape(4, -1),
        lambda t: t.unsqueeze(1).squeeze(1).reshape(4, 24),
        lambda t: t[:, :, :].reshape(4, 24).clone(),
    ],
)
def test_codes_survive_shape_operations_bit_for_bit(op):
    """PACT -> (shape op) -> QLinear in "codes" mode equals (shape op) -> PACT -> QLinear, values and gradients."""
    cfg = QuantConfig(pact_alpha=3.0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 8, generator=gen) * 2
    runs = []
    for before in (False, True):
        torch.manual_seed(0)
        pact, layer = PACT(config=cfg, name="pact"), QLinear(24, 5, config=cfg, input_mode="codes", name="q")
        xi = x.clone().requires_grad_(True)
        z = pact(op(xi)) if before else op(pact(xi))
        y = layer(z)
        assert layer.input_paths == {"codes": 1}
        y.square().sum().backward()
        runs.append((y.detach(), xi.grad, pact.alpha.grad, layer.weight.grad, layer.bias.grad))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


def test_max_pooling_keeps_the_codes_of_the_pooled_values():
    torch.manual_seed(0)
    for alpha in (1e-3, 0.7, 4.0, 17.3, 250.0):
        pact = _pact(alpha)
        z = pact(torch.randn(4, 3, 6, 6) * alpha)
        step = float(pact.alpha) / 15
        for pool in (nn.MaxPool2d(2), lambda t: F.max_pool2d(t, 2)):
            pooled = pool(z)
            assert torch.equal(_codes(pooled), F.max_pool2d(_codes(z), 2))
            assert torch.equal(pooled, (_codes(pooled).double() * step).float())
        assert torch.equal(_codes(nn.Flatten()(pooled)), _codes(pooled).flatten(1))


def test_other_operations_drop_the_state_and_in_place_ones_clear_it():
    z = _pact()(torch.rand(3, 4) * 4)
    assert isinstance(z, QuantizedTensor) and isinstance(state_of(z), CodeState)
    for other in (z + 0, z * 1, F.relu(z), z.to(torch.float64), z.view(torch.int32), z.max(dim=1).values):
        assert type(other) is torch.Tensor and state_of(other) is None
    # a reinterpreting view (keyword dtype too) is not applied to the int8 codes (3 x 3 int8 has no float32 view)
    odd = _pact()(torch.rand(3, 3) * 4)
    assert state_of(odd.view(dtype=torch.float32)) is None
    layer = QLinear(4, 2, config=QuantConfig(), input_mode="codes", name="q")
    layer(z)  # the state is read
    z.mul_(2)
    assert state_of(z) is None
    with pytest.raises(RuntimeError, match="expects UINT4 codes"):
        layer(z)


def _mlp():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)
    )
    # every weight layer but the last quantized: the checkpointed segment's input codes and its output
    # accumulator both link to quantized neighbours
    return convert(model, QuantConfig(pact_alpha=4.0, keep_first=False))


def _step(model, forward):
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(16, 12, generator=gen), torch.randint(0, 3, (16,), generator=gen)
    out = forward(model, x)
    F.cross_entropy(out, y).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    layers = [m for m in model if isinstance(m, QLinear)]
    return out.detach(), grads, [m.inexact_grad_steps for m in layers], [dict(m.input_paths) for m in layers]


def _check_same(a, b):
    assert torch.equal(a[0], b[0])
    assert all(torch.equal(g, h) for g, h in zip(a[1], b[1]))
    assert a[2] == b[2] == [0, 0, 0]
    assert a[3] == b[3] == [{"image": 1}, {"codes": 1}, {"codes": 1}]


@pytest.mark.parametrize("reentrant", [False, True])
def test_checkpointed_segments_train_bit_for_bit(reentrant):
    """A checkpointed QLinear + PACT segment: the same values, gradients and exact dX recoveries."""
    plain = _step(_mlp(), lambda m, x: m(x))

    def forward(m, x):
        h = m[1](m[0](x))
        h = checkpoint.checkpoint(lambda t: m[3](m[2](t)), h, use_reentrant=reentrant)
        return m[6](m[5](m[4](h)))

    _check_same(plain, _step(_mlp(), forward))


def test_compiled_model_trains_bit_for_bit():
    """torch.compile of the model (the quantized layers run eagerly between compiled float regions)."""
    plain = _step(_mlp(), lambda m, x: m(x))
    _check_same(plain, _step(_mlp(), lambda m, x: torch.compile(m)(x)))

    def reshaping(m, x):  # a functional reshape of PACT codes inside the compiled forward
        h = m[3](m[2](m[1](m[0](x)))).reshape(4, 4, 8).flatten(0, 1)
        return m[6](m[5](m[4](h)))

    _check_same(plain, _step(_mlp(), lambda m, x: torch.compile(reshaping)(m, x)))
