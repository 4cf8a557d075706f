"""The UART GEMM engine: the hardware of the FPGA board tops (docs/boards.md).

- :mod:`hw.engine.protocol`: the command protocol between host and engine;
- :mod:`hw.engine.uart`: 8N1 receiver and transmitter;
- :mod:`hw.engine.engine`: :class:`GemmEngine`, operand and result block RAMs
  around one systolic array (:mod:`hw.array`), driven by the protocol.

The boards (:mod:`boards`) put it on pins; the host driver (:mod:`boards.host`)
speaks the protocol.
"""

from .engine import GemmEngine

__all__ = ["GemmEngine"]
