"""hw.tiling: the byte-level shortcuts of pack_rows / unpack_rows against the bit-by-bit definition,
and the vectorized schedule against a per-tile loop."""

import math

import numpy as np
import pytest

from hw import tiling
from hw.array import min_tile_cycles


def _pack_bits(words, width):
    n, count = words.shape
    bits = ((words[:, :, None] >> np.arange(width, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(n, count * width), axis=1, bitorder="little")


def _unpack_bits(byte_rows, count, width):
    bits = np.unpackbits(byte_rows, axis=1, bitorder="little")[:, : count * width]
    bits = bits.reshape(len(byte_rows), count, width).astype(np.uint64)
    return (bits << np.arange(width, dtype=np.uint64)).sum(axis=2, dtype=np.uint64)


@pytest.mark.parametrize("width", range(1, 65))
def test_pack_and_unpack_match_the_bitwise_definition(width):
    rng = np.random.default_rng(width)
    for count in (1, 2, 3, 5, 8, 16, 17):
        # Random 64-bit words: the bits above width must be dropped.
        words = rng.integers(0, 2**63, (6, count), dtype=np.uint64) * np.uint64(2) + rng.integers(
            0, 2, (6, count), dtype=np.uint64
        )
        packed = tiling.pack_rows(words, width)
        assert packed.dtype == np.uint8 and np.array_equal(packed, _pack_bits(words, width)), count
        unpacked = tiling.unpack_rows(packed, count, width)
        assert unpacked.dtype == np.uint64 and np.array_equal(unpacked, _unpack_bits(packed, count, width)), count
    assert tiling.unpack_rows(np.zeros((0, (3 * width + 7) // 8), np.uint8), 3, width).shape == (0, 3)


def _schedule_loop(a, b, rows, cols):
    """The per-tile loop hw.tiling.schedule vectorizes (its original form)."""
    m, k = a.shape
    n = b.shape[1]
    tile_rows, tile_cols = max(1, math.ceil(m / rows)), max(1, math.ceil(n / cols))
    a_pad = np.zeros((tile_rows * rows, k), np.uint64)
    a_pad[:m] = a
    b_pad = np.zeros((k, tile_cols * cols), np.uint64)
    b_pad[:, :n] = b
    steps = max(k, 1)
    spacing = max(steps, min_tile_cycles(rows))
    tiles = [(ti * rows, tj * cols) for ti in range(tile_rows) for tj in range(tile_cols)]
    total = len(tiles) * spacing
    a_words, b_words = np.zeros((total, rows), np.uint64), np.zeros((total, cols), np.uint64)
    valid, clear, last = (np.zeros(total, np.uint8) for _ in range(3))
    for t, (r0, c0) in enumerate(tiles):
        start = t * spacing
        if k:
            a_words[start : start + k] = a_pad[r0 : r0 + rows].T
            b_words[start : start + k] = b_pad[:, c0 : c0 + cols]
            valid[start : start + k] = 1
        clear[start] = 1
        last[start + steps - 1] = 1
    return a_words, b_words, valid, clear, last, tiles


@pytest.mark.parametrize("m,k,n,rows,cols", [(5, 7, 8, 2, 3), (1, 1, 1, 1, 1), (9, 0, 4, 4, 4), (33, 40, 17, 16, 16)])
def test_schedule_matches_the_tile_loop(m, k, n, rows, cols):
    rng = np.random.default_rng(m * k + n)
    a, b = rng.integers(0, 16, (m, k)).astype(np.uint64), rng.integers(0, 16, (k, n)).astype(np.uint64)
    plan = tiling.schedule(a, b, rows, cols)
    expected = _schedule_loop(a, b, rows, cols)
    for name, value in zip(("a_words", "b_words", "valid", "clear", "last"), expected):
        got = getattr(plan, name)
        assert got.dtype == value.dtype and np.array_equal(got, value), name
    assert plan.tiles == expected[5]
    # The compact streams: every row of a table is used or the zero row, packing the table then indexing
    # it is packing the words.
    for operands, words in ((plan.a_operands, expected[0]), (plan.b_operands, expected[1])):
        assert operands.index.dtype == np.uint32 and not operands.table[0].any()
        assert np.array_equal(operands.packed(4), tiling.pack_rows(words, 4))
    plan.modes = {"mode": np.ones(plan.cycles, np.uint8)}
    (single,) = [tiling.concatenate([plan])]
    assert single.m is None and single.tiles == plan.tiles and single.tiles is not plan.tiles
    assert np.array_equal(single.a_words, plan.a_words) and set(single.modes) == {"mode"}


@pytest.mark.parametrize("ks", [(13, 1), (1, 13, 1), (40, 2, 3), (0, 5)])
def test_concatenate_keeps_the_drain_spacing_between_plans(ks):
    """A long-K GEMM followed by a short-K one: idle cycles keep consecutive lasts 2R - 1 apart."""
    rows, cols = 4, 3
    rng = np.random.default_rng(len(ks))
    plans = []
    for index, k in enumerate(ks):
        a, b = rng.integers(0, 16, (5, k)).astype(np.uint64), rng.integers(0, 16, (k, 4)).astype(np.uint64)
        plan = tiling.schedule(a, b, rows, cols)
        plan.modes = {"mode": np.full(plan.cycles, index % 2, np.uint8)}
        plans.append(plan)
    joined = tiling.concatenate(plans)
    lasts = np.flatnonzero(joined.last)
    assert len(lasts) == sum(len(p.tiles) for p in plans) and np.diff(lasts).min() >= min_tile_cycles(rows)
    assert joined.valid.sum() == sum(p.valid.sum() for p in plans)
    # The idle cycles hold the previous plan's mode and no data.
    idle = joined.cycles - sum(p.cycles for p in plans)
    assert idle > 0 or ks == (0, 5)
    assert not joined.a_words[joined.valid == 0].any()
    for name in ("a_words", "b_words"):
        busy = np.concatenate([getattr(p, name)[p.valid == 1] for p in plans])
        assert np.array_equal(getattr(joined, name)[joined.valid == 1], busy), name
