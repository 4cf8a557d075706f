"""``python -m boards.host``: run GEMMs on a board's UART GEMM engine and check them against ``golden/``.

Example (iCEBreaker: the FTDI's second interface; ULX3S: its only one)::

    python -m boards.host --port /dev/ttyUSB1 --pe int4 --m 16 --k 300 --n 12 --seed 1
    python -m boards.host --port /dev/ttyUSB1 --pe int4 --a A.npy --b B.npy --out C.npy
    python -m boards.host --port /dev/ttyUSB1 --pe mxfp4 --a A.npy --a-scales AS.npy --b B.npy --b-scales BS.npy

The first form draws random operands (every code, NaN/inf-free FP16 values),
runs ``A @ B`` on the board, computes the same GEMM with
:mod:`golden.reference` and exits 0 only if the two agree bit for bit. The
second runs the given operands (SPEC section 5 dtypes and ranges, as
:mod:`verify.gemm`) and writes what the board computed.

The host side is transport-agnostic: :class:`Board` talks to anything with
``write(bytes)`` and ``read(n) -> bytes`` (:class:`SerialTransport` opens a
tty with plain ``termios``, no pyserial; the cocotb end-to-end test plugs in
a simulated UART). :func:`run_gemm` tiles any M x K x N GEMM onto the
board's R x C array with :func:`hw.tiling.schedule` (zero-padded R x C
output tiles), loads each tile's operands in chunks of at most ``depth`` k
(later chunks RUN with ACCUMULATE, so the arithmetic is exactly that of one
long tile) and reassembles C with :func:`hw.tiling.assemble`. An integer
GEMM whose K the accumulators might not hold (above the overflow bound of
the width INFO reports: a lean engine's accumulators are sized for a declared
K, :mod:`hw.fpga_array`) runs as GEMMs of K chunks they do hold, whose
results the host adds (exact int64 sums).

Limits: M, K and N are at most :data:`MAX_DIMENSION`, each of the element
counts M*K, K*N and M*N at most :data:`MAX_ELEMENTS`, and the MACs M*K*N at
most :data:`MAX_MACS`. The host builds the whole tiled schedule in memory
(up to two words per MAC on a 1x1 array), and at 115200 baud a GEMM at these
limits already streams for hours; larger ones are refused before anything is
generated or sent.
"""

import math
import os
import re
import select
import sys
import termios
import time

import numpy as np

from fourbit.util.cli import OneLineParser, bit_flag, check_output_file, non_negative_int, run_main
from fourbit.util.files import write_atomically
from hw import tiling
from hw.engine.protocol import INFO_LENGTH, MAGIC, MODE_FLAGS, VERSION, Command, Flag, Status, kind_of_code
from hw.kinds import GEMMS, get_gemm, get_kind
from hw.kinds import GemmInputError as GemmError

__all__ = [
    "BoardError",
    "BoardInfo",
    "Board",
    "SerialTransport",
    "run_gemm",
    "golden_gemm",
    "random_operands",
    "random_inputs",
    "check_gemm_size",
    "standard_baud_rates",
    "MAX_DIMENSION",
    "MAX_ELEMENTS",
    "MAX_MACS",
    "main",
]

#: Largest M, K or N (see the module docstring for why there are limits).
MAX_DIMENSION = 1 << 16
#: Largest element count of A (M*K), B (K*N) and C (M*N).
MAX_ELEMENTS = 1 << 24
#: Largest M*K*N.
MAX_MACS = 1 << 27


class BoardError(RuntimeError):
    """The board answered something unexpected (or nothing)."""


