"""Tiling any M x K x N GEMM onto an output-stationary R x C array (:mod:`hw.array`): the
host side of the array's port contract.

Pure numpy, shared by the cocotb driver (:mod:`verify.array_tb`), the
Amaranth-simulator tests and :mod:`verify.gemm`:

* :func:`schedule` cuts A into R-row blocks and B into C-column blocks
  (zero-padded at the edges), and lays out one tile after another, one k per
  cycle, with ``clear`` on a tile's first k and ``last`` on its final k, plus
  idle cycles when a tile is shorter than the drain needs
  (:func:`hw.array.min_tile_cycles`). A GEMM with K = 0 still runs one
  cycle per tile (``valid = 0``, ``clear = last = 1``): the RTL reports zeros.
  Its operand streams are :class:`Operands`: each block's words stored once
  and a per-cycle row index, since every block of A recurs once per block of
  B (a 512 x 1024 x 512 GEMM on 16 x 16 would otherwise take 2 x 128 MB).
* :func:`pack_words` / :func:`unpack_words` convert between numpy rows of
  fixed-width words and the wide integers the packed ports carry.
* :func:`assemble` puts the drained column streams back into an M x N matrix.

The weight-stationary arrays (:mod:`hw.ws_array`) have their own schedule
(:func:`ws_schedule`: weights loaded per K chunk and block of columns, A
streamed, partial sums summed in ascending k), :func:`ws_concatenate` and
:func:`ws_assemble`; :func:`split_columns` serves both.
"""

import dataclasses
import math

import numpy as np

from .array import min_tile_cycles

__all__ = [
    "Operands",
    "Schedule",
    "schedule",
    "concatenate",
    "split_columns",
    "pack_rows",
    "pack_words",
    "unpack_rows",
    "unpack_words",
    "sign_extend",
    "assemble",
    "WSSchedule",
    "ws_schedule",
    "ws_concatenate",
    "ws_assemble",
]


@dataclasses.dataclass
class Operands:
    """The per-cycle words of one operand port, each distinct row stored once.

    Attributes
    ----------
    table : numpy.ndarray
        ``n x count`` raw operand bits (uint64); row 0 is all zero (the idle cycles).
    index : numpy.ndarray
        ``cycles`` rows of ``table`` (uint32), one per cycle.
    """

    table: np.ndarray
    index: np.ndarray

    def words(self):
        """``cycles x count`` words, one row per cycle (materialized: ``cycles`` x ``count`` x 8 bytes)."""
        return self.table[self.index]

    def packed(self, width):
        """:func:`pack_rows` of :meth:`words`: the table is packed once, then indexed."""
        table = pack_rows(self.table, width)
        # Each packed row as one opaque item: indexing copies whole rows (much faster than row by byte).
        rows = np.ascontiguousarray(table).view(np.dtype((np.void, table.shape[1]))).reshape(len(table))
        return rows[self.index].view(np.uint8).reshape(len(self.index), table.shape[1])

    @staticmethod
    def join(parts):
        """One stream of ``parts`` (``(operands, idle)`` pairs: ``idle`` zero cycles before each)."""
        tables, indices, offset = [], [], 0
        for operands, idle in parts:
            if idle:
                indices.append(np.zeros(idle, dtype=np.uint32))  # row 0 of the first table: zeros
            indices.append(operands.index + np.uint32(offset))
            tables.append(operands.table)
            offset += len(operands.table)
        if offset >= 1 << 32:
            raise ValueError(f"{offset} operand rows do not fit a uint32 index")
        return Operands(np.concatenate(tables), np.concatenate(indices).astype(np.uint32, copy=False))


