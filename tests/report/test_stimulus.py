"""Operand streams: synthetic statistics, PE streams, array tiles, golden-training captures."""

import numpy as np
import pytest
import torch

from golden.capture import TensorCapture
from golden.formats.fp16 import fp16_bits_to_float
from report.stimulus import (
    array_stream,
    capture_gemms,
    fp16_source,
    loss_scale,
    stream,
    synthetic_gemms,
    ws_array_stream,
)


@pytest.fixture(scope="module")
def gemms():
    return synthetic_gemms()


def test_synthetic_codes_look_like_training(gemms):
    fwd, dx, dw = gemms
    assert (fwd.op, dx.op, dw.op) == ("fwd", "dx", "dw")
    assert fwd.a.min() >= 0 and fwd.a.max() <= 15 and (fwd.a == 0).mean() > 0.45  # PACT, ReLU zeros
    assert fwd.b.min() >= -7 and fwd.b.max() <= 7
    for g in (dx.a, dw.a):
        assert g.min() >= 0 and g.max() <= 15
        assert not np.any(g == 8)  # sign bit only on non-zero codes
        exponents = np.unique(g & 7)
        assert len(exponents) >= 6  # gradients spread over the radix-4 range
    assert fwd.a.shape[1] == fwd.b.shape[0] and dx.a.shape[1] == dx.b.shape[0]
    assert dw.a.shape[1] == dw.b.shape[0]


def test_pe_streams(gemms):
    s = stream("int4_mac", "forward", gemms, 600)
    assert set(s) == {"a", "b", "a_signed", "valid", "clear"}
    assert all(len(v) == 600 for v in s.values())
    k = gemms[0].a.shape[1]
    assert list(np.flatnonzero(s["clear"])) == list(range(0, 600, k))  # whole dot products
    assert s["valid"].all() and not s["a_signed"].any()
    log = stream("log_mac", "backward", gemms, 600)
    assert list(log["x_signed"][:300]) == [1] * 300 and not log["x_signed"][300:].any()  # dx, then dw
    fp = stream("fp16_mac", "forward", gemms, 600)
    values = fp16_bits_to_float(torch.from_numpy(fp["a"])).to(torch.float64).numpy()
    assert np.isfinite(values).all() and (values >= 0).all()
    train = stream("train_mac", "backward", gemms, 100)
    assert train["mode"].all() and not train["a_signed"].any()
    with pytest.raises(ValueError, match="not run on"):
        stream("int4_mac", "backward", gemms, 10)


def test_array_stream_tiles(gemms):
    rows = cols = 4
    s = array_stream("int4", rows, cols, "forward", gemms, 600, seed=1)
    assert all(len(v) == 600 for v in s.values())
    fwd = gemms[0]
    k = fwd.a.shape[1]
    starts = np.flatnonzero(s["clear"])
    assert list(starts) == list(range(0, 600, k)) and list(np.flatnonzero(s["last"])) == list(range(k - 1, 600, k))
    # unpack the first tile: a_in element i is a column of A, b_in element j a row of B
    a = np.array([[(int(w) >> (4 * i)) & 15 for i in range(rows)] for w in s["a_in"][:k]])
    b = np.array([[(int(w) >> (4 * j)) & 15 for j in range(cols)] for w in s["b_in"][:k]])
    i0 = next(i for i in range(fwd.a.shape[0]) if np.array_equal(fwd.a[i] & 15, a[:, 0]))
    assert np.array_equal(a, (fwd.a[[(i0 + i) % fwd.a.shape[0] for i in range(rows)]] & 15).T)
    j0 = next(j for j in range(fwd.b.shape[1]) if np.array_equal(fwd.b[:, j] & 15, b[:, 0]))
    assert np.array_equal(b, fwd.b[:, [(j0 + j) % fwd.b.shape[1] for j in range(cols)]] & 15)


