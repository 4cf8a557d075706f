"""fourbit: open hardware for ultra-low-precision (4-bit) training, proved bit-exact.

The package holds the ``fourbit`` console command (:mod:`fourbit.cli`, the
top layer: it drives every other package) and :mod:`fourbit.util`, the
bottom layer: small utilities without domain code that every package may
import. This ``__init__`` imports nothing, so importing a utility never
pulls in the command.
"""