@dataclasses.dataclass
class Schedule:
    """Per-cycle inputs of one GEMM on one array.

    Attributes
    ----------
    a_operands : Operands
        ``rows`` raw A operand bits (uint64) per cycle (:attr:`a_words`).
    b_operands : Operands
        ``cols`` raw B operand bits per cycle (:attr:`b_words`).
    valid, clear, last : numpy.ndarray
        ``cycles`` control bits (uint8).
    tiles : list of (int, int)
        First row of A and first column of B of each tile, in issue order.
    m, n, rows, cols : int
        GEMM and array sizes.
    modes : dict of str -> numpy.ndarray
        Per-cycle values of the array's mode inputs (they travel with the data,
        so they may change from one GEMM to the next); filled by the caller.
    """

    a_operands: Operands
    b_operands: Operands
    valid: np.ndarray
    clear: np.ndarray
    last: np.ndarray
    tiles: list
    m: int
    n: int
    rows: int
    cols: int
    modes: dict = dataclasses.field(default_factory=dict)

    @property
    def cycles(self):
        return len(self.valid)

    @property
    def a_words(self):
        """``cycles x rows`` raw A operand bits (uint64), materialized from :attr:`a_operands`."""
        return self.a_operands.words()

    @property
    def b_words(self):
        """``cycles x cols`` raw B operand bits (uint64), materialized from :attr:`b_operands`."""
        return self.b_operands.words()

    @property
    def results_per_column(self):
        """Values each column drains: R per tile."""
        return len(self.tiles) * self.rows


def _operands(a_bits, b_bits):
    """The raw operands as uint64 matrices and the GEMM's (M, K, N); ValueError when K differs."""
    a_bits = np.asarray(a_bits, dtype=np.uint64)
    b_bits = np.asarray(b_bits, dtype=np.uint64)
    (m, k), (k2, n) = a_bits.shape, b_bits.shape
    if k != k2:
        raise ValueError(f"inner dimensions differ: {a_bits.shape} @ {b_bits.shape}")
    return a_bits, b_bits, (m, k, n)


def schedule(a_bits, b_bits, rows, cols):
    """The cycle-by-cycle schedule of ``A @ B`` on a ``rows`` x ``cols`` array.

    Parameters
    ----------
    a_bits : numpy.ndarray
        M x K raw operand bit patterns (non-negative integers).
    b_bits : numpy.ndarray
        K x N raw operand bit patterns.
    rows, cols : int
        Array size.
    """
    a_bits, b_bits, (m, k, n) = _operands(a_bits, b_bits)
    tile_rows, tile_cols = max(1, math.ceil(m / rows)), max(1, math.ceil(n / cols))
    a_pad = np.zeros((tile_rows * rows, k), dtype=np.uint64)
    a_pad[:m] = a_bits
    b_pad = np.zeros((k, tile_cols * cols), dtype=np.uint64)
    b_pad[:, :n] = b_bits
    steps = max(k, 1)
    spacing = max(steps, min_tile_cycles(rows))
    tiles = [(ti * rows, tj * cols) for ti in range(tile_rows) for tj in range(tile_cols)]
    total = len(tiles) * spacing
    # Tile (ti, tj) occupies cycles [t * spacing, t * spacing + spacing), t = ti * tile_cols + tj; its
    # cycle start + kk carries A[r0:r0+R, kk] and B[kk, c0:c0+C]: row 1 + ti * k + kk of the A table
    # (A's blocks, k-major) and row 1 + tj * k + kk of the B table; row 0 (zeros) elsewhere. One
    # broadcast assignment per index (a large GEMM has thousands of tiles).
    a_table = np.zeros((1 + tile_rows * k, rows), dtype=np.uint64)
    a_table[1:] = a_pad.reshape(tile_rows, rows, k).transpose(0, 2, 1).reshape(tile_rows * k, rows)  # ti, kk: i
    b_table = np.zeros((1 + tile_cols * k, cols), dtype=np.uint64)
    b_table[1:] = b_pad.reshape(k, tile_cols, cols).transpose(1, 0, 2).reshape(tile_cols * k, cols)  # tj, kk: j
    a_index, b_index = (np.zeros(total, dtype=np.uint32) for _ in range(2))
    valid, clear, last = (np.zeros(total, dtype=np.uint8) for _ in range(3))
    if k:
        steps_k = np.arange(k, dtype=np.uint32)
        a_rows = 1 + np.arange(tile_rows, dtype=np.uint32)[:, None] * np.uint32(k) + steps_k  # ti, kk
        b_rows = 1 + np.arange(tile_cols, dtype=np.uint32)[:, None] * np.uint32(k) + steps_k  # tj, kk
        a_index.reshape(tile_rows, tile_cols, spacing)[:, :, :k] = a_rows[:, None]
        b_index.reshape(tile_rows, tile_cols, spacing)[:, :, :k] = b_rows[None]
        valid.reshape(len(tiles), spacing)[:, :k] = 1
    clear.reshape(len(tiles), spacing)[:, 0] = 1
    last.reshape(len(tiles), spacing)[:, steps - 1] = 1
    a_operands, b_operands = Operands(a_table, a_index), Operands(b_table, b_index)
    return Schedule(a_operands, b_operands, valid, clear, last, tiles, m, n, rows, cols)


