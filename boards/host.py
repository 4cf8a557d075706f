"""``python -m boards.host``: run GEMMs on a board's UART GEMM engine and check them against ``golden/``.

Example (iCEBreaker: the FTDI's second interface; ULX3S: its only one)::

    python -m boards.host --port /dev/ttyUSB1 --pe int4 --m 16 --k 300 --n 12 --seed 1
    python -m boards.host --port /dev/ttyUSB1 --pe int4 --a A.npy --b B.npy --out C.npy

The first form draws random operands (every code, NaN/inf-free FP16 values),
runs ``A @ B`` on the board, computes the same GEMM with
:mod:`golden.reference` and exits 0 only if the two agree bit for bit. The
second runs the given operands (SPEC section 5 dtypes and ranges, as
:mod:`verify.gemm`) and writes what the board computed.

The host side is transport-agnostic: :class:`Board` talks to anything with
``write(bytes)`` and ``read(n) -> bytes`` (:class:`SerialTransport` opens a
tty with plain ``termios``, no pyserial; the cocotb end-to-end test plugs in
a simulated UART). :func:`run_gemm` tiles any M x K x N GEMM onto the
board's R x C array with :func:`verify.tiling.schedule` (zero-padded R x C
output tiles), loads each tile's operands in chunks of at most ``depth`` k
(later chunks RUN with ACCUMULATE, so the arithmetic is exactly that of one
long tile) and reassembles C with :func:`verify.tiling.assemble`.
"""

import os
import select
import sys
import termios
import time

import numpy as np

from fourbit.util.cli import OneLineParser, bit_flag, check_output_file, non_negative_int, run_main
from hw.arith import max_safe_k
from hw.array import ARRAY_KINDS
from verify import tiling
from verify.gemm import GemmError, array_kind, operand_bits

from .protocol import INFO_LENGTH, KIND_CODES, MAGIC, VERSION, Command, Flag, Status

__all__ = ["BoardError", "BoardInfo", "Board", "SerialTransport", "run_gemm", "golden_gemm", "main"]


class BoardError(RuntimeError):
    """The board answered something unexpected (or nothing)."""


class BoardInfo:
    """What INFO reports.

    Attributes
    ----------
    kind : str
        Array kind (``int4``, ``log``, ``fp16``, ``train``).
    rows, cols, acc_width, depth : int
    """

    def __init__(self, *, kind, rows, cols, acc_width, depth):
        self.kind, self.rows, self.cols, self.acc_width, self.depth = kind, rows, cols, acc_width, depth

    def __repr__(self):
        return (
            f"BoardInfo(kind={self.kind!r}, rows={self.rows}, cols={self.cols}, "
            f"acc_width={self.acc_width}, depth={self.depth})"
        )


class Board:
    """Protocol client (:mod:`boards.protocol`) over a byte transport.

    Parameters
    ----------
    transport : object
        Has ``write(data: bytes)`` and ``read(n: int) -> bytes`` (exactly
        ``n`` bytes, or an exception on timeout).
    """

    def __init__(self, transport):
        self.transport = transport
        self._info = None

    def _status(self, command):
        status = self.transport.read(1)[0]
        if status != Status.OK:
            name = Status(status).name if status in Status._value2member_map_ else f"0x{status:02x}"
            raise BoardError(f"board refused {command.name}: status {name}")

    def info(self):
        """Query (once) and return the board's :class:`BoardInfo`."""
        if self._info is None:
            self.transport.write(bytes([Command.INFO]))
            reply = self.transport.read(INFO_LENGTH)
            if reply[0] != Status.OK or reply[1:3] != MAGIC or reply[3] != VERSION:
                raise BoardError(f"not a fourbit GEMM engine (INFO reply {reply.hex()})")
            kinds = {code: name for name, code in KIND_CODES.items()}
            if reply[4] not in kinds:
                raise BoardError(f"unknown array kind code {reply[4]}")
            self._info = BoardInfo(
                kind=kinds[reply[4]],
                rows=int.from_bytes(reply[5:7], "little"),
                cols=int.from_bytes(reply[7:9], "little"),
                acc_width=reply[9],
                depth=int.from_bytes(reply[10:12], "little"),
            )
        return self._info

    def _load(self, command, packed):
        info = self.info()
        count = len(packed)
        if not 1 <= count <= info.depth:
            raise ValueError(f"{command.name}: {count} words, the buffers hold 1..{info.depth}")
        self.transport.write(bytes([command]) + count.to_bytes(2, "little") + packed.tobytes())
        self._status(command)

    def load_a(self, packed):
        """LOAD_A: ``packed`` is ``count x bytes`` uint8 (:func:`verify.tiling.pack_rows`)."""
        self._load(Command.LOAD_A, packed)

    def load_b(self, packed):
        """LOAD_B: likewise for rows of the B tile."""
        self._load(Command.LOAD_B, packed)

    def run(self, k, flags):
        """RUN ``k`` loaded steps with :class:`boards.protocol.Flag` ``flags``."""
        if not 0 <= k <= self.info().depth:
            raise ValueError(f"RUN: K={k} outside 0..{self.info().depth}")
        self.transport.write(bytes([Command.RUN]) + k.to_bytes(2, "little") + bytes([int(flags)]))
        self._status(Command.RUN)

    def read_c(self):
        """READ_C: the ``rows x cols`` raw result words (uint64)."""
        info = self.info()
        nbytes = (info.acc_width + 7) // 8
        self.transport.write(bytes([Command.READ_C]))
        self._status(Command.READ_C)
        raw = np.frombuffer(self.transport.read(info.rows * info.cols * nbytes), dtype=np.uint8)
        words = tiling.unpack_rows(raw.reshape(-1, nbytes), 1, 8 * nbytes)[:, 0]
        return (words & np.uint64((1 << info.acc_width) - 1)).reshape(info.rows, info.cols)