class BoardInfo:
    """What INFO reports.

    Attributes
    ----------
    kind : str
        Array kind (:data:`hw.kinds.KINDS`).
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
    """Protocol client (:mod:`hw.engine.protocol`) over a byte transport.

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
            kind = kind_of_code(reply[4])
            if kind is None:
                raise BoardError(f"unknown array kind code {reply[4]}")
            self._info = BoardInfo(
                kind=kind.name,
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
        """LOAD_A: ``packed`` is ``count x bytes`` uint8 (:func:`hw.tiling.pack_rows`)."""
        self._load(Command.LOAD_A, packed)

    def load_b(self, packed):
        """LOAD_B: likewise for rows of the B tile."""
        self._load(Command.LOAD_B, packed)

    def run(self, k, flags):
        """RUN ``k`` loaded steps with :class:`hw.engine.protocol.Flag` ``flags``."""
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


def run_gemm(board, pe, a, b, *, a_signed=True, b_signed=True, a_scales=None, b_scales=None):
    """``A @ B`` as the board computes it (int64, or float32 for a floating-point GEMM).

    Parameters
    ----------
    board : Board
    pe : str
        GEMM (SPEC section 5, :data:`hw.kinds.GEMMS`); the board's array must
        run it (its own kind's GEMM, or one its kind also runs).
    a, b : numpy.ndarray
        Operands as for ``python -m verify.gemm``.
    a_scales, b_scales : numpy.ndarray, optional
        The block scales of a block-scaled GEMM (SPEC section 7); its K runs
        padded to whole blocks (zero codes), as on the simulated arrays.

    Raises
    ------
    hw.kinds.GemmInputError
        Bad operands, a GEMM the board's array cannot run, or accumulators
        that cannot hold even one product.
    BoardError
        The board misbehaved.
    """
    info = board.info()
    gemm, kind = get_gemm(pe), get_kind(info.kind)
    if not kind.runs(gemm):
        raise GemmError(f"the board runs {info.kind} GEMMs, not {pe}")
    scales = gemm.scale_arguments(a_scales, b_scales)
    a_bits, b_bits = gemm.operand_bits(a, b, a_signed=a_signed, b_signed=b_signed, **scales)
    k = a_bits.shape[1]
    if not kind.is_float and k > kind.max_k(info.acc_width):
        # A K the accumulators might not hold runs as GEMMs of K chunks they do hold,
        # added here: integer sums, exact in int64.
        limit = kind.max_k(info.acc_width)
        if limit < 1:
            raise GemmError(f"the board's {info.acc_width}-bit accumulators cannot hold one {pe} product")
        total = None
        for start in range(0, k, limit):
            part = run_gemm(
                board, pe, a[:, start : start + limit], b[start : start + limit], a_signed=a_signed, b_signed=b_signed
            )
            total = part if total is None else total + part
        return total
    plan = tiling.schedule(a_bits, b_bits, info.rows, info.cols)
    spacing = plan.cycles // len(plan.tiles)
    flags = Flag(0)
    for mode, value in kind.mode_inputs(gemm, a_signed=a_signed, b_signed=b_signed).items():
        if value:
            flags |= MODE_FLAGS[mode]
    a_packed = tiling.pack_rows(plan.a_words, kind.a_width)
    b_packed = tiling.pack_rows(plan.b_words, kind.b_width)
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
    return gemm.decode(raw, info.acc_width)


def golden_gemm(pe, a, b, *, a_signed=True, b_signed=True, a_scales=None, b_scales=None):
    """The :mod:`golden.reference` result of the same GEMM, as numpy."""
    gemm = get_gemm(pe)
    return gemm.reference(a, b, a_signed=a_signed, b_signed=b_signed, **gemm.scale_arguments(a_scales, b_scales))


def random_operands(pe, m, k, n, *, a_signed=True, b_signed=True, seed=0):
    """Random operands covering every code (finite values for a floating-point GEMM)."""
    rng = np.random.default_rng(seed)
    return get_gemm(pe).random_operands(rng, m, k, n, a_signed=a_signed, b_signed=b_signed)


def random_inputs(pe, m, k, n, *, a_signed=True, b_signed=True, seed=0):
    """Random keyword arguments of :func:`run_gemm` / :func:`golden_gemm`: ``a``, ``b`` and,
    for a block-scaled GEMM, ``a_scales`` and ``b_scales`` (extreme scales included)."""
    rng = np.random.default_rng(seed)
    return get_gemm(pe).random_inputs(rng, m, k, n, a_signed=a_signed, b_signed=b_signed)


def check_gemm_size(m, k, n):
    """Refuse an ``m x k x n`` GEMM beyond :data:`MAX_DIMENSION`, :data:`MAX_ELEMENTS` or :data:`MAX_MACS`.

    Raises
    ------
    verify.gemm.GemmError
        Naming the limit and why it exists.
    """
    why = "the host holds the tiled schedule in memory and the UART would stream for hours"
    for name, value in (("M", m), ("K", k), ("N", n)):
        if value > MAX_DIMENSION:
            raise GemmError(f"{name}={value} exceeds the limit of {MAX_DIMENSION} ({why})")
    for name, value in (("M*K", m * k), ("K*N", k * n), ("M*N", m * n)):
        if value > MAX_ELEMENTS:
            raise GemmError(f"{name}={value} elements exceed the limit of {MAX_ELEMENTS} ({why})")
    if m * k * n > MAX_MACS:
        raise GemmError(f"M*K*N={m * k * n} MACs exceed the limit of {MAX_MACS} ({why})")


def standard_baud_rates():
    """The line rates this system's ``termios`` knows (``B<rate>`` constants), ascending."""
    return sorted(int(name[1:]) for name in dir(termios) if re.fullmatch(r"B[1-9][0-9]*", name))


def _speed(baud):
    speed = getattr(termios, f"B{baud}", None) if baud > 0 else None
    if speed is None:
        rates = ", ".join(map(str, standard_baud_rates()))
        raise ValueError(f"unsupported baud rate {baud} (standard rates: {rates})")
    return speed


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
        speed = _speed(baud)
        self.timeout = timeout
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        try:
            if not os.isatty(self.fd):
                raise ValueError(f"{port} is not a serial port (not a terminal device)")
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
    parser.add_argument("--pe", required=True, choices=tuple(GEMMS), help="GEMM kind")
    parser.add_argument("--m", type=non_negative_int, default=8, help="random GEMM: rows of A")
    parser.add_argument("--k", type=non_negative_int, default=64, help="random GEMM: inner dimension")
    parser.add_argument("--n", type=non_negative_int, default=8, help="random GEMM: columns of B")
    parser.add_argument("--seed", type=int, default=0, help="random GEMM: seed")
    parser.add_argument("--a", metavar="A.npy", help="left operand (instead of a random GEMM)")
    parser.add_argument("--b", metavar="B.npy", help="right operand")
    parser.add_argument("--a-scales", metavar="AS.npy", help="block scales of A (mxfp4/nvfp4 only, SPEC section 7)")
    parser.add_argument("--b-scales", metavar="BS.npy", help="block scales of B (mxfp4/nvfp4 only)")
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
        # Every argument is checked before operands are made or the port is opened.
        _speed(args.baud)
        if not (math.isfinite(args.timeout) and args.timeout > 0):
            raise ValueError(f"--timeout must be a positive number of seconds, not {args.timeout}")
        if (args.a is None) != (args.b is None):
            raise GemmError("give both --a and --b, or neither (random GEMM)")
        gemm = get_gemm(args.pe)
        if args.a is not None:

            def load(path):
                return None if path is None else np.load(path, allow_pickle=False)

            a, b = load(args.a), load(args.b)
            scales = gemm.scale_arguments(load(args.a_scales), load(args.b_scales))
        else:
            if args.a_scales is not None or args.b_scales is not None:
                raise GemmError("--a-scales/--b-scales go with --a and --b (a random GEMM draws its own)")
            check_gemm_size(args.m, args.k, args.n)
            scales = random_inputs(
                args.pe, args.m, args.k, args.n, a_signed=args.a_signed, b_signed=args.b_signed, seed=args.seed
            )
            a, b = scales.pop("a"), scales.pop("b")
        # Validate before touching the board.
        gemm.operand_bits(a, b, a_signed=args.a_signed, b_signed=args.b_signed, **scales)
        check_gemm_size(a.shape[0], a.shape[1], b.shape[1])
        transport = SerialTransport(args.port, baud=args.baud, timeout=args.timeout)
    except (GemmError, ValueError, OSError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    try:
        board = Board(transport)
        info = board.info()
        started = time.perf_counter()
        c = run_gemm(board, args.pe, a, b, a_signed=args.a_signed, b_signed=args.b_signed, **scales)
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
        # As np.save would: a name without .npy gets it.
        out = args.out if args.out.endswith(".npy") else args.out + ".npy"
        write_atomically(out, lambda tmp: np.save(tmp, c), suffix=".tmp.npy")
    expected = golden_gemm(args.pe, a, b, a_signed=args.a_signed, b_signed=args.b_signed, **scales)
    mismatches = int(np.count_nonzero(gemm.result_bits(c) != gemm.result_bits(expected)))
    same = mismatches == 0
    print(
        f"{info}: {a.shape[0]}x{a.shape[1]}x{b.shape[1]} {args.pe} GEMM in {seconds:.2f} s: "
        + ("bit-exact against golden/" if same else f"{mismatches} of {c.size} results differ from golden/")
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(run_main(main, "boards.host"))
