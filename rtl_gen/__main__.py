"""``python -m rtl_gen``: write ``<module>.v`` per configured design plus ``manifest.json``.

Examples::

    python -m rtl_gen                                   # configs/default.toml -> build/rtl
    python -m rtl_gen --set int4_mac.acc_width=32 --set fp16_mac.pipeline=1
    python -m rtl_gen --config configs/pipelined.toml --out build/rtl-pipelined
    python -m rtl_gen --list
"""

import argparse
import sys

from hw.units import UNITS

from .config import DEFAULT_CONFIG, apply_overrides, load_config, parse_override
from .generate import generate, write_outputs


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m rtl_gen",
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
        "--only", action="append", default=[], metavar="NAME", help="generate only this design (repeatable)"
    )
    parser.add_argument(
        "--list", action="store_true", help="list the unit kinds with their default parameters and exit"
    )
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
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
        generated = generate(designs)
        paths = write_outputs(args.out, generated)
    except (ValueError, TypeError, OSError) as error:
        print(f"rtl_gen: error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