def run_gemm(board, pe, a, b, *, a_signed=True, b_signed=True):
    """``A @ B`` as the board computes it (int64, or float32 for ``fp16``).

    Parameters
    ----------
    board : Board
    pe : {"int4", "log", "fp16"}
        GEMM kind (SPEC section 5); the board's array must run it (its own
        kind, or ``train`` for ``int4`` and ``log``).
    a, b : numpy.ndarray
        Operands as for ``python -m verify.gemm``.

    Raises
    ------
    verify.gemm.GemmError
        Bad operands, a GEMM the board's array cannot run, or a K that could
        overflow its accumulators.
    BoardError
        The board misbehaved.
    """
    info = board.info()
    wanted = array_kind(pe, "train" if info.kind == "train" else "dedicated")
    if wanted != info.kind:
        raise GemmError(f"the board runs {info.kind} GEMMs, not {pe}")
    spec = ARRAY_KINDS[info.kind]
    a_bits, b_bits = operand_bits(pe, a, b, a_signed=a_signed, b_signed=b_signed)
    k = a.shape[1]
    if not spec.is_float and k > max_safe_k(spec.product_range, info.acc_width):
        raise GemmError(
            f"K={k} can overflow the board's {info.acc_width}-bit accumulators "
            f"(at most {max_safe_k(spec.product_range, info.acc_width)})"
        )
    plan = tiling.schedule(a_bits, b_bits, info.rows, info.cols)
    spacing = plan.cycles // len(plan.tiles)
    flags = Flag(0)
    if a_signed:
        flags |= Flag.A_SIGNED
    if b_signed:
        flags |= Flag.B_SIGNED
    if pe == "log":
        flags |= Flag.MODE
    a_packed = tiling.pack_rows(plan.a_words, spec.a_width)
    b_packed = tiling.pack_rows(plan.b_words, spec.b_width)
    tiles = []
    for t in range(len(plan.tiles)):
        start = t * spacing
        if k == 0:
            board.run(0, flags)
        for chunk in range(0, k, info.depth):
            steps = min(info.depth, k - chunk)
            board.load_a(a_packed[start + chunk : start + chunk + steps])
            board.load_b(b_packed[start + chunk : start + chunk + steps])
            board.run(steps, flags | (Flag.ACCUMULATE if chunk else Flag(0)))
        tiles.append(board.read_c())
    # Per column, the values it drained: rows of each tile, tiles in order.
    stacked = np.concatenate(tiles, axis=0)
    raw = tiling.assemble(plan, [stacked[:, j] for j in range(info.cols)])
    if spec.is_float:
        return raw.astype(np.uint32).view(np.float32)
    return tiling.sign_extend(raw, info.acc_width)


def golden_gemm(pe, a, b, *, a_signed=True, b_signed=True):
    """The :mod:`golden.reference` result of the same GEMM, as numpy."""
    import torch

    from golden.reference import fp16_gemm, int_gemm, log_gemm

    ta, tb = torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(np.ascontiguousarray(b))
    if pe == "int4":
        return int_gemm(ta.to(torch.int64), tb.to(torch.int64), a_signed=a_signed, b_signed=b_signed).numpy()
    if pe == "log":
        return log_gemm(ta.to(torch.int64), tb.to(torch.int64), x_signed=b_signed).numpy()
    return fp16_gemm(ta, tb).numpy()


def random_operands(pe, m, k, n, *, a_signed=True, b_signed=True, seed=0):
    """Random operands covering every code (finite FP16 values for ``fp16``)."""
    rng = np.random.default_rng(seed)

    def codes(shape, signed):
        return rng.integers(-8 if signed else 0, 8 if signed else 16, size=shape).astype(np.int8)

    if pe == "fp16":
        return (rng.standard_normal((m, k)).astype(np.float16), rng.standard_normal((k, n)).astype(np.float16))
    if pe == "log":
        return rng.integers(0, 16, size=(m, k)).astype(np.uint8), codes((k, n), b_signed)
    return codes((m, k), a_signed), codes((k, n), b_signed)


