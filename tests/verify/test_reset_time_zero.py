"""Every generated module, with ``rst`` high from time 0, reads no X and the right values.

A plain-Verilog testbench (no cocotb) holds ``rst`` high from time 0 for two
rising edges, with every other input 0, then drives random inputs (``valid``
mostly high, so the first step after reset accumulates onto the reset
accumulator). After every edge from the first one on it prints every output;
the test requires no X or Z bit (Icarus) and every value equal to Amaranth's
own simulation of the same component on the same inputs (Icarus and the
2-state Verilator), so ``acc`` is 0 after reset and then exactly the products.

Two ways of setting the inputs at time 0 (``STYLES``): declaration
initializers (``reg rst = 1;``, which raise no event under SystemVerilog
semantics) and an ``initial`` block without delay. Icarus runs both under
``-g2012`` (as cocotb compiles) and the default ``-g2005``. Before
:func:`rtl_gen.generate.to_verilog`, ``fp16_mac`` read X after its first reset
edge here (the ``always @*`` of its reset mux never ran at time 0).

Icarus covers the PEs, the 4x4 arrays, the training datapath and one UART
engine in the default suite; the 8x8 arrays and the other engines are slow.
Verilator covers the same designs; a build takes 15-50 s, so only
``fp16_mac`` runs in the default suite and the others are slow.
"""

import pathlib
import random
import re
import shutil
import subprocess

