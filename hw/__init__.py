"""Amaranth hardware of fourbit: processing elements and their datapaths.

Standalone PEs (SPEC section 3): :class:`Int4MAC` (``int4_mac``),
:class:`LogMAC` (``log_mac``), :class:`FP16MAC` (``fp16_mac``). Their pieces
(:mod:`hw.arith` products, :mod:`hw.fp` IEEE datapaths, :mod:`hw.accumulate`
update rules, :mod:`hw.pipeline` stages) are functions that add logic to a
caller's module, so arrays reuse them without extra hierarchy.
"""

from .fp16_mac import FP16MAC
from .int4_mac import Int4MAC
from .log_mac import LogMAC

__all__ = ["Int4MAC", "LogMAC", "FP16MAC"]
