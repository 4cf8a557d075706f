"""``python -m rtl_gen``: write ``<module>.v`` per configured design plus ``manifest.json``.

Examples::

    python -m rtl_gen                                   # configs/default.toml -> build/rtl
    python -m rtl_gen --set int4_mac.acc_width=32 --set fp16_mac.pipeline=1
    python -m rtl_gen --config configs/pipelined.toml --out build/rtl-pipelined
    python -m rtl_gen --list
"""

import json
import pathlib
import sys

from fourbit.util.cli import OneLineParser, run_main
from hw.units import UNITS

from .config import DEFAULT_CONFIG, apply_overrides, load_config, parse_override
from .generate import MANIFEST_NAME, generate, write_outputs

#: Widest accumulator (``*_width`` parameter) rtl_gen elaborates. 64 bits already
#: hold more than 2^50 maximal INT4 or FP4 products, so wider ones buy nothing;
#: far wider ones (acc_width = 100000) fail inside Amaranth's elaboration.
MAX_WIDTH = 128
_WIDTH_REASON = "64 bits already hold more than 2^50 maximal products; far wider ones fail inside Amaranth"


def _parser(prog=None):
    parser = OneLineParser(
        prog=prog or "python -m rtl_gen",
        error_prefix=prog or "rtl_gen",
        description="Generate the Verilog of the fourbit processing elements and "
        "build/rtl/manifest.json (ports, parameters, latency, overflow bound).",
        epilog='Designs are TOML tables [<module name>] with an optional kind = "<unit>" '
        "and unit parameters; see configs/default.toml.",
    )
    parser.add_argument(
        "--config", default=str(DEFAULT_CONFIG), metavar="FILE", help="TOML design config (default: %(default)s)"
    )
    parser.add_argument("--out", default="build/rtl", metavar="DIR", help="output directory (default: %(default)s)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME.PARAM=VALUE",
        help="override one parameter of one design (repeatable), e.g. int4_mac.acc_width=32",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="generate only this design (repeatable); its entries replace those of the same name in an existing "
        "manifest.json, whose other entries are kept",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the unit kinds with their default parameters and exit"
    )
    return parser


def check_widths(designs):
    """Refuse a ``*_width`` parameter above :data:`MAX_WIDTH` before anything is elaborated."""
    for design in designs:
        for name, value in design.params.items():
            if name.endswith("width") and isinstance(value, int) and value > MAX_WIDTH:
                raise ValueError(
                    f"{design.name}: {name} = {value} is above the limit of {MAX_WIDTH} bits: {_WIDTH_REASON}"
                )


def existing_entries(out_dir):
    """The modules of ``out_dir``'s manifest.json (``{}`` when there is none), which ``--only`` keeps.

    Raises
    ------
    ValueError
        The manifest exists but is not one rtl_gen wrote: ``--only`` would lose its entries.
    """
    path = pathlib.Path(out_dir) / MANIFEST_NAME
    if not path.exists():
        return {}
    try:
        modules = json.loads(path.read_text())["modules"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"--only: cannot read the existing {path} to update it ({error}); remove it first") from None
    if not isinstance(modules, dict):
        raise ValueError(f"--only: {path} has no module table; remove it first")
    return modules


def main(argv=None, prog=None):
    """Entry point of ``python -m rtl_gen``; returns the exit status (0, or 2 on bad input)."""
    args = _parser(prog).parse_args(argv)
    prog = prog or "rtl_gen"
    if args.list:
        column = max(len(kind) for kind in UNITS)
        for unit in UNITS.values():
            defaults = ", ".join(f"{k}={v}" for k, v in unit.defaults.items())
            print(f"{unit.kind:{column}s}  {unit.description} [{defaults}]")
        return 0
    try:
        designs = load_config(args.config)
        designs = apply_overrides(designs, [parse_override(o) for o in args.overrides])
        if args.only:
            known = {design.name for design in designs}
            missing = [name for name in args.only if name not in known]
            if missing:
                raise ValueError(
                    f"--only: unknown design(s) {', '.join(missing)} (designs: {', '.join(sorted(known))})"
                )
            designs = [design for design in designs if design.name in args.only]
        check_widths(designs)
        # --only must never shrink the manifest `make lint` reads: keep the other modules' entries.
        kept = existing_entries(args.out) if args.only else {}
        generated = generate(designs)
        paths = write_outputs(args.out, generated, kept_entries=kept)
    except (ValueError, TypeError, OSError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "rtl_gen"))
