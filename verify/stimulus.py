"""Step sequences for the PE testbenches and their expected ``acc`` from the golden model.

A :class:`Sequence` is a table of per-cycle inputs (one numpy column per
input port, plus ``rst``) and the raw ``acc`` bits expected after each rising
edge. The expected values are computed vectorized from :mod:`golden`:
integer products by the kind's own product rule (:mod:`hw.kinds`) evaluated
with :data:`golden.formats.TORCH_OPS`, binary16 products by
:func:`golden.formats.fp16.fp16_product_bits` and FP32 sums by
:func:`golden.formats.fp16.fp32_add_bits`, under the ``valid``/``clear``/``rst``
rules of SPEC section 3. A sequence belongs to a standalone top (its
``kind`` is the top's module name, e.g. ``int4_mac``).

Sequences are built from *families* (exhaustive operand pairs, random
``valid``/``clear``, resets mid-sequence, wrap-around, FP16 class crosses,
cancellations, ties) and concatenated, so one simulator run checks them all.
"""

import numpy as np
import torch

from golden.formats.fp16 import fp32_add_bits
from hw.kinds import TOPS, baseline_kind

__all__ = [
    "UNIT_PORTS",
    "Sequence",
    "concat",
    "expected",
    "expected_integer",
    "expected_fp32",
    "int_exhaustive",
    "int_random",
    "int_wrap",
    "fp16_classes",
    "fp16_random",
    "fp16_cancellation",
    "fp16_ties",
    "expected_block",
    "block_exhaustive",
    "block_runs",
    "block_random",
    "default_sequence",
    "FP16_CLASS_VALUES",
]


#: The PE kind of each standalone top (module name -> :class:`hw.kinds.base.PEKind`).
TOP_KINDS = TOPS
#: Operand input ports of each standalone top, in drive order (``valid``, ``clear``, ``rst`` follow).
UNIT_PORTS = {module: tuple(port for port, _, _ in kind.standalone.ports) for module, kind in TOP_KINDS.items()}
_CONTROLS = ("valid", "clear", "rst")


class Sequence:
    """Per-cycle inputs and expected outputs of a PE.

    Parameters
    ----------
    kind : str
        Unit kind (a key of :data:`UNIT_PORTS`).
    inputs : dict of str -> numpy.ndarray
        One integer column per operand port and per control (``valid``, ``clear``, ``rst``).
    families : list of (str, int)
        Name and first step of each concatenated family (for error messages).
    """

    def __init__(self, *, kind, inputs, families):
        if kind not in UNIT_PORTS:
            raise ValueError(f"unknown unit kind {kind!r}")
        names = UNIT_PORTS[kind] + _CONTROLS
        if set(inputs) != set(names):
            raise ValueError(f"{kind}: inputs must be exactly {names}, not {sorted(inputs)}")
        lengths = {len(column) for column in inputs.values()}
        if len(lengths) != 1:
            raise ValueError(f"{kind}: input columns differ in length: {sorted(lengths)}")
        self.kind = kind
        self.inputs = {name: np.asarray(inputs[name], dtype=np.int64) for name in names}
        self.families = list(families)

    def __len__(self):
        return len(self.inputs["valid"])

    def family_of(self, step):
        """Name of the family that step ``step`` belongs to."""
        name = None
        for family, start in self.families:
            if start <= step:
                name = family
        return name

    def save(self, path, expected):
        """Write inputs and ``expected`` raw acc bits to an ``.npz`` for the cocotb side."""
        np.savez(
            path,
            kind=self.kind,
            expected=np.asarray(expected, dtype=np.uint64),
            family_names=np.array([f for f, _ in self.families]),
            family_starts=np.array([s for _, s in self.families], dtype=np.int64),
            **{f"in_{name}": column for name, column in self.inputs.items()},
        )


def concat(*sequences):
    """One sequence running ``sequences`` back to back."""
    kind = sequences[0].kind
    inputs = {name: np.concatenate([s.inputs[name] for s in sequences]) for name in sequences[0].inputs}
    families, offset = [], 0
    for sequence in sequences:
        if sequence.kind != kind:
            raise ValueError("cannot concatenate sequences of different unit kinds")
        families += [(name, start + offset) for name, start in sequence.families]
        offset += len(sequence)
    return Sequence(kind=kind, inputs=inputs, families=families)


