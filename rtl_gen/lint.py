"""``python -m rtl_gen.lint``: ``verilator --lint-only -Wall`` over every generated module.

The only waivers are those in :data:`WAIVERS` (``rtl_gen/lint_waivers.vlt``,
each one documented there). Any other warning or error fails the run.
"""

import json
import pathlib
import subprocess
import sys

from fourbit.util.cli import OneLineParser, run_main
from fourbit.util.tools import tool_env

__all__ = ["WAIVERS", "lint_file", "lint_directory", "main"]


#: The single documented waiver file.
WAIVERS = pathlib.Path(__file__).resolve().parent / "lint_waivers.vlt"


def lint_file(path, top):
    """Lint one Verilog file; returns the list of diagnostic lines (empty when clean)."""
    command = ["verilator", "--lint-only", "-Wall", "--top-module", top, str(WAIVERS), str(path)]
    result = subprocess.run(command, env=tool_env(), capture_output=True, text=True)
    diagnostics = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("%")]
    if result.returncode != 0 and not diagnostics:
        diagnostics = [f"%Error: verilator exited with status {result.returncode}"]
    return diagnostics


def lint_directory(directory):
    """Lint every module listed in ``directory``/manifest.json: ``{module: diagnostics}``."""
    # Imported here: the generator pulls in every hardware unit, and the simulator layer imports this
    # module for WAIVERS alone (verify.gemm's start-up).
    from .generate import MANIFEST_NAME

    directory = pathlib.Path(directory)
    manifest_path = directory / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text())
    except OSError:
        raise ValueError(f"no {manifest_path} (run `make rtl` first)") from None
    return {name: lint_file(directory / entry["file"], name) for name, entry in manifest["modules"].items()}


def _parser(prog=None):
    parser = OneLineParser(
        prog=prog or "python -m rtl_gen.lint",
        error_prefix=prog or "rtl_gen.lint",
        description=__doc__.splitlines()[0],
        epilog="Lints exactly the modules the directory's manifest.json lists.",
    )
    parser.add_argument("--dir", default="build/rtl", help="generated RTL directory (default: %(default)s)")
    return parser


def main(argv=None, prog=None):
    """Entry point of ``python -m rtl_gen.lint``; returns 0 when every module is clean, 1 if not, 2 on bad input."""
    args = _parser(prog).parse_args(argv)
    prog = prog or "rtl_gen.lint"
    try:
        results = lint_directory(args.dir)
    except ValueError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    failed = 0
    for name, diagnostics in results.items():
        print(f"{name:16s} {'clean' if not diagnostics else f'{len(diagnostics)} diagnostic(s)'}")
        for line in diagnostics:
            print(f"  {line}")
        failed += bool(diagnostics)
    if failed:
        print(f"{prog}: error: {failed} module(s) not lint-clean", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "rtl_gen.lint"))
