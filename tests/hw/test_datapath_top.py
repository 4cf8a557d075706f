"""The datapath top: parameter checks, deterministic Verilog, lint, host fixed-point entry of the loss gradient."""

import math
import subprocess

import pytest
import torch

from golden.formats import fp4_quantize
from hw.datapath import TrainDatapath
from verify.cosim.build import datapath_verilog
from verify.cosim.driver import Geometry
from verify.cosim.host import LOSS_FRACTION_BITS, loss_gradient_fixed

SMALL = dict(rows=2, cols=3, k_depth=16, grad_depth=32, mask_depth=32)


def test_parameter_errors():
    with pytest.raises(TypeError):
        TrainDatapath(**{**SMALL, "rows": "2"})
    with pytest.raises(ValueError, match="k_depth"):
        TrainDatapath(**{**SMALL, "k_depth": 0})
    with pytest.raises(ValueError, match="acc_width"):
        TrainDatapath(**{**SMALL, "acc_width": 12, "k_depth": 4096})  # accumulator could overflow


def test_verilog_deterministic_and_lint_clean(tmp_path):
    text, ports, manifest = datapath_verilog(Geometry(**SMALL))
    assert text == datapath_verilog(Geometry(**SMALL))[0]
    assert "train_datapath" in text and manifest["rows"] == 2 and "busy" in ports
    from fourbit.util.tools import tool_env
    from rtl_gen.lint import WAIVERS

    src = tmp_path / "train_datapath.v"
    src.write_text(text)
    run = subprocess.run(
        ["verilator", "--lint-only", "-Wall", str(WAIVERS), str(src), "--top-module", "train_datapath"],
        env=tool_env(),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.parametrize("seed", range(6))
def test_loss_gradient_fixed_point_keeps_every_code(seed):
    """Round-to-odd fixed point of a float32 gradient quantizes like the float itself (both phases)."""
    g = torch.Generator().manual_seed(seed)
    scale = 2.0 ** (-seed * 4)
    logits = torch.randn(16, 10, generator=g) * 3
    target = torch.randint(0, 10, (16,), generator=g)
    logits.requires_grad_(True)
    torch.nn.functional.cross_entropy(logits, target).backward()
    v = (logits.grad * scale).to(torch.float32)
    v[0, 0] = 0.0
    ints = torch.tensor(loss_gradient_fixed(v), dtype=torch.int64).reshape(v.shape)
    unit = math.ldexp(1.0, -LOSS_FRACTION_BITS)
    for phase in (0, 1):
        c_float, s_float = fp4_quantize(v, phase=phase, unit=1.0)
        c_int, s_int = fp4_quantize(ints, phase=phase, unit=unit)
        assert torch.equal(c_float, c_int) and s_float == s_int


def test_loss_gradient_out_of_range():
    with pytest.raises(ValueError, match="2\\^-30"):
        loss_gradient_fixed(torch.tensor([1e-12, -1e-13]))
    with pytest.raises(ValueError, match="outside"):
        loss_gradient_fixed(torch.tensor([2.0]))