def test_ws_array_stream_is_the_gemm_runners_schedule(gemms):
    """A weight-stationary stream is hw.tiling.ws_schedule's cycles for blocks of the workload's GEMMs."""
    from hw import tiling

    rows, cols, depth = 2, 2, 4
    s = ws_array_stream("int4", rows, cols, depth, "forward", gemms, 300, seed=2)
    assert all(len(v) == 300 for v in s.values())
    assert set(s) >= {"a_in", "w_in", *tiling.WSSchedule.CONTROLS, "a_signed", "b_signed"}
    # the first chunk follows the first weight loads; then a swap every `depth` rows, every row valid
    start = int(np.flatnonzero(s["swap"])[0])
    assert 0 < start <= rows + 1 and s["first"][start] == 1 and s["w_load"][:rows].all()
    assert list(np.flatnonzero(s["swap"])) == list(range(start, 300, depth))
    assert int(s["valid"].sum()) == 300 - start
    # the synthetic forward GEMM's K = 256 is 128 chunks: no `last` within 300 cycles
    assert not s["last"].any()


@pytest.mark.parametrize("pe", ["mxfp4", "nvfp4"])
def test_block_array_stream_runs_the_block_quantized_gemm(pe):
    """A block-scaled kind's tile is its GEMM's real operands block-quantized along K, K padded to whole blocks."""
    from golden.formats import block_quantize
    from golden.reference import block_gemm
    from hw.kinds import get_kind

    kind = get_kind(pe)
    bs = kind.format.block_size
    gemms = synthetic_gemms(m=8, k=40, n=8)  # K = 40: a partial last block for both formats
    fwd = gemms[0]
    padded = -(-40 // bs) * bs
    s = array_stream(pe, 2, 2, "forward", gemms, padded, seed=3)
    assert list(np.flatnonzero(s["clear"])) == [0] and list(np.flatnonzero(s["last"])) == [padded - 1]

    def unpack(column, n):
        return np.array([[(int(w) >> (12 * i)) & 0xFFF for i in range(n)] for w in column])

    a, b = unpack(s["a_in"], 2).T, unpack(s["b_in"], 2)  # rows x K', K' x cols
    assert not (a[:, 40:] & 15).any() and not (b[40:] & 15).any()  # zero codes in the padding
    a_scales, b_scales = a[:, ::bs] >> 4, b[::bs] >> 4
    assert np.array_equal(np.repeat(a_scales, bs, axis=1), a >> 4)  # one scale per block
    tile = block_gemm(a & 15, a_scales, b & 15, b_scales, pe).numpy().view(np.uint32)
    # the same outputs of the whole GEMM, block-quantized as the recipes do
    qa, sa, _ = block_quantize(fwd.a_real, pe, axis=1)
    qb, sb, _ = block_quantize(fwd.b_real, pe, axis=0)
    full = block_gemm(qa, sa, qb, sb, pe).numpy().view(np.uint32)
    i0 = next(i for i in range(8) if np.array_equal(qa[i].numpy(), a[0, :40] & 15))
    j0 = next(j for j in range(8) if np.array_equal(qb[:, j].numpy(), b[:40, 0] & 15))
    assert np.array_equal(tile, full[np.ix_([i0, (i0 + 1) % 8], [j0, (j0 + 1) % 8])])


@pytest.mark.parametrize("pe", ["mxfp4", "nvfp4"])
def test_block_pe_stream_is_whole_padded_dot_products(gemms, pe):
    from hw.kinds import get_kind
    from report.stimulus import block_words

    kind = get_kind(pe)
    s = stream(kind.standalone.module, "backward", gemms, 512, seed=4)
    assert set(s) == {"a", "b", "valid", "clear"} and s["valid"].all()
    dx = gemms[1]
    a_words, b_words = block_words(kind, dx)
    k = a_words.shape[1]
    assert k % kind.format.block_size == 0 and k >= dx.a.shape[1]
    # the dx half: whole dot products of the block-quantized GEMM, one element per cycle
    assert list(np.flatnonzero(s["clear"][:256])) == list(range(0, 256, k))
    assert any(np.array_equal(row, s["a"][:k]) for row in a_words)
    assert any(np.array_equal(col, s["b"][:k]) for col in b_words.T)


def test_short_tiles_get_idle_cycles():
    g = synthetic_gemms(m=8, k=3, n=8)
    s = array_stream("int4", 4, 4, "forward", g, 70)
    # K = 3 < 2*4 - 1: each tile is 3 valid cycles then 4 idle ones
    assert list(s["valid"][:14]) == [1, 1, 1, 0, 0, 0, 0] * 2
    assert list(np.flatnonzero(s["clear"][:14])) == [0, 7]


def test_capture_gemms(tmp_path):
    cap = TensorCapture([5])
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 16, (6, 5)))
    w = torch.from_numpy(rng.integers(-7, 8, (5, 3)))
    g = torch.from_numpy(rng.integers(0, 16, (6, 3)).astype(np.uint8))
    with cap.step(5):
        cap.record(
            "l1", "fwd", kind="int4", a=x, b=w, c=x @ w, a_signed=False, b_signed=True, scale_a=0.5, scale_b=0.25
        )
        cap.record(
            "l1",
            "dx",
            kind="log",
            a=g,
            b=w.t(),
            c=torch.zeros(6, 5),
            b_signed=True,
            scale_g=2.0,
            phase=0,
            unit_g=1.0,
            scale_b=0.25,
            radix=4,
        )
    path = tmp_path / "cap.npz"
    cap.save(path)
    fwd, dx = capture_gemms(path)
    assert fwd.op == "fwd" and np.array_equal(fwd.a, x.numpy()) and not fwd.a_signed
    assert np.array_equal(fwd.a_real, x.numpy() * 0.5) and np.array_equal(fwd.b_real, w.numpy() * 0.25)
    code = int(g[0, 0])
    e, s = code & 7, -1.0 if code & 8 else 1.0
    assert dx.a_real[0, 0] == (0.0 if e == 0 else s * 2.0 * 4.0 ** (e - 7))
    assert stream("log_mac", "backward", [dx, dx.__class__(**{**dx.__dict__, "op": "dw"})], 40)["g"].max() <= 15
    with pytest.raises(ValueError, match="cannot read capture"):
        capture_gemms(tmp_path / "missing.npz")
    assert fwd.real_kind == dx.real_kind == "dequantized" and fp16_source([fwd, dx]) == "dequantized 4-bit codes"


