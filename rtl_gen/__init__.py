"""Verilog generation for fourbit (``make rtl`` / ``python -m rtl_gen``).

``rtl_gen`` builds the units of :mod:`hw.units` (every PE kind's standalone
top and array, the training datapath, the board tops' UART GEMM engine) to
write deterministic Verilog and a manifest of every generated module into
``build/rtl``, and lints them (:mod:`rtl_gen.lint`).
"""