# -- expected accumulator values -------------------------------------------------------------


def _segments(valid, clear, rst):
    """Per step: index of the step that (re)started its accumulation, and the kind of start.

    A step with ``rst`` or ``clear`` starts a segment; steps before the first
    start belong to the power-on segment (accumulator 0, index -1).
    """
    n = len(valid)
    starts = (clear | rst).astype(bool)
    start_index = np.where(starts, np.arange(n), -1)
    np.maximum.accumulate(start_index, out=start_index)
    return start_index


def expected_integer(products, valid, clear, rst, width):
    """Raw ``width``-bit acc after each step of a wrapping integer MAC.

    Parameters
    ----------
    products : numpy.ndarray
        Signed product of each step (whatever ``valid`` is).
    valid, clear, rst : numpy.ndarray
        Control bits per step.
    width : int
        Accumulator width.
    """
    valid, clear, rst = (np.asarray(v, dtype=bool) for v in (valid, clear, rst))
    addend = np.where(valid & ~rst, np.asarray(products, dtype=np.int64), 0)
    running = np.cumsum(addend)
    start = _segments(valid, clear, rst)
    # acc = sum of addends from the segment's start step (inclusive) to this step.
    before_start = np.where(start > 0, running[np.maximum(start - 1, 0)], 0)
    total = running - np.where(start >= 0, before_start, 0)
    return (total & ((1 << width) - 1)).astype(np.uint64)


_NEG_ZERO = 0x8000_0000


def expected_fp32(product_bits, valid, clear, rst):
    """Raw binary32 acc after each step of the FP16 MAC (golden ``fp32_add_bits`` per add).

    Segments (between clears/resets) are independent, so they advance in
    parallel: iteration ``i`` adds the ``i``-th step of every segment. A step
    that only holds adds ``-0``, the exact identity of binary32 addition.
    """
    valid, clear, rst = (np.asarray(v, dtype=bool) for v in (valid, clear, rst))
    n = len(valid)
    start = _segments(valid, clear, rst)
    # Segment number of every step (power-on segment = 0) and position inside it.
    segment = np.searchsorted(np.unique(np.concatenate([[-1], start])), start)
    position = np.arange(n) - np.maximum(start, 0)
    position = np.where(start < 0, np.arange(n), position)
    # Segments started by a valid clear begin at -0 (so the first product passes
    # through exactly); the power-on segment, resets and bare clears begin at +0.
    first = np.zeros(segment.max() + 1, dtype=np.int64)
    starts_here = start == np.arange(n)
    first[segment[starts_here & valid & clear & ~rst]] = _NEG_ZERO
    adds = valid & ~rst
    # Steps that add nothing (holds, bare clears, resets) add -0.
    addend = np.where(adds, np.asarray(product_bits, dtype=np.int64), _NEG_ZERO)

    state = torch.from_numpy(first)
    expected = np.empty(n, dtype=np.int64)
    order = np.argsort(position, kind="stable")
    bounds = np.searchsorted(position[order], np.arange(position.max() + 2))
    for i in range(position.max() + 1):
        steps = order[bounds[i] : bounds[i + 1]]
        segs = torch.from_numpy(segment[steps])
        state[segs] = fp32_add_bits(state[segs], torch.from_numpy(addend[steps]))
        expected[steps] = state[segs].numpy()
    return expected.astype(np.uint64)


