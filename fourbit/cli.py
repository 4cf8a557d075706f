"""The ``fourbit`` command: one entry point for every tool of the project.

Examples::

    fourbit --help                       # every subcommand, one line each
    fourbit rtl                          # = python -m rtl_gen
    fourbit gemm --pe int4 --rows 4 --cols 4 --a A.npy --b B.npy --out C.npy
    fourbit train --dataset digits --model mlp --recipe ibm4 --epochs 1 --seed 0 --metrics m.json
    fourbit bench speed                  # = python -m golden.bench speed

Each subcommand is a thin caller of the tool's own ``main(argv, prog=...)``,
the same code ``python -m <module>`` runs: the module is imported only when
its subcommand runs (``fourbit --help`` imports neither torch nor Amaranth),
it gets the rest of the command line, and its usage, help and error lines
say ``fourbit <cmd>``. This is the top layer: it may import every package.
"""

import argparse
import importlib
import sys

from fourbit.util.cli import OneLineParser, run_main

__all__ = ["COMMANDS", "BENCHES", "main"]


class Command:
    """One subcommand: the module whose ``main(argv, prog=...)`` runs it, and its help line.

    Parameters
    ----------
    module : str
        The module, as ``python -m`` names it (``verify.gemm``).
    summary : str
        One line for ``fourbit --help``.
    entry : str
        Module holding ``main`` when it is not ``module`` (``rtl_gen.__main__``).
    """

    def __init__(self, module, summary, entry=None):
        self.module, self.summary, self.entry = module, summary, entry or module

    def run(self, argv, prog):
        """Import the tool and return its exit status for ``argv``."""
        main = importlib.import_module(self.entry).main
        return main(argv, prog=prog)


#: ``fourbit <cmd>``: what each subcommand runs, in the order ``fourbit --help`` lists them.
COMMANDS = {
    "rtl": Command("rtl_gen", "generate the Verilog of every configured unit and manifest.json", "rtl_gen.__main__"),
    "lint": Command("rtl_gen.lint", "verilator --lint-only -Wall on every module the manifest lists"),
    "gemm": Command("verify.gemm", "run a GEMM (.npy in, .npy out) on a simulated systolic array"),
    "train": Command("golden.train", "train a model with a 4-bit recipe and write its metrics"),
    "cosim": Command(
        "verify.cosim", "train an MLP on the simulated RTL datapath, bit-exact against golden", "verify.cosim.__main__"
    ),
    "report": Command("report", "area, delay and energy of the 4-bit units against FP16", "report.__main__"),
    "synth": Command("boards.synth", "build the UART GEMM engine's bitstream for an FPGA board"),
    "sweep": Command("boards.sweep", "FPGA resource / Fmax sweep of the GEMM engine"),
    "host": Command("boards.host", "run a GEMM on a board's UART GEMM engine, checked against golden"),
}

#: ``fourbit bench <what>``: the benchmarks.
BENCHES = {
    "speed": Command("golden.bench", "training step time, ibm4 against fp32 (make bench-train)"),
    "accuracy": Command("golden.bench", "test accuracy of every recipe against fp32 (make bench-accuracy)"),
    "sim": Command("verify.bench", "PE simulation speed, checked steps per second (make bench-sim)"),
    "arrays": Command("verify.bench_arrays", "systolic-array GEMM speed per kind, size and simulator"),
}


def _listing(table):
    column = max(len(name) for name in table)
    return "\n".join(f"  {name:{column}s}  {command.summary}" for name, command in table.items())


def _pick(table, argv, prog, description):
    """``(name, rest)`` from ``<command> [args...]``, or the exit status when there is nothing to run.

    Only the command name is parsed here: everything after it, ``--help``
    included, belongs to the tool.
    """
    parser = OneLineParser(
        prog=prog,
        usage=f"{prog} [-h] <command> [args...]",
        description=description,
        epilog=f"commands:\n{_listing(table)}\n\n'{prog} <command> --help' explains one.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if argv and argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    if not argv:
        parser.error(f"a command is required ('{prog} --help' lists them: {', '.join(table)})")
    if argv[0] not in table:
        parser.error(f"unknown command {argv[0]!r} (choose from {', '.join(table)})")
    return argv[0], argv[1:]


#: The ``bench`` line of ``fourbit --help``: it has commands of its own.
_BENCH_SUMMARY = f"the benchmarks: {', '.join(BENCHES)} ('bench --help')"


def _resolve(argv, prog):
    """``(command, argv, prog)`` to run for the ``fourbit`` command line ``argv``, or an exit status."""
    listed = {**COMMANDS, "bench": Command("", _BENCH_SUMMARY)}
    picked = _pick(listed, argv, prog, "Open hardware for 4-bit training, proved bit-exact: every tool.")
    if isinstance(picked, int):
        return picked
    name, rest = picked
    if name != "bench":
        return COMMANDS[name], rest, f"{prog} {name}"
    prog = f"{prog} bench"
    picked = _pick(BENCHES, rest, prog, "The benchmarks behind the README's tables.")
    if isinstance(picked, int):
        return picked
    name, rest = picked
    command = BENCHES[name]
    if command.module == "golden.bench":
        # golden.bench has speed/accuracy commands of its own: "fourbit bench speed" is "golden.bench speed".
        return command, [name, *rest], prog
    return command, rest, f"{prog} {name}"


def main(argv=None):
    """Entry point of the ``fourbit`` console script and of ``python -m fourbit``; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        ``<command> [args...]`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The tool's exit status; 2 for a usage error, 130 after Ctrl-C.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        resolved = _resolve(argv, "fourbit")
        if isinstance(resolved, int):
            return resolved
        command, rest, prog = resolved
        return run_main(command.run, prog, rest, prog=prog)
    except SystemExit as exit_:
        # argparse exits (--help, usage errors) become the return value, so callers get a status either way.
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
