"""``python -m rtl_gen.lint``: ``verilator --lint-only -Wall`` over every generated module.

The only waivers are those in :data:`WAIVERS` (``rtl_gen/lint_waivers.vlt``,
each one documented there). Any other warning or error fails the run.
"""

import argparse
import json
import pathlib
import subprocess
import sys

from fourbit.util.tools import tool_env

from .generate import MANIFEST_NAME

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
    directory = pathlib.Path(directory)
    manifest_path = directory / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text())
    except OSError:
        raise ValueError(f"no {manifest_path} (run `make rtl` first)") from None
    return {name: lint_file(directory / entry["file"], name) for name, entry in manifest["modules"].items()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m rtl_gen.lint", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="build/rtl", help="generated RTL directory (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        results = lint_directory(args.dir)
    except ValueError as error:
        print(f"rtl_gen.lint: error: {error}", file=sys.stderr)
        return 2
    failed = 0
    for name, diagnostics in results.items():
        print(f"{name:16s} {'clean' if not diagnostics else f'{len(diagnostics)} diagnostic(s)'}")
        for line in diagnostics:
            print(f"  {line}")
        failed += bool(diagnostics)
    if failed:
        print(f"rtl_gen.lint: error: {failed} module(s) not lint-clean", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