def test_capture_float_operands_feed_fp16(tmp_path):
    cap = TensorCapture([0])
    rng = np.random.default_rng(1)
    xf = torch.from_numpy(rng.random((6, 5)).astype(np.float32))
    wf = torch.from_numpy(rng.standard_normal((5, 3)).astype(np.float32))
    gf = torch.from_numpy((rng.standard_normal((6, 3)) * 1e-6).astype(np.float32))
    codes = torch.zeros(6, 3, dtype=torch.uint8)
    with cap.step(0):
        cap.record(
            "l",
            "fwd",
            kind="int4",
            a=torch.zeros(6, 5),
            b=torch.zeros(5, 3),
            c=torch.zeros(6, 3),
            a_signed=False,
            b_signed=True,
            scale_a=0.5,
            scale_b=0.25,
            a_float=xf,
            b_float=wf,
        )
        cap.record(
            "l",
            "dx",
            kind="log",
            a=codes,
            b=torch.zeros(3, 5),
            c=torch.zeros(6, 5),
            b_signed=True,
            scale_g=2.0,
            phase=0,
            unit_g=1.0,
            scale_b=0.25,
            radix=4,
            a_float=gf,
            b_float=wf.t(),
        )
    cap.save(tmp_path / "cap.npz")
    fwd, dx = capture_gemms(tmp_path / "cap.npz")
    assert fwd.real_kind == dx.real_kind == "float" and fp16_source([fwd, dx]) == "unquantized float operands"
    assert np.array_equal(fwd.a_real, xf.numpy()) and np.array_equal(fwd.b_real, wf.numpy())
    # gradients: loss-scaled by a power of two, largest magnitude in [2^14, 2^15), mantissas kept
    scale = loss_scale(gf.numpy().astype(np.float64))
    assert np.log2(scale) == int(np.log2(scale)) and np.array_equal(dx.a_real, gf.numpy() * scale)
    assert 2.0**14 <= np.abs(dx.a_real).max() < 2.0**15 and loss_scale(np.zeros(3)) == 1.0
    fp = stream("fp16_mac", "forward", [fwd], 50)
    values = fp16_bits_to_float(torch.from_numpy(fp["a"])).to(torch.float32).numpy()
    assert np.isin(values, xf.numpy().astype(np.float16).astype(np.float32)).all()
