"""Gate-level simulation of a Liberty-mapped netlist, counting toggles per net.

The Liberty file has no Verilog models, so :func:`netlist_verilog` derives
each cell's behaviour from its ``function`` attributes (combinational
outputs) and ``ff`` / ``latch`` groups (state), inlined into one flat module
in which every net bit is a scalar wire ``n<bit>``, so a VCD value change
names the net directly.  Icarus Verilog simulates it with
zero-delay cell models: the counted transitions are the functional ones
(one per net per changed settled value; glitches are not modelled).
"""

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SimError",
    "function_to_verilog",
    "netlist_verilog",
    "Toggles",
    "simulate",
    "simulate_many",
    "count_vcd_toggles",
    "net_drivers_and_sinks",
]


class SimError(Exception):
    """Gate-level simulation could not be set up or failed."""


_FN_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_\[\]]*|[01]|[!'&*|+^()])")


def function_to_verilog(expr):
    """Translate a Liberty boolean ``function`` into a Verilog expression.

    Liberty operators: ``!x`` / ``x'`` (not), ``&`` / ``*`` / juxtaposition
    (and), ``|`` / ``+`` (or), ``^`` (xor), constants ``0``/``1``.

    Raises
    ------
    SimError
        On a syntax error.
    """
    tokens, pos, text = [], 0, expr.strip()
    while pos < len(text):
        m = _FN_TOKEN.match(text, pos)
        if not m:
            raise SimError(f"cannot parse Liberty function {expr!r}")
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    i = 0

    def peek():
        return tokens[i] if i < len(tokens) else None

    def take():
        nonlocal i
        if i >= len(tokens):
            raise SimError(f"truncated Liberty function {expr!r}")
        i += 1
        return tokens[i - 1]

    def primary():
        t = peek()
        if t is None:
            raise SimError(f"truncated Liberty function {expr!r}")
        if t == "!":
            take()
            node = "~" + primary()
        elif t == "(":
            take()
            node = "(" + or_expr() + ")"
            if take() != ")":
                raise SimError(f"unbalanced parenthesis in Liberty function {expr!r}")
        elif t in ("0", "1"):
            take()
            node = "1'b" + t
        elif re.fullmatch(r"[A-Za-z_]\w*", t):
            take()
            node = t
        else:
            raise SimError(f"unexpected {t!r} in Liberty function {expr!r}")
        while peek() == "'":
            take()
            node = "~" + node
        return node

    def and_expr():
        node = primary()
        while peek() is not None and (peek() in ("&", "*", "!", "(") or re.fullmatch(r"[A-Za-z_]\w*|[01]", peek())):
            if peek() in ("&", "*"):
                take()
            node = f"{node} & {primary()}"
        return node

    def xor_expr():
        node = and_expr()
        while peek() == "^":
            take()
            node = f"{node} ^ {and_expr()}"
        return node

    def or_expr():
        node = xor_expr()
        while peek() in ("|", "+"):
            take()
            node = f"{node} | {xor_expr()}"
        return node

    out = or_expr()
    if i != len(tokens):
        raise SimError(f"trailing tokens in Liberty function {expr!r}")
    return f"({out})"


def _substitute(expr, names):
    """Replace the identifiers of a Verilog expression by ``names[identifier]``."""
    return re.sub(r"\b[A-Za-z_]\w*\b", lambda m: names.get(m.group(0), m.group(0)), expr)


def _cell_lines(k, cell, lib_cell):
    """Verilog lines of one cell instance, inlined: continuous assigns and, for
    state, a ``reg s<k>`` updated by an ``always`` block, all derived from the
    Liberty ``function`` / ``ff`` / ``latch`` attributes."""
    names = {pin: _bit(conn[0]) for pin, conn in cell["connections"].items()}
    for pin in lib_cell.pins.values():  # unconnected inputs read as 0
        if pin.direction == "input":
            names.setdefault(pin.name, "1'b0")
    lines = []
    seq = lib_cell.sequential
    if seq is not None:
        if seq.kind == "statetable":
            raise SimError(f"cell {lib_cell.name} uses a statetable; not supported by the gate-level models")
        state = f"s{k}"
        names[seq.state] = state
        if seq.state_n:
            names[seq.state_n] = f"(~{state})"
        lines.append(f"  reg {state};")

        def fn(attr):
            return _substitute(function_to_verilog(attr), names)

        events, body = [], []
        if seq.kind == "ff":
            lines.append(f"  wire k{k}_c = {fn(seq.clocked_on)};")
            events.append(f"posedge k{k}_c")
        if seq.clear:
            lines.append(f"  wire k{k}_r = {fn(seq.clear)};")
            events.append(f"posedge k{k}_r")
            body.append(f"if (k{k}_r) {state} <= 1'b0;")
        if seq.preset:
            lines.append(f"  wire k{k}_s = {fn(seq.preset)};")
            events.append(f"posedge k{k}_s")
            body.append(f"{'else ' if body else ''}if (k{k}_s) {state} <= 1'b1;")
        if seq.kind == "ff":
            body.append(f"{'else ' if body else ''}{state} <= {fn(seq.next_state)};")
            lines.append(f"  always @({' or '.join(events)}) {' '.join(body)}")
        else:
            body.append(f"{'else ' if body else ''}if ({fn(seq.enable)}) {state} <= {fn(seq.data_in)};")
            lines.append(f"  always @* {' '.join(body)}")
    for pin in lib_cell.outputs:
        conn = cell["connections"].get(pin.name)
        if not conn or not isinstance(conn[0], int):
            continue
        if pin.function is None:
            raise SimError(f"output {lib_cell.name}.{pin.name} has no function in the Liberty")
        lines.append(f"  assign n{conn[0]} = {_substitute(function_to_verilog(pin.function), names)};")
    return lines


def _bit(b):
    if isinstance(b, int):
        return f"n{b}"
    return {"0": "1'b0", "1": "1'b1"}.get(b, "1'bx")


def netlist_verilog(netlist, module, library):
    """The mapped Yosys JSON module as flat Verilog with one scalar wire ``n<bit>`` per net bit.

    Ports keep their names (vectors as in the source); every port bit is
    assigned to or from its ``n<bit>`` wire.  Cells are inlined (zero-delay
    behaviour from their Liberty functions, see :func:`_cell_lines`).
    """
    bits = set()
    for cell in netlist["cells"].values():
        for conn in cell["connections"].values():
            bits.update(b for b in conn if isinstance(b, int))
    for port in netlist["ports"].values():
        bits.update(b for b in port["bits"] if isinstance(b, int))
    lines = [f"module {module}({', '.join(netlist['ports'])});"]
    for name, port in netlist["ports"].items():
        width = len(port["bits"])
        rng = f" [{width - 1}:0]" if width > 1 else ""
        lines.append(f"  {port['direction']}{rng} {name};")
    lines += [f"  wire n{b};" for b in sorted(bits)]
    for name, port in netlist["ports"].items():
        for k, b in enumerate(port["bits"]):
            ref = f"{name}[{k}]" if len(port["bits"]) > 1 else name
            if port["direction"] == "input":
                if isinstance(b, int):
                    lines.append(f"  assign n{b} = {ref};")
            else:
                lines.append(f"  assign {ref} = {_bit(b)};")
    for k, (_inst, cell) in enumerate(sorted(netlist["cells"].items())):
        ctype = cell["type"]
        if ctype not in library:
            raise SimError(f"mapped cell type {ctype} is not in the Liberty library")
        lines += _cell_lines(k, cell, library.cell(ctype))
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def net_drivers_and_sinks(netlist, library):
    """Per net bit: its driver and its sinks.

    Returns
    -------
    drivers : dict
        bit -> ``(instance, cell_type, pin)``, or ``("<port>", None, port_name)``
        for primary inputs.
    sinks : dict
        bit -> list of ``(instance, cell_type, pin)``.
    """
    drivers, sinks = {}, {}
    for name, port in netlist["ports"].items():
        if port["direction"] == "input":
            for b in port["bits"]:
                if isinstance(b, int):
                    drivers[b] = ("<port>", None, name)
    for inst, cell in netlist["cells"].items():
        lib_cell = library.cell(cell["type"])
        for pin, conn in cell["connections"].items():
            b = conn[0]
            if not isinstance(b, int):
                continue
            direction = lib_cell.pins[pin].direction
            if direction == "output":
                drivers[b] = (inst, cell["type"], pin)
            elif direction == "input":
                sinks.setdefault(b, []).append((inst, cell["type"], pin))
    return drivers, sinks


@dataclass
class Toggles:
    """Transitions counted over the measurement window.

    Attributes
    ----------
    rises, falls : dict
        Net bit -> number of 0->1 (1->0) transitions.
    cycles : int
        Clock cycles in the window.
    period_ns : float
        Clock period.
    outputs : dict
        Output port -> list (one per stimulus row) of the value sampled just
        before that row is applied (None where it has x/z bits).
    """

    rises: dict
    falls: dict
    cycles: int
    period_ns: float
    outputs: dict


def count_vcd_toggles(path, scope):
    """Count 0->1 and 1->0 transitions of the scalar wires ``n<bit>`` in ``scope``.

    Returns
    -------
    (rises, falls) : tuple of dict
        Keyed by net bit (int).  Transitions from or to x/z are not counted.
    """
    ids = {}
    with open(path) as f:
        text = f.read()
    head, sep, body = text.partition("$enddefinitions")
    if not sep:
        raise SimError(f"malformed VCD (no $enddefinitions): {path}")
    depth_scope = []
    for line in head.splitlines():
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "$scope":
            depth_scope.append(tok[2])
        elif tok[0] == "$upscope":
            depth_scope.pop()
        elif tok[0] == "$var" and depth_scope and depth_scope[-1] == scope:
            m = re.fullmatch(r"n(\d+)", tok[4])
            if m and tok[2] == "1":
                ids[tok[3]] = int(m.group(1))
    rises = dict.fromkeys(ids.values(), 0)
    falls = dict.fromkeys(ids.values(), 0)
    last = {}
    body = body.partition("$end")[2]
    for line in body.split("\n"):
        if not line or line[0] not in "01xzXZ":
            continue
        code = line[1:].strip()
        bit = ids.get(code)
        if bit is None:
            continue
        v = line[0]
        prev = last.get(code)
        if prev == "0" and v == "1":
            rises[bit] += 1
        elif prev == "1" and v == "0":
            falls[bit] += 1
        last[code] = v
    return rises, falls


def _find_iverilog():
    iverilog, vvp = shutil.which("iverilog"), shutil.which("vvp")
    if not iverilog or not vvp:
        raise SimError("Icarus Verilog (iverilog, vvp) not found: install Debian's iverilog (`make setup`)")
    return iverilog, vvp


def _pack_words(ports, stimulus):
    """Hex words of the stimulus rows, first port in the most significant bits."""
    words = []
    for row in stimulus:
        v = 0
        for (_, w), x in zip(ports, row):
            v = (v << w) | (int(x) & ((1 << w) - 1))
        words.append(f"{v:x}")
    return words


def _testbench(netlist, module, ports, cycles, period_ns, warmup):
    width = sum(w for _, w in ports)
    conns, lsb = [], width
    for name, w in ports:
        lsb -= w
        conns.append(f".{name}(v[{lsb + w - 1}:{lsb}])")
    names = {n for n, _ in ports}
    if "clk" in netlist["ports"]:
        conns.append(".clk(clk)")
    if "rst" in netlist["ports"] and "rst" not in names:
        conns.append(".rst(rst)")
    outs = [(n, len(p["bits"])) for n, p in netlist["ports"].items() if p["direction"] == "output"]
    decl = "\n".join(f"  wire [{w - 1}:0] o_{n};" for n, w in outs)
    conns += [f".{n}(o_{n})" for n, _ in outs]
    tb = f"""`timescale 1ns/1ps
module tb;
  reg clk = 1'b0;
  reg rst = 1'b1;
  reg [{width - 1}:0] mem [0:{cycles - 1}];
  reg [{width - 1}:0] v = {width}'d0;
{decl}
  {module} dut({", ".join(conns)});
  always #{period_ns / 2} clk = ~clk;
  integer i, fo;
  // counting starts a quarter period before the inputs of cycle {warmup} change
  initial begin
    #{(2 + warmup) * period_ns - period_ns / 4};
    $dumpvars(1, dut);
  end
  initial begin
    $readmemh("stim.hex", mem);
    $dumpfile("toggles.vcd");
    @(negedge clk); @(negedge clk);
    rst = 1'b0;
    fo = $fopen("outputs.txt", "w");
    for (i = 0; i < {cycles}; i = i + 1) begin
      $fdisplay(fo, "{" ".join("%h" for _ in outs)}"{"".join(", o_" + n for n, _ in outs)});
      v = mem[i];
      // the window ends a quarter period after the last rising edge: exactly
      // {cycles - warmup} clock periods from its start
      if (i < {cycles - 1}) @(negedge clk);
      else begin @(posedge clk); #{period_ns / 4}; end
    end
    $finish;
  end
endmodule
"""
    return tb, outs


def simulate(netlist, module, library, ports, stimulus, *, period_ns=10.0, warmup=4, workdir=None):
    """Simulate a mapped netlist on a stimulus and count toggles per net.

    Parameters
    ----------
    netlist : dict
        Yosys JSON module (mapped).
    module : str
        Its name.
    library : report.liberty.Library
    ports : list of (str, int)
        The input ports driven from the stimulus, with widths (``clk`` is
        generated; ``rst`` is held high for two cycles unless listed here).
    stimulus : numpy.ndarray
        ``(cycles, len(ports))`` unsigned integers (or Python ints in an
        object array), one row per clock cycle.
    period_ns : float
        Clock period (leakage integrates over it).
    warmup : int
        Cycles simulated before counting starts (registers leave x).
    workdir : str or None
        Keep the generated files there (else a temporary directory).

    Returns
    -------
    Toggles
    """
    return simulate_many(
        netlist, module, library, ports, [stimulus], period_ns=period_ns, warmup=warmup, workdir=workdir
    )[0]


def simulate_many(netlist, module, library, ports, stimuli, *, period_ns=10.0, warmup=4, workdir=None):
    """:func:`simulate` on several stimuli of one length, compiling the netlist once."""
    iverilog, vvp = _find_iverilog()
    stimuli = [np.asarray(st) for st in stimuli]
    cycles = stimuli[0].shape[0] if stimuli else 0
    for st in stimuli:
        if st.ndim != 2 or st.shape[1] != len(ports):
            raise SimError(f"stimulus must be (cycles, {len(ports)}), got {st.shape}")
        if st.shape[0] != cycles:
            raise SimError("stimuli of one simulation must have the same number of cycles")
    if cycles <= warmup:
        raise SimError(f"stimulus has {cycles} cycles; need more than the {warmup} warm-up cycles")
    tb, outs = _testbench(netlist, module, ports, cycles, period_ns, warmup)
    own = workdir is None
    results = []
    # A temporary directory of our own goes on any exit, Ctrl-C included.
    if own:
        scratch = tempfile.TemporaryDirectory(prefix="fourbit-gatesim-", ignore_cleanup_errors=True)
    else:
        scratch = contextlib.nullcontext(workdir)
    with scratch as workdir:
        os.makedirs(workdir, exist_ok=True)
        for fname, text in (("netlist.v", netlist_verilog(netlist, module, library)), ("tb.v", tb)):
            with open(os.path.join(workdir, fname), "w") as f:
                f.write(text)
        comp = subprocess.run(
            [iverilog, "-g2012", "-o", "sim.vvp", "-s", "tb", "tb.v", "netlist.v"],
            capture_output=True,
            text=True,
            cwd=workdir,
        )
        if comp.returncode != 0:
            raise SimError("iverilog failed: " + comp.stderr.strip()[-500:])
        for k, st in enumerate(stimuli):
            run_dir = os.path.join(workdir, f"run{k}")
            os.makedirs(run_dir, exist_ok=True)
            with open(os.path.join(run_dir, "stim.hex"), "w") as f:
                f.write("\n".join(_pack_words(ports, st)) + "\n")
            run = subprocess.run(
                [vvp, "-n", os.path.join(workdir, "sim.vvp")], capture_output=True, text=True, cwd=run_dir
            )
            if run.returncode != 0:
                raise SimError("vvp failed: " + (run.stderr or run.stdout).strip()[-500:])
            rises, falls = count_vcd_toggles(os.path.join(run_dir, "toggles.vcd"), "dut")
            outputs = {n: [] for n, _ in outs}
            with open(os.path.join(run_dir, "outputs.txt")) as f:
                for line in f:
                    for (n, _), word in zip(outs, line.split()):
                        outputs[n].append(int(word, 16) if re.fullmatch(r"[0-9a-fA-F]+", word) else None)
            if own:
                shutil.rmtree(run_dir, ignore_errors=True)  # VCDs are large
            results.append(Toggles(rises, falls, cycles - warmup, period_ns, outputs))
    return results
