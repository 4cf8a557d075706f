"""Amaranth hardware of fourbit: processing elements, arrays and their datapaths.

- :mod:`hw.kinds`: the PE-kind registry (operand formats, product and
  accumulate rules, accumulator widths, GEMMs, standalone tops);
- :mod:`hw.pe`: the standalone SPEC section 3 top of a kind;
- :mod:`hw.array`: output-stationary systolic arrays of any kind,
  :mod:`hw.ws_array`: weight-stationary ones, and :mod:`hw.tiling`, how a
  GEMM is laid onto either;
- :mod:`hw.datapath`: the training datapath; :mod:`hw.engine`: the board tops'
  UART GEMM engine; :mod:`hw.units`: the catalog ``rtl_gen`` generates from.

Their pieces (:mod:`hw.arith` products, :mod:`hw.fp` IEEE datapaths,
:mod:`hw.accumulate` update rules, :mod:`hw.pipeline` stages) are functions
that add logic to a caller's module, so arrays reuse them without extra hierarchy.
"""