def concatenate(plans):
    """One schedule running ``plans`` (same array) back to back, modes included.

    Within a plan, consecutive tiles' ``last`` cycles are at least the drain
    spacing (:func:`hw.array.min_tile_cycles`) apart. Between plans they can be
    closer (a long-K tile ends right before a short-K tile, whose ``last``
    follows its ``clear`` at once), and the drain chains would collide, so
    idle cycles (``valid = clear = last = 0``, the previous plan's mode
    values) are inserted where needed. The result's ``tiles`` is the
    concatenation; split the drained streams with :func:`split_columns`.
    """
    first = plans[0]
    if len(plans) == 1:
        # Nothing to join: the same arrays (a large GEMM's schedule is hundreds of MB).
        return dataclasses.replace(first, tiles=list(first.tiles), m=None, n=None, modes=dict(first.modes))
    if any((p.rows, p.cols) != (first.rows, first.cols) for p in plans):
        raise ValueError("plans for different array sizes")
    names = set(first.modes)
    if any(set(p.modes) != names for p in plans):
        raise ValueError("plans drive different mode inputs")
    spacing = min_tile_cycles(first.rows)
    parts = []  # (plan, idle cycles before it)
    previous_last = None  # cycles from the previous plan's final last to the first cycle after it
    for plan in plans:
        lasts = np.flatnonzero(plan.last)  # every tile has one, every plan a tile
        gap = 0 if previous_last is None else max(0, spacing - (previous_last + int(lasts[0])))
        parts.append((plan, gap))
        previous_last = plan.cycles - int(lasts[-1])

    def joined(column, fill=None):
        pieces = []
        for index, (plan, gap) in enumerate(parts):
            values = column(plan)
            if gap:
                idle = np.zeros((gap, *values.shape[1:]), dtype=values.dtype)
                if fill is not None:
                    idle[:] = fill(parts[index - 1][0])
                pieces.append(idle)
            pieces.append(values)
        return np.concatenate(pieces)

    return Schedule(
        a_operands=Operands.join([(plan.a_operands, gap) for plan, gap in parts]),
        b_operands=Operands.join([(plan.b_operands, gap) for plan, gap in parts]),
        valid=joined(lambda p: p.valid),
        clear=joined(lambda p: p.clear),
        last=joined(lambda p: p.last),
        tiles=[tile for p in plans for tile in p.tiles],
        m=None,
        n=None,
        rows=first.rows,
        cols=first.cols,
        modes={
            name: joined(lambda p, name=name: p.modes[name], fill=lambda p, name=name: p.modes[name][-1])
            for name in names
        },
    )


def split_columns(plans, column_values):
    """Per plan, its share of the drained column streams of :func:`concatenate`'s schedule."""
    total = sum(p.results_per_column for p in plans)
    for j, values in enumerate(column_values):
        if len(values) != total:
            raise RuntimeError(f"column {j} drained {len(values)} results, expected {total}")
    parts, start = [], 0
    for plan in plans:
        stop = start + plan.results_per_column
        parts.append([values[start:stop] for values in column_values])
        start = stop
    return parts


