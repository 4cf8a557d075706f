"""Verilog generation for fourbit (``make rtl`` / ``python -m rtl_gen``).

``rtl_gen`` drives :mod:`hw` (and the board tops' UART GEMM engine,
:mod:`boards.engine`) to write deterministic Verilog and a manifest of every
generated module into ``build/rtl``.
"""