import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from fourbit.util.tools import tool_env, verilator_make_flags
from hw.units import build_unit
from rtl_gen.config import load_config
from rtl_gen.generate import port_list, to_verilog
from rtl_gen.lint import WAIVERS

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Purely combinational units (the report's per-element units) have no clock or reset to test.
COMBINATIONAL = {"requantizer", "fp4_encoder", "fp16_post"}
DESIGNS = {
    design.name: design
    for design in load_config(REPO_ROOT / "configs" / "default.toml")
    if design.name not in COMBINATIONAL
}
#: Edges with ``rst`` high from time 0, then edges of random inputs.
RESET_STEPS, RUN_STEPS = 2, 14
STYLES = ("decl", "initial")
ICARUS_GENERATIONS = ("-g2012", "-g2005")
#: Icarus: the larger designs (compilation and simulation take tens of seconds each) are slow.
ICARUS_SLOW = {
    "int4_array_8x8",
    "log_array_8x8",
    "train_array_8x8",
    "fp16_array_8x8",
    "log_engine_4x4",
    "fp16_engine_2x2",
    "train_engine_4x4",
    "int4_lean_array_4x4",
    "log_lean_array_4x4",
}
#: Verilator: what Icarus covers in the default suite; one build (15-50 s each) in the default suite.
VERILATOR_DESIGNS = [name for name in DESIGNS if name not in ICARUS_SLOW]
VERILATOR_DEFAULT = {"fp16_mac"}


def _component(name):
    design = DESIGNS[name]
    return build_unit(design.kind, design.params)[2]


def _stimulus(component, seed):
    """Inputs per step: reset with every input 0, then random values (``valid`` 7 in 8, ``clear`` 1 in 8)."""
    rng = random.Random(seed)
    inputs = [port for port in port_list(component) if port["direction"] == "input" and port["name"] != "clk"]
    steps = []
    for step in range(RESET_STEPS + RUN_STEPS):
        values = {}
        for port in inputs:
            name, width = port["name"], port["width"]
            if name == "rst":
                values[name] = int(step < RESET_STEPS)
            elif step < RESET_STEPS:
                # A UART line idles high; everything else is 0 during the reset.
                values[name] = 1 if name == "rx" else 0
            elif name == "valid":
                values[name] = int(step == RESET_STEPS or rng.random() < 7 / 8)
            elif name == "clear":
                values[name] = int(step > RESET_STEPS and rng.random() < 1 / 8)
            else:
                values[name] = rng.getrandbits(width)
        steps.append(values)
    return steps


def _reference(component, steps):
    """Every output after every edge, in Amaranth's simulator (``rst`` drives the ``sync`` reset)."""
    top = Module()
    top.domains.sync = domain = ClockDomain("sync")
    top.submodules.dut = component
    ports = {
        "__".join(map(str, path)): (member.flow, value)
        for path, member, value in component.signature.flatten(component)
    }
    outputs = [name for name, (flow, _) in ports.items() if flow == wiring.Out]
    observed = []

    async def testbench(ctx):
        for values in steps:
            for name, value in values.items():
                ctx.set(domain.rst if name == "rst" else ports[name][1], value)
            await ctx.tick()
            # Raw bits, as the testbench prints them (signed outputs read negative here).
            observed.append({name: ctx.get(ports[name][1]) & ((1 << len(ports[name][1])) - 1) for name in outputs})

    simulator = Simulator(top)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return outputs, observed


def _literal(width, value):
    return f"{width}'h{value:x}"


def _testbench(name, component, steps, style):
    """Verilog testbench: the inputs of step 0 from time 0 (``style``), each later step at a falling edge."""
    ports = port_list(component)
    inputs = [port for port in ports if port["direction"] == "input" and port["name"] != "clk"]
    outputs = [port for port in ports if port["direction"] == "output"]
    lines = ["`timescale 1ns/1ps", "module tb;", "  reg clk = 1'b0;"]
    for port in inputs:
        init = f" = {_literal(port['width'], steps[0][port['name']])}" if style == "decl" else ""
        lines.append(f"  reg [{port['width'] - 1}:0] {port['name']}{init};")
    lines += [f"  wire [{port['width'] - 1}:0] {port['name']};" for port in outputs]
    connections = ", ".join(f".{port['name']}({port['name']})" for port in ports)
    lines += [f"  {name} dut({connections});", "  always #5 clk = ~clk;", "  initial begin"]
    if style == "initial":
        lines += [f"    {port['name']} = {_literal(port['width'], steps[0][port['name']])};" for port in inputs]
    formats = " ".join("%h" for _ in outputs)
    names = ", ".join(port["name"] for port in outputs)
    for step in range(len(steps)):
        # Rising edge `step` is at 10 * step + 5; sample after it, then set the next inputs.
        lines.append("    #10;")
        lines.append(f'    $display("out {step} {formats}", {names});')
        if step + 1 < len(steps):
            lines += [
                f"    {port['name']} = {_literal(port['width'], steps[step + 1][port['name']])};"
                for port in inputs
                if steps[step + 1][port["name"]] != steps[step][port["name"]]
            ]
    lines += ["    $finish;", "  end", "endmodule", ""]
    return "\n".join(lines)


def _check(output, outputs, expected):
    """Compare the testbench's lines with the reference; the mismatches (empty when all agree)."""
    rows = [line.split()[1:] for line in output.splitlines() if line.startswith("out ")]
    if len(rows) != len(expected):
        return [f"{len(rows)} output lines, expected {len(expected)}:\n{output[-2000:]}"]
    errors = []
    for (step, *values), want in zip(rows, expected, strict=True):
        for name, text in zip(outputs, values, strict=True):
            if re.search("[xXzZ]", text):
                errors.append(f"after edge {step}: {name} = {text} (X/Z)")
            elif int(text, 16) != want[name]:
                errors.append(f"after edge {step}: {name} = {int(text, 16):#x}, Amaranth {want[name]:#x}")
    return errors


def _prepare(name, directory, style, seed=1):
    component = _component(name)
    steps = _stimulus(component, seed)
    directory.mkdir(parents=True, exist_ok=True)
    design = directory / f"{name}.v"
    design.write_text(to_verilog(component, name))
    testbench = directory / "tb.v"
    testbench.write_text(_testbench(name, component, steps, style))
    outputs, expected = _reference(_component(name), steps)
    return design, testbench, outputs, expected


def _run(command, **kwargs):
    """Run ``command``; a failure shows the end of its output."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode:
        pytest.fail(f"{command[0]} exited with status {result.returncode}:\n{(result.stdout + result.stderr)[-3000:]}")
    return result


def _params(names, slow):
    return [pytest.param(name, marks=pytest.mark.slow) if name in slow else name for name in names]


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
@pytest.mark.parametrize("name", _params(list(DESIGNS), ICARUS_SLOW))
def test_icarus(name, tmp_path):
    """Icarus, both input styles, ``-g2012`` and ``-g2005``: no X, Amaranth's values."""
    errors = []
    for style in STYLES:
        design, testbench, outputs, expected = _prepare(name, tmp_path / style, style)
        for generation in ICARUS_GENERATIONS:
            binary = tmp_path / style / f"tb{generation}.vvp"
            _run(["iverilog", generation, "-o", str(binary), "-s", "tb", str(testbench), str(design)])
            run = _run(["vvp", "-n", str(binary)])
            errors += [f"{style} {generation}: {error}" for error in _check(run.stdout, outputs, expected)]
    assert not errors, "\n".join(errors[:20])


@pytest.mark.parametrize("name", _params(VERILATOR_DESIGNS, set(VERILATOR_DESIGNS) - VERILATOR_DEFAULT))
def test_verilator(name, tmp_path):
    """Verilator (2-state), declaration initializers: exactly Amaranth's values after every edge."""
    design, testbench, outputs, expected = _prepare(name, tmp_path, "decl")
    command = [
        "verilator",
        "--binary",
        "--timing",
        # The testbench's delays need C++20 coroutines, which g++ 12 enables only with this flag.
        "-CFLAGS",
        "-fcoroutines",
        "-Wno-fatal",
        "--top-module",
        "tb",
        "-Mdir",
        str(tmp_path / "obj"),
        "-o",
        "tb",
        str(WAIVERS),
        str(testbench),
        str(design),
    ]
    with verilator_make_flags():  # the precompiled-header flag of the larger designs' makefiles
        _run(command, env=tool_env())
    run = _run([str(tmp_path / "obj" / "tb")])
    errors = _check(run.stdout, outputs, expected)
    assert not errors, "\n".join(errors[:20])
