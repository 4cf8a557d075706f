"""The UART command protocol between the host (:mod:`boards.host`) and the board (:mod:`hw.engine`).

Framing: 8N1 bytes; every multi-byte field is little-endian. The host sends
one command and waits for its reply before the next (the board ignores
nothing but also buffers nothing: bytes sent while it runs a GEMM are lost).
Every reply starts with a status byte.

========  =====  ===========================================  =====================================
command   byte   host sends after the byte                    board replies
========  =====  ===========================================  =====================================
INFO      ``I``  nothing                                      status, ``F4``, version, kind, rows
                                                              (u16), cols (u16), acc_width (u8),
                                                              depth (u16): 12 bytes
LOAD_A    ``A``  count n (u16, 1..depth), then n words of     status, after the last byte
                 ``ceil(rows * a_width / 8)`` bytes: word k
                 is column k of the A tile, ``A[i, k]`` at
                 bits ``i * a_width``
LOAD_B    ``B``  count n, then n words of                     status, after the last byte
                 ``ceil(cols * b_width / 8)`` bytes: word k
                 is row k of the B tile
RUN       ``R``  K (u16, 0..depth), flags (u8)                status, once the results are in the
                                                              C buffer
READ_C    ``C``  nothing                                      status, then rows x cols results
                                                              (row-major), ``ceil(acc_width / 8)``
                                                              bytes each, two's complement or
                                                              binary32 bits
========  =====  ===========================================  =====================================

RUN flags: bit 0 ``ACCUMULATE`` (the first k does not clear the
accumulators: the tile continues the previous RUN, so a K longer than the
buffers runs as several loads without changing a single rounding), bit 1
``a_signed``, bit 2 ``b_signed``, bit 3 ``mode`` (train array: 0 INT4 x
INT4, 1 FP4 x INT4); mode bits the array kind lacks are ignored. RUN with
K = 0 and no ACCUMULATE gives a zero tile; with ACCUMULATE it just drains
the accumulators.

Status: 0 OK, 1 unknown command, 2 count or K out of range (the board then
returns to waiting for a command, so the host must not send the payload).
"""

import enum

from ..kinds import KINDS, get_kind

__all__ = ["Command", "Status", "Flag", "MODE_FLAGS", "kind_of_code", "MAGIC", "VERSION", "INFO_LENGTH", "info_reply"]


class Command(enum.IntEnum):
    INFO = ord("I")
    LOAD_A = ord("A")
    LOAD_B = ord("B")
    RUN = ord("R")
    READ_C = ord("C")


class Status(enum.IntEnum):
    OK = 0
    UNKNOWN_COMMAND = 1
    OUT_OF_RANGE = 2


class Flag(enum.IntFlag):
    ACCUMULATE = 1
    A_SIGNED = 2
    B_SIGNED = 4
    MODE = 8


#: The RUN flag of each mode input of an array (:attr:`hw.kinds.base.PEKind.a_modes`, ``b_modes``).
MODE_FLAGS = {"a_signed": Flag.A_SIGNED, "b_signed": Flag.B_SIGNED, "mode": Flag.MODE}
MAGIC = b"F4"
VERSION = 1
#: Bytes of the INFO reply, status included.
INFO_LENGTH = 12


def info_reply(*, kind, rows, cols, acc_width, depth):
    """The INFO reply (status included) of an engine with these parameters.

    The kind byte is the array kind's :attr:`~hw.kinds.base.PEKind.info_code`.
    """
    reply = bytes([Status.OK]) + MAGIC + bytes([VERSION, get_kind(kind).info_code])
    reply += rows.to_bytes(2, "little") + cols.to_bytes(2, "little")
    reply += bytes([acc_width]) + depth.to_bytes(2, "little")
    assert len(reply) == INFO_LENGTH
    return reply


def kind_of_code(code):
    """The array kind (:class:`~hw.kinds.base.PEKind`) whose INFO kind byte is ``code``, or None."""
    return next((kind for kind in KINDS.values() if kind.info_code == code), None)
