"""An independent, SPEC-only cocotb check of the standalone PEs.

It knows nothing of :mod:`golden` or :mod:`verify.stimulus`: its reference
model is SPEC section 3 written out step by step in plain Python (integers)
and numpy ``float32`` (IEEE binary32 with round to nearest even), and its
stimulus is drawn here. ``FOURBIT_SPEC_STEPS`` and ``FOURBIT_SPEC_SEED`` set
the run; the top-level name (``int4_mac``, ``log_mac``, ``fp16_mac``) picks
the model. Ports, widths, reset and ``valid``/``clear`` are exactly the SPEC's.
"""

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

CANONICAL_NAN = 0x7FC00000


def _int4(code, is_signed):
    return code - 16 if is_signed and code >= 8 else code


def _f32_bits(value):
    value = np.float32(value)
    return CANONICAL_NAN if np.isnan(value) else int(np.array(value).view(np.uint32))


def _f32(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)[()]


def _f16(bits):
    return np.float32(np.array(bits, dtype=np.uint16).view(np.float16)[()])


class Model:
    """acc after each edge: ``valid & clear: prod``, ``valid: acc + prod``,
    ``clear: 0``, else hold; ``rst: 0``."""

    def __init__(self, name, width):
        self.name, self.width, self.acc = name, width, 0

    def product(self, ins):
        if self.name == "int4_mac":
            return _int4(ins["a"], ins["a_signed"]) * _int4(ins["b"], True)
        if self.name == "log_mac":
            s, e = ins["g"] >> 3, ins["g"] & 7
            if e == 0:
                return 0
            return (-1) ** s * _int4(ins["x"], ins["x_signed"]) * 4 ** (e - 1)
        with np.errstate(all="ignore"):
            return _f32_bits(_f16(ins["a"]) * _f16(ins["b"]))

    def add(self, acc, prod):
        if self.name == "fp16_mac":
            with np.errstate(all="ignore"):
                return _f32_bits(_f32(acc) + _f32(prod))
        return acc + prod

    def step(self, ins):
        if ins["rst"]:
            self.acc = 0
        elif ins["valid"] and ins["clear"]:
            self.acc = self.product(ins)
        elif ins["valid"]:
            self.acc = self.add(self.acc, self.product(ins))
        elif ins["clear"]:
            self.acc = 0
        self.acc &= (1 << self.width) - 1
        return self.acc


def _fp16_operand(rng):
    kind = rng.random()
    if kind < 0.15:
        return rng.choice(
            [0x0000, 0x8000, 0x0001, 0x83FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x3C00, 0xBC00]
        )
    if kind < 0.6:
        # Exponents near 1 so that long sums keep rounding.
        return (rng.getrandbits(1) << 15) | (rng.randint(10, 20) << 10) | rng.getrandbits(10)
    return rng.getrandbits(16)


def _stimulus(name, rng):
    ins = {"valid": int(rng.random() < 0.8), "clear": int(rng.random() < 0.08), "rst": int(rng.random() < 0.01)}
    if name == "int4_mac":
        ins.update(a=rng.getrandbits(4), b=rng.getrandbits(4), a_signed=rng.getrandbits(1))
    elif name == "log_mac":
        ins.update(x=rng.getrandbits(4), g=rng.getrandbits(4), x_signed=rng.getrandbits(1))
    else:
        ins.update(a=_fp16_operand(rng), b=_fp16_operand(rng))
    return ins


@cocotb.test()
async def spec_random(dut):
    """Random stimulus checked against the SPEC section 3 model, every cycle."""
    name = os.environ.get("COCOTB_TOPLEVEL", dut._name)
    steps = int(os.environ.get("FOURBIT_SPEC_STEPS", "3000"))
    rng = random.Random(int(os.environ.get("FOURBIT_SPEC_SEED", "1")))
    width = len(dut.acc)
    model = Model(name, width)

    Clock(dut.clk, 10, unit="ns").start(start_high=False)
    await FallingEdge(dut.clk)
    dut.rst.value = 1
    dut.valid.value = 0
    dut.clear.value = 0
    await FallingEdge(dut.clk)
    assert dut.acc.value.to_unsigned() == 0, "acc is not 0 after reset"

    errors = []
    for step in range(steps):
        ins = _stimulus(name, rng)
        for port, value in ins.items():
            getattr(dut, port).value = value
        want = model.step(ins)
        await FallingEdge(dut.clk)
        got = dut.acc.value.to_unsigned()
        if got != want and len(errors) < 5:
            errors.append(f"step {step} {ins}: acc {got:#x}, SPEC model {want:#x}")
    assert not errors, "\n".join(errors)
