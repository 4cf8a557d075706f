"""pipeline.exact_matmul's torch._int_mm path equals the float path and the reference, bit for bit."""

import pytest
import torch

from golden import pipeline
from golden.reference import int_gemm


@pytest.mark.parametrize(
    ("m", "k", "n", "a_max"), [(5, 9, 3, 15), (1, 1, 1, 8), (0, 4, 2, 7), (7, 2100, 4, 15), (2, 160000, 2, 15)]
)
def test_int_mm_path_equals_the_float_path(monkeypatch, m, k, n, a_max):
    gen = torch.Generator().manual_seed(k)
    a = torch.randint(-a_max if a_max != 15 else 0, a_max + 1, (m, k), generator=gen).to(torch.float32)
    b = torch.randint(-7, 8, (n, k), generator=gen).to(torch.float32).t()
    fast = pipeline.exact_matmul(a, b, a_max, 7)
    monkeypatch.setattr(pipeline, "INT_MM", False)
    slow = pipeline.exact_matmul(a, b, a_max, 7)
    assert fast.dtype == slow.dtype == (torch.float32 if k * a_max * 7 < 1 << 24 else torch.float64)
    assert torch.equal(fast, slow)
    assert torch.equal(fast.to(torch.int64), int_gemm(a.to(torch.int64), b.to(torch.int64), a_signed=a_max != 15))


def test_int_mm_is_skipped_beyond_int32():
    a, b = torch.ones(1, 3), torch.ones(3, 1)
    assert not pipeline._int_mm_applies(a, b, 1 << 15, 1 << 15, 3 << 30)
    assert not pipeline._int_mm_applies(a, b, 200, 7, 600)  # codes beyond int8
    assert not pipeline._int_mm_applies(a[None], b[None], 7, 7, 147)  # batched: torch.matmul
    assert pipeline._int_mm_applies(a, b, 7, 7, 147) == pipeline.INT_MM