class SerialTransport:
    """A tty in raw 8N1 mode, opened with ``termios`` (no pyserial).

    Parameters
    ----------
    port : str
        Device path, e.g. ``/dev/ttyUSB1``.
    baud : int
        Line rate (a standard termios rate; the board's default is 115200).
    timeout : float
        Seconds a :meth:`read` may wait for the next byte.
    """

    def __init__(self, port, *, baud=115200, timeout=5.0):
        speed = getattr(termios, f"B{baud}", None)
        if speed is None:
            raise ValueError(f"unsupported baud rate {baud}")
        self.timeout = timeout
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        try:
            attrs = termios.tcgetattr(self.fd)
            iflag, oflag, cflag, lflag = 0, 0, termios.CS8 | termios.CREAD | termios.CLOCAL, 0
            cc = attrs[6]
            cc[termios.VMIN], cc[termios.VTIME] = 0, 0
            termios.tcsetattr(self.fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, speed, speed, cc])
            termios.tcflush(self.fd, termios.TCIOFLUSH)
        except BaseException:
            os.close(self.fd)
            raise

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        termios.tcdrain(self.fd)

    def read(self, n):
        chunks, left = [], n
        while left:
            ready, _, _ = select.select([self.fd], [], [], self.timeout)
            if not ready:
                raise BoardError(f"timeout: the board sent {n - left} of {n} bytes")
            chunk = os.read(self.fd, left)
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def close(self):
        os.close(self.fd)


def _parser(prog=None):
    parser = OneLineParser(
        prog=prog or "python -m boards.host",
        description="Run a GEMM on a board's UART GEMM engine; check it against golden/.",
    )
    parser.add_argument("--port", required=True, help="serial device of the board (e.g. /dev/ttyUSB1)")
    parser.add_argument("--baud", type=int, default=115200, help="line rate (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for a byte")
    parser.add_argument("--pe", required=True, choices=("int4", "log", "fp16"), help="GEMM kind")
    parser.add_argument("--m", type=non_negative_int, default=8, help="random GEMM: rows of A")
    parser.add_argument("--k", type=non_negative_int, default=64, help="random GEMM: inner dimension")
    parser.add_argument("--n", type=non_negative_int, default=8, help="random GEMM: columns of B")
    parser.add_argument("--seed", type=int, default=0, help="random GEMM: seed")
    parser.add_argument("--a", metavar="A.npy", help="left operand (instead of a random GEMM)")
    parser.add_argument("--b", metavar="B.npy", help="right operand")
    parser.add_argument("--out", metavar="C.npy", help="write the board's result here")
    parser.add_argument("--a-signed", type=bit_flag, default=True, metavar="0|1")
    parser.add_argument("--b-signed", type=bit_flag, default=True, metavar="0|1")
    return parser


def main(argv=None, prog=None):
    """Entry point of ``python -m boards.host``; returns the exit status (0 bit-exact, 1 not or a board error, 2 bad
    input)."""
    args = _parser(prog).parse_args(argv)
    prog = prog or "python -m boards.host"
    problem = args.out and check_output_file(args.out, "--out")
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        return 2
    try:
        if (args.a is None) != (args.b is None):
            raise GemmError("give both --a and --b, or neither (random GEMM)")
        if args.a is not None:
            a, b = np.load(args.a, allow_pickle=False), np.load(args.b, allow_pickle=False)
        else:
            a, b = random_operands(
                args.pe, args.m, args.k, args.n, a_signed=args.a_signed, b_signed=args.b_signed, seed=args.seed
            )
        # Validate before touching the board.
        operand_bits(args.pe, a, b, a_signed=args.a_signed, b_signed=args.b_signed)
        transport = SerialTransport(args.port, baud=args.baud, timeout=args.timeout)
    except (GemmError, ValueError, OSError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    try:
        board = Board(transport)
        info = board.info()
        started = time.perf_counter()
        c = run_gemm(board, args.pe, a, b, a_signed=args.a_signed, b_signed=args.b_signed)
        seconds = time.perf_counter() - started
    except GemmError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except BoardError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    finally:
        transport.close()
    if args.out:
        np.save(args.out, c)
    expected = golden_gemm(args.pe, a, b, a_signed=args.a_signed, b_signed=args.b_signed)
    if args.pe == "fp16":
        same = np.array_equal(c.view(np.uint32), expected.view(np.uint32))
    else:
        same = np.array_equal(c, expected)
    mismatches = (
        int(np.count_nonzero(c.view(np.uint32) != expected.view(np.uint32)))
        if args.pe == "fp16"
        else int(np.count_nonzero(c != expected))
    )
    print(
        f"{info}: {a.shape[0]}x{a.shape[1]}x{b.shape[1]} {args.pe} GEMM in {seconds:.2f} s: "
        + ("bit-exact against golden/" if same else f"{mismatches} of {c.size} results differ from golden/")
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(run_main(main, "boards.host"))