def pack_rows(words, width):
    """Each row of ``words`` (``n x count`` uint64, ``width`` bits each) packed
    little-endian, word ``i`` at bits ``[i*width, (i+1)*width)``: ``n x bytes`` uint8.

    Bits of a word above ``width`` are dropped. Widths that divide 8 or are
    whole bytes take byte-level shortcuts (a schedule of a large GEMM has
    millions of rows); any other width goes bit by bit.
    """
    words = np.asarray(words, dtype=np.uint64)
    n, count = words.shape
    nbytes = (count * width + 7) // 8
    if 8 % width == 0:
        per = 8 // width
        padded = np.zeros((n, nbytes * per), dtype=np.uint8)
        padded[:, :count] = words  # the low byte of each word (unsafe cast: truncation is the point)
        padded &= np.uint8((1 << width) - 1)
        lanes = padded.reshape(n, nbytes, per)
        packed = lanes[:, :, 0].copy()
        for i in range(1, per):
            packed |= lanes[:, :, i] << np.uint8(i * width)
        return packed
    if width % 8 == 0:
        return np.ascontiguousarray(words.view(np.uint8).reshape(n, count, 8)[:, :, : width // 8]).reshape(n, nbytes)
    bits = ((words[:, :, None] >> np.arange(width, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(n, count * width), axis=1, bitorder="little")


def pack_words(words, width):
    """:func:`pack_rows` as one Python int per row (the value of a packed port)."""
    return [int.from_bytes(row.tobytes(), "little") for row in pack_rows(words, width)]


def unpack_rows(byte_rows, count, width):
    """Inverse of :func:`pack_rows`: ``n x count`` uint64 words (``width <= 64``)."""
    if width > 64:
        raise ValueError(f"word width {width} > 64")
    nbytes = (count * width + 7) // 8
    byte_rows = np.asarray(byte_rows, dtype=np.uint8).reshape(-1, nbytes)
    n = len(byte_rows)
    if 8 % width == 0:
        per = 8 // width
        lanes = (byte_rows[:, :, None] >> (np.arange(per, dtype=np.uint8) * width)) & np.uint8((1 << width) - 1)
        return lanes.reshape(n, nbytes * per)[:, :count].astype(np.uint64)
    if width % 8 == 0:
        wide = np.zeros((n, count, 8), dtype=np.uint8)
        wide[:, :, : width // 8] = byte_rows.reshape(n, count, width // 8)
        return wide.view(np.uint64).reshape(n, count)
    if width <= 57:
        # Word j starts at bit j*width: the 8 bytes from its first byte hold it whole (shift <= 7).
        start = np.arange(count) * width
        padded = np.zeros((n, nbytes + 8), dtype=np.uint8)
        padded[:, :nbytes] = byte_rows
        window = np.ascontiguousarray(padded[:, (start // 8)[:, None] + np.arange(8)]).view(np.uint64).reshape(n, count)
        return (window >> (start % 8).astype(np.uint64)) & np.uint64((1 << width) - 1)
    bits = np.unpackbits(byte_rows, axis=1, bitorder="little")[:, : count * width]
    bits = bits.reshape(n, count, width).astype(np.uint64)
    return (bits << np.arange(width, dtype=np.uint64)).sum(axis=2, dtype=np.uint64)


def unpack_words(values, count, width):
    """Inverse of :func:`pack_words`."""
    nbytes = (count * width + 7) // 8
    raw = np.frombuffer(b"".join(int(v).to_bytes(nbytes, "little") for v in values), dtype=np.uint8)
    return unpack_rows(raw, count, width)


def sign_extend(words, width):
    """Two's-complement ``width``-bit words (uint64) as int64."""
    words = np.asarray(words, dtype=np.uint64)
    if width == 64:
        return words.view(np.int64)
    signed = words.astype(np.int64)
    return np.where(signed >= (1 << (width - 1)), signed - (1 << width), signed)


def assemble(plan, column_values):
    """M x N result from the drained streams.

    Parameters
    ----------
    plan : Schedule
    column_values : list of numpy.ndarray
        Per column, the values it emitted in order (R per tile, tiles in issue order).
    """
    rows, cols = plan.rows, plan.cols
    for j, values in enumerate(column_values):
        if len(values) != plan.results_per_column:
            raise RuntimeError(f"column {j} drained {len(values)} results, expected {plan.results_per_column}")
    stacked = np.stack(column_values, axis=1)  # (tiles * R) x C
    per_tile = stacked.reshape(len(plan.tiles), rows, cols)
    out = np.zeros(
        (max(1, math.ceil(plan.m / rows)) * rows, max(1, math.ceil(plan.n / cols)) * cols), dtype=stacked.dtype
    )
    for t, (r0, c0) in enumerate(plan.tiles):
        out[r0 : r0 + rows, c0 : c0 + cols] = per_tile[t]
    return out[: plan.m, : plan.n]


# -- weight-stationary arrays (hw.ws_array) ------------------------------------------------------


@dataclasses.dataclass
class WSSchedule:
    """Per-cycle inputs of one GEMM on one weight-stationary array (:mod:`hw.ws_array`).

    Attributes
    ----------
    a_words : numpy.ndarray
        ``cycles x rows`` raw A operand bits (``a_in``).
    w_words : numpy.ndarray
        ``cycles x cols`` raw B operand bits (``w_in``).
    valid, swap, first, last, w_load, w_valid : numpy.ndarray
        ``cycles`` control bits (uint8) of the ports of the same names.
    m, n, rows, cols, depth : int
        GEMM and array sizes.
    n_tiles : int
        C-column blocks of B; each column drains ``m`` results per block.
    results_per_column : int
        Values each column drains: ``n_tiles * m`` (the sum over the GEMMs of a concatenation).
    modes : dict of str -> numpy.ndarray
        Per-cycle values of the mode inputs; filled by the caller.
    """

    a_words: np.ndarray
    w_words: np.ndarray
    valid: np.ndarray
    swap: np.ndarray
    first: np.ndarray
    last: np.ndarray
    w_load: np.ndarray
    w_valid: np.ndarray
    m: int
    n: int
    rows: int
    cols: int
    depth: int
    n_tiles: int
    results_per_column: int
    modes: dict = dataclasses.field(default_factory=dict)

    #: The 1-bit control ports the schedule drives (besides the modes), all idle at 0.
    CONTROLS = ("valid", "swap", "first", "last", "w_load", "w_valid")

    @property
    def cycles(self):
        return len(self.valid)


def ws_schedule(a_bits, b_bits, rows, cols, depth):
    """The cycle-by-cycle schedule of ``A @ B`` on a weight-stationary ``rows`` x ``cols`` array.

    A is cut into blocks of ``depth`` rows, K into chunks of ``rows``, B into
    blocks of ``cols`` columns (zero-padded; padding rows of A have
    ``valid = 0``, padding values of k ``w_valid = 0``). For each column block,
    each row block, each K chunk in ascending order, one chunk of ``depth``
    cycles streams the row block's A values of the chunk; its weights are
    loaded in the last ``rows`` cycles but one before its ``swap`` (descending k,
    :mod:`hw.ws_array`'s load window), under the previous chunk's rows. The
    first chunk's loads take the schedule's first ``rows`` cycles, and its
    rows start one cycle later. K = 0 runs one chunk with no valid weight:
    the RTL reports zeros (+0.0 for a floating-point kind).
    """
    from .ws_array import min_depth

    if depth < min_depth(rows):
        raise ValueError(f"depth {depth} < {min_depth(rows)}: the weight loads would not fit between chunks")
    a_bits, b_bits, (m, k, n) = _operands(a_bits, b_bits)
    m_blocks, k_chunks, n_tiles = max(1, math.ceil(m / depth)), max(1, math.ceil(k / rows)), max(1, math.ceil(n / cols))
    a_pad = np.zeros((m_blocks * depth, k_chunks * rows), dtype=np.uint64)
    a_pad[:m, :k] = a_bits
    b_pad = np.zeros((k_chunks * rows, n_tiles * cols), dtype=np.uint64)
    b_pad[:k, :n] = b_bits
    chunks = n_tiles * m_blocks * k_chunks
    preamble = rows + 1  # the first chunk's loads, and the weight ports' register stage
    total = preamble + chunks * depth
    grid = (n_tiles, m_blocks, k_chunks, depth)  # chunk c = (tj, bi, kc) streams cycles preamble + c * depth + r

    def streamed(width=None):
        values = np.zeros((total, width) if width else total, dtype=np.uint64 if width else np.uint8)
        return values, values[preamble:].reshape(*grid, *((width,) if width else ()))

    a_words, a_grid = streamed(rows)
    a_grid[:] = a_pad.reshape(m_blocks, depth, k_chunks, rows).transpose(0, 2, 1, 3)[None]
    valid, valid_grid = streamed()
    valid_grid[:] = (np.arange(m_blocks * depth) < m).reshape(m_blocks, depth)[None, :, None, :]
    swap, swap_grid = streamed()
    swap_grid[..., 0] = 1
    first, first_grid = streamed()
    first_grid[:, :, 0] = 1
    last, last_grid = streamed()
    last_grid[:, :, -1] = 1
    # Chunk c's loads take cycles c * depth + i, i = 0..rows-1 (its swap is at preamble + c * depth),
    # presenting row k0 + rows-1-i of its K chunk (the deepest first).
    w_words = np.zeros((total, cols), dtype=np.uint64)
    w_load, w_valid = (np.zeros(total, dtype=np.uint8) for _ in range(2))
    loads = slice(0, chunks * depth)
    w_grid = w_words[loads].reshape(*grid, cols)[..., :rows, :]
    w_grid[:] = b_pad.reshape(k_chunks, rows, n_tiles, cols)[:, ::-1].transpose(2, 0, 1, 3)[:, None]
    w_load[loads].reshape(grid)[..., :rows] = 1
    inside = (np.arange(k_chunks * rows) < k).reshape(k_chunks, rows)[:, ::-1]
    w_valid[loads].reshape(grid)[..., :rows] = inside[None, None]
    controls = (valid, swap, first, last, w_load, w_valid)
    return WSSchedule(a_words, w_words, *controls, m, n, rows, cols, depth, n_tiles, n_tiles * m)


def ws_concatenate(plans):
    """One schedule running weight-stationary ``plans`` (same array) back to back, modes included.

    Each plan starts with its own first chunk's weight loads, after the
    previous plan's last chunk: nothing of one plan overlaps the next. Split
    the drained streams with :func:`split_columns`.
    """
    first = plans[0]
    if any((p.rows, p.cols, p.depth) != (first.rows, first.cols, first.depth) for p in plans):
        raise ValueError("plans for different array sizes")
    names = set(first.modes)
    if any(set(p.modes) != names for p in plans):
        raise ValueError("plans drive different mode inputs")
    if len(plans) == 1:
        return dataclasses.replace(first, modes=dict(first.modes))
    fields = ("a_words", "w_words", *WSSchedule.CONTROLS)
    joined = {name: np.concatenate([getattr(p, name) for p in plans]) for name in fields}
    return WSSchedule(
        **joined,
        m=None,
        n=None,
        rows=first.rows,
        cols=first.cols,
        depth=first.depth,
        n_tiles=None,
        results_per_column=sum(p.results_per_column for p in plans),
        modes={name: np.concatenate([p.modes[name] for p in plans]) for name in names},
    )


def ws_assemble(plan, column_values):
    """M x N result from the drained streams of a weight-stationary schedule.

    Parameters
    ----------
    plan : WSSchedule
    column_values : list of numpy.ndarray
        Per column, the values it emitted in order (M per block of C columns, blocks in order).
    """
    for j, values in enumerate(column_values):
        if len(values) != plan.results_per_column:
            raise RuntimeError(f"column {j} drained {len(values)} results, expected {plan.results_per_column}")
    stacked = np.stack(column_values, axis=1).reshape(plan.n_tiles, plan.m, plan.cols)
    return stacked.transpose(1, 0, 2).reshape(plan.m, plan.n_tiles * plan.cols)[:, : plan.n]
