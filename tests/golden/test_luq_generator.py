"""The counter-based generator of stochastic rounding (golden.formats.fp4.uniform16): known answers
and statistics (uniformity, independence of neighbours, no short period), and unbiased rounding."""

import torch

from golden.formats import FP4_RADIX2
from golden.formats.fp4 import lfsr16_states, lowbias32, uniform16

N = 1 << 18


def test_known_answers_from_the_c_reference():
    # uint32_t arithmetic in C (gcc), the hardware's definition: lowbias32(lowbias32(i) ^ lowbias32(seed)) >> 16.
    assert uniform16(12345, 4).tolist() == [35373, 41053, 14704, 13924]
    assert lowbias32(1) == 1753845952 and lowbias32(0xDEADBEEF) == 3861431939
    assert lowbias32(torch.tensor([1, 0xDEADBEEF])).tolist() == [1753845952, 3861431939]


def test_uniform_over_256_bins():
    u = uniform16(7, N)
    assert int(u.min()) >= 0 and int(u.max()) <= 65535
    counts = torch.bincount(u >> 8, minlength=256).to(torch.float64)
    expected = N / 256
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # 255 degrees of freedom: mean 255, sd 22.6; a 6-sigma bound.
    assert chi2 < 255 + 6 * 22.6


def _neighbour_correlation(u):
    x = u.to(torch.float64)
    return float(torch.corrcoef(torch.stack([x[:-1], x[1:]]))[0, 1])


def test_neighbours_are_independent():
    # sd of a correlation of N independent pairs is 1/sqrt(N) = 0.002
    assert abs(_neighbour_correlation(uniform16(7, N))) < 0.01
    # the 16-bit LFSR read one state per element: neighbours share 15 bits (correlation about 0.5)
    assert _neighbour_correlation(torch.as_tensor(lfsr16_states(N, 1))) > 0.4


def test_no_short_period_and_seeds_differ():
    u = uniform16(7, 1 << 20)
    # the LFSR's stream repeated after 65535 elements; this one does not at any shift up to 2^19
    window = u[:64]
    shifted = u.unfold(0, 64, 1)[1 : 1 << 19]
    assert not bool((shifted == window).all(1).any())
    # the 32-bit hash values before truncation are a bijection of the index: all distinct
    full = lowbias32(lowbias32(torch.arange(1 << 20)) ^ lowbias32(7))
    assert torch.unique(full).numel() == 1 << 20
    assert float((uniform16(8, N) == uniform16(7, N)).to(torch.float64).mean()) < 1e-3


def test_stochastic_rounding_is_unbiased():
    v = torch.full((N,), 0.3)  # between the radix-2 levels 0.25 and 0.5 of a tensor with amax 1
    v[0] = 1.0
    codes, scale = FP4_RADIX2.quantize(v, rounding="stochastic", seed=3)
    mean = float(FP4_RADIX2.decode(codes, scale)[1:].mean())
    assert abs(mean - 0.3) < 5 * 0.125 / N**0.5