def expected_block(sequence):
    """Raw binary32 acc after each step of a block-scaled MAC (``mxfp4_mac``, ``nvfp4_mac``).

    Within a segment (from a ``clear`` or ``rst``), the valid steps fall into
    blocks of ``block_size`` in order; a block's last valid step adds its term
    (:func:`golden.reference.scaled_block_sums` of the block's exact integer
    sum, with the scale codes of that step's words) to the accumulator with
    :func:`golden.formats.fp16.fp32_add_bits`, starting from +0.0. Segments
    advance in parallel: iteration ``n`` adds every segment's ``n``-th term.
    """
    from golden.reference import scaled_block_sums

    i = sequence.inputs
    kind = TOP_KINDS[sequence.kind]
    fmt = kind.format
    bs = fmt.block_size
    valid, clear, rst = (np.asarray(i[name], dtype=bool) for name in ("valid", "clear", "rst"))
    n = len(valid)
    start = _segments(valid, clear, rst)
    adds = valid & ~rst
    # Position of every added element in its segment: the adds since the segment's start step.
    count = np.cumsum(adds)
    before = np.where(start > 0, count[np.maximum(start - 1, 0)], 0)
    position = count - before - 1
    block_end = adds & (position % bs == bs - 1)
    # Exact block sums: each added step's product into its (segment, block) bucket.
    roles = _roles(sequence.kind, i)
    products = kind.golden_products(roles["a"], roles["b"], roles).numpy()
    bucket = np.unique(np.stack([start, position // bs])[:, adds], axis=1, return_inverse=True)[1].ravel()
    sums = np.zeros(bucket.max() + 1 if adds.any() else 0, dtype=np.int64)
    np.add.at(sums, bucket, products[adds])
    ends = np.flatnonzero(block_end)
    end_bucket = np.empty(n, dtype=np.int64)
    end_bucket[np.flatnonzero(adds)] = bucket
    words_a, words_b = np.asarray(i["a"]), np.asarray(i["b"])
    terms = scaled_block_sums(
        torch.from_numpy(sums[end_bucket[ends]]),
        torch.from_numpy(kind.gemm.word_scales(words_a[ends])),
        torch.from_numpy(kind.gemm.word_scales(words_b[ends])),
        fmt,
    )
    term_bits = terms.view(torch.int32).to(torch.int64) & 0xFFFF_FFFF
    # The running sum after each block end, block by block within each segment (+0.0 first).
    rank = position[ends] // bs
    after = torch.zeros(len(ends), dtype=torch.int64)
    for r in range(int(rank.max()) + 1 if len(ends) else 0):
        at = torch.from_numpy(np.flatnonzero(rank == r))
        previous = after[at - 1] if r else torch.zeros(len(at), dtype=torch.int64)
        after[at] = fp32_add_bits(previous, term_bits[at])
    # After each step: the sum at the segment's latest block end, or +0.0 before the first.
    closed = np.cumsum(block_end)
    closed_before = np.where(start > 0, closed[np.maximum(start - 1, 0)], 0)
    latest = closed - 1
    has_term = (start >= 0) & (closed > closed_before)
    out = np.zeros(n, dtype=np.int64)
    out[has_term] = after.numpy()[latest[has_term]]
    return out.astype(np.uint64)


def _roles(module, inputs):
    """A top's per-step inputs by role (``a``, ``b``, mode names), fixed modes as constants."""
    top = TOP_KINDS[module].standalone
    roles = {role: torch.from_numpy(np.asarray(inputs[port])) for port, role, _ in top.ports}
    roles.update(top.fixed_modes)
    return roles


def expected(sequence, *, acc_width=None):
    """Expected raw acc bits of ``sequence`` (``acc_width`` for the integer units)."""
    i = sequence.inputs
    kind = TOP_KINDS[sequence.kind]
    roles = _roles(sequence.kind, i)
    if kind.gemm.scaled:
        return expected_block(sequence)
    products = kind.golden_products(roles["a"], roles["b"], roles).numpy()
    if kind.is_float:
        return expected_fp32(products, i["valid"], i["clear"], i["rst"])
    return expected_integer(products, i["valid"], i["clear"], i["rst"], acc_width)


# -- families --------------------------------------------------------------------------------


def _controls(rng, n, *, p_valid, p_clear, p_rst):
    valid = (rng.random(n) < p_valid).astype(np.int64)
    clear = (rng.random(n) < p_clear).astype(np.int64)
    rst = (rng.random(n) < p_rst).astype(np.int64)
    return valid, clear, rst


def _operand_and_mode_ports(kind):
    """A top's operand ports (``a``/``b`` roles) and its 1-bit mode ports, each in port order."""
    ports = TOP_KINDS[kind].standalone.ports
    return [port for port, role, _ in ports if role in ("a", "b")], [
        port for port, role, _ in ports if role not in ("a", "b")
    ]


def _binary16_top():
    """Module name of the floating-point baseline's standalone top (binary16 operands ``a``, ``b``)."""
    return baseline_kind().standalone.module


def _sequence(kind, name, operands, valid, clear, rst, *, reset_first=True):
    n = len(valid)
    rst = np.array(rst, dtype=np.int64)
    if reset_first and n:
        rst[0] = 1
    inputs = dict(operands, valid=valid, clear=clear, rst=rst)
    return Sequence(
        kind=kind, inputs={k: np.asarray(v, dtype=np.int64) for k, v in inputs.items()}, families=[(name, 0)]
    )


def _int_grid(kind):
    """Every combination of 4-bit operand codes and mode bits of an integer top, by port."""
    operands, modes = _operand_and_mode_ports(kind)
    grid = np.meshgrid(*([np.arange(16)] * len(operands) + [np.arange(2)] * len(modes)), indexing="ij")
    return {port: axis.ravel() for port, axis in zip(operands + modes, grid)}


def int_exhaustive(kind):
    """Every 4-bit operand pair in every signedness/mode combination, each as
    ``valid & clear`` (the product alone), then the same products accumulated in one run."""
    grid = _int_grid(kind)
    n = len(next(iter(grid.values())))
    alone = _sequence(kind, "exhaustive-products", grid, np.ones(n), np.ones(n), np.zeros(n))
    clear = np.zeros(n)
    clear[0] = 1
    summed = _sequence(kind, "exhaustive-accumulate", grid, np.ones(n), clear, np.zeros(n), reset_first=False)
    return concat(alone, summed)


def int_random(kind, rng, n, *, p_valid=0.75, p_clear=0.05, p_rst=0.005):
    """Random operands, modes and ``valid``/``clear``, with resets mid-sequence
    (the operands and controls on a reset cycle must be ignored)."""
    operand_ports, mode_ports = _operand_and_mode_ports(kind)
    operands = {port: rng.integers(0, 16, n) for port in operand_ports}
    operands.update({port: rng.integers(0, 2, n) for port in mode_ports})
    valid, clear, rst = _controls(rng, n, p_valid=p_valid, p_clear=p_clear, p_rst=p_rst)
    return _sequence(kind, "random", operands, valid, clear, rst)


def int_wrap(kind, steps):
    """``steps`` products of maximal magnitude: most negative then most positive,
    enough to wrap the accumulator both ways when ``steps`` exceeds the safe K.

    The two operand combinations are found by the golden product over every
    combination of codes and modes (e.g. UINT4 15 x INT4 -8 = -120 and
    UINT4 15 x INT4 7 = 105 for ``int4_mac``)."""
    grid = _int_grid(kind)
    roles = _roles(kind, grid)
    products = TOP_KINDS[kind].golden_products(roles["a"], roles["b"], roles).numpy()
    lowest, highest = int(np.argmin(products)), int(np.argmax(products))
    half = steps // 2
    pick = np.r_[np.full(half, lowest), np.full(steps - half, highest)]
    operands = {port: values[pick] for port, values in grid.items()}
    clear = np.zeros(steps)
    clear[0] = 1
    return _sequence(kind, "wrap", operands, np.ones(steps), clear, np.zeros(steps), reset_first=False)


#: Binary16 representatives of every operand class (both signs are added).
FP16_CLASS_VALUES = {
    "zero": [0x0000],
    "min_subnormal": [0x0001],
    "subnormal": [0x0155, 0x0200],
    "max_subnormal": [0x03FF],
    "min_normal": [0x0400],
    "one": [0x3C00],
    "normal": [0x3555, 0x4A4D],
    "max_normal": [0x7BFF],
    "inf": [0x7C00],
    "qnan": [0x7E00, 0x7FFF],
    "snan": [0x7C01, 0x7D00],
}


def _fp16_class_operands():
    values = [v for group in FP16_CLASS_VALUES.values() for v in group]
    return np.array(values + [v | 0x8000 for v in values], dtype=np.int64)


def fp16_classes(rng):
    """Every class crossed with every class: each pair as ``valid & clear`` (the
    product alone), then each pair's product added to a random class product."""
    values = _fp16_class_operands()
    a, b = np.meshgrid(values, values, indexing="ij")
    a, b = a.ravel(), b.ravel()
    n = len(a)
    alone = _sequence(_binary16_top(), "classes-products", {"a": a, "b": b}, np.ones(n), np.ones(n), np.zeros(n))
    # Pairs of steps: clear with a random class product, then add the crossed product.
    first = rng.integers(0, len(values), (n, 2))
    a2 = np.stack([values[first[:, 0]], a], axis=1).ravel()
    b2 = np.stack([values[first[:, 1]], b], axis=1).ravel()
    clear = np.tile([1, 0], n)
    added = _sequence(
        _binary16_top(),
        "classes-accumulate",
        {"a": a2, "b": b2},
        np.ones(2 * n),
        clear,
        np.zeros(2 * n),
        reset_first=False,
    )
    return concat(alone, added)


def fp16_random(rng, n, *, p_valid=0.8, p_clear=0.06, p_rst=0.002):
    """Uniformly random binary16 patterns (all classes) with random controls,
    half of them drawn from finite operands of moderate exponent so that long
    accumulations stay finite and round often."""
    a = rng.integers(0, 1 << 16, n)
    b = rng.integers(0, 1 << 16, n)
    moderate = rng.random(n) < 0.5
    # sign | exponent 8..22 | fraction: products within a few binades of 1.
    a = np.where(moderate, (rng.integers(0, 2, n) << 15) | (rng.integers(8, 23, n) << 10) | rng.integers(0, 1024, n), a)
    b = np.where(moderate, (rng.integers(0, 2, n) << 15) | (rng.integers(8, 23, n) << 10) | rng.integers(0, 1024, n), b)
    valid, clear, rst = _controls(rng, n, p_valid=p_valid, p_clear=p_clear, p_rst=p_rst)
    return _sequence(_binary16_top(), "random", {"a": a, "b": b}, valid, clear, rst)


def fp16_cancellation(rng, pairs):
    """A product then its negation (exact zero: +0) or a near-negation
    (massive cancellation, renormalization by many bits), each after a clear."""
    a = rng.integers(0, 0x7C00, pairs)
    b = rng.integers(0, 0x7C00, pairs)
    nudge = rng.integers(-3, 4, pairs)
    b2 = np.clip(b + nudge, 0, 0x7BFF)
    a_steps = np.stack([a, a ^ 0x8000], axis=1).ravel()
    b_steps = np.stack([b, b2], axis=1).ravel()
    clear = np.tile([1, 0], pairs)
    return _sequence(
        _binary16_top(), "cancellation", {"a": a_steps, "b": b_steps}, np.ones(2 * pairs), clear, np.zeros(2 * pairs)
    )


def fp16_ties(rng, runs):
    """Integer-valued products that climb past 2^24, then odd small products:
    their sums fall exactly halfway between binary32 neighbours (ties to even)."""
    steps = []
    for _ in range(runs):
        # 2048 * 2048 = 2^22 four times -> 2^24; then +-1, +-3, +-5 (exact ties or not).
        big = [(0x6800, 0x6800)] * 4
        small = [(int(rng.choice([0x3C00, 0x4200, 0x4500, 0xBC00, 0xC200])), 0x3C00) for _ in range(6)]
        steps += big + small
    pairs = np.array(steps, dtype=np.int64)
    n = len(pairs)
    clear = np.zeros(n)
    clear[::10] = 1
    return _sequence(_binary16_top(), "ties", {"a": pairs[:, 0], "b": pairs[:, 1]}, np.ones(n), clear, np.zeros(n))


def block_exhaustive(kind, rng):
    """Every E2M1 code pair once, in random order, in blocks of consecutive pairs (``clear``
    at every block's first element), each block with random scale codes of its own
    (extremes included). The order is shuffled because a block of one A code with every
    B code sums to 0 (the codes are symmetric in sign)."""
    top = TOP_KINDS[kind]
    bs, gemm = top.format.block_size, top.gemm
    order = rng.permutation(256)
    a, b = order // 16, order % 16
    n = len(a)
    blocks = -(-n // bs)
    a_scales = np.repeat(gemm.random_scales(rng, (blocks,)), bs)[:n]
    b_scales = np.repeat(gemm.random_scales(rng, (blocks,)), bs)[:n]
    clear = (np.arange(n) % bs == 0).astype(np.int64)
    operands = {"a": gemm.operand_words(a, a_scales), "b": gemm.operand_words(b, b_scales)}
    return _sequence(kind, "block-exhaustive", operands, np.ones(n), clear, np.zeros(n))


def block_runs(kind, rng, segments, *, p_idle=0.1):
    """Dot products of 1-4 blocks (the last one sometimes partial: K not a multiple of the
    block size), one scale per block (extremes: terms that overflow binary32 or underflow
    it), with idle cycles (``valid`` low) between elements."""
    top = TOP_KINDS[kind]
    bs, gemm = top.format.block_size, top.gemm
    parts = []
    for _ in range(segments):
        k = int(rng.integers(1, 4 * bs + 1))
        blocks = -(-k // bs)
        a = gemm.operand_words(rng.integers(0, 16, k), np.repeat(gemm.random_scales(rng, (blocks,)), bs)[:k])
        b = gemm.operand_words(rng.integers(0, 16, k), np.repeat(gemm.random_scales(rng, (blocks,)), bs)[:k])
        idle = rng.random(k) < p_idle
        idle[0] = False
        # Every element is valid once; an idle cycle before it repeats its operands with valid low.
        steps = np.repeat(np.arange(k), np.where(idle, 2, 1))
        valid = np.ones(len(steps), dtype=np.int64)
        valid[np.flatnonzero(np.diff(steps, prepend=-1) == 0) - 1] = 0
        clear = np.zeros(len(steps), dtype=np.int64)
        clear[0] = 1
        parts.append((a[steps], b[steps], valid, clear))
    a, b, valid, clear = (np.concatenate(column) for column in zip(*parts))
    return _sequence(kind, "block-runs", {"a": a, "b": b}, valid, clear, np.zeros(len(valid)), reset_first=False)


def block_random(kind, rng, n, *, p_valid=0.85, p_clear=0.01, p_rst=0.002):
    """Random codes and scale codes on every step with random ``valid``/``clear``, resets
    mid-block (a block's term takes the scales of its last element's words)."""
    gemm = TOP_KINDS[kind].gemm
    operands = {role: gemm.operand_words(rng.integers(0, 16, n), gemm.random_scales(rng, (n,))) for role in ("a", "b")}
    valid, clear, rst = _controls(rng, n, p_valid=p_valid, p_clear=p_clear, p_rst=p_rst)
    return _sequence(kind, "random", operands, valid, clear, rst)


def default_sequence(kind, *, seed=0, random_steps=2000, wrap_steps=0):
    """The family mix the default test suite runs for the standalone top ``kind``."""
    if kind not in TOP_KINDS:
        raise ValueError(f"unknown unit kind {kind!r}")
    rng = np.random.default_rng(seed)
    if TOP_KINDS[kind].gemm.scaled:
        return concat(block_exhaustive(kind, rng), block_runs(kind, rng, 20), block_random(kind, rng, random_steps))
    if TOP_KINDS[kind].is_float:
        return concat(
            fp16_classes(rng), fp16_cancellation(rng, 200), fp16_ties(rng, 20), fp16_random(rng, random_steps)
        )
    parts = [int_exhaustive(kind), int_random(kind, rng, random_steps)]
    if wrap_steps:
        parts.append(int_wrap(kind, wrap_steps))
    return concat(*parts)
