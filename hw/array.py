"""Output-stationary R x C systolic MAC arrays for the ``int4``, ``log``, ``fp16`` and ``train`` PEs.

Dataflow (every wire between PEs is a register; nothing broadcasts across the array):

* The driver presents one column of A (``a_in``: R operands, row ``i`` of the
  tile in element ``i``) and one row of B (``b_in``: C operands) per cycle,
  *unskewed*, with the tile's controls ``valid``, ``clear`` (first k) and
  ``last`` (final k). The array skews them itself: row ``i`` of A is delayed
  by ``i`` registers, column ``j`` of B by ``j``; the controls and ``a``-side
  mode bits travel down a register chain on the left edge and then rightwards
  with A, the ``b``-side mode bit along the top edge and then down with B.
  PE (i, j) therefore sees the operands the driver presented ``i + j`` cycles
  earlier, in ascending k, and applies the SPEC section 3 ``valid``/``clear``
  rule to its own accumulator.
* Drain: a tile's ``last`` reaches PE (i, j) ``i + j`` cycles after the driver
  presented it; one cycle later the PE copies its accumulator into its output
  register, which belongs to a per-column chain shifting *up* one row per
  cycle. Column ``j`` emits the tile's rows in order 0, 1, ..., R-1 on
  ``out_data[j]`` with ``out_valid[j]`` set, row ``i`` visible after edge
  ``t + 1 + j + 2 i`` if ``last`` was presented at edge ``t``. Meanwhile the
  accumulators already compute the next tile.
* Spacing: tiles may follow each other back to back (``clear`` of the next
  tile right after ``last``) when every tile has at least ``2 R - 1`` cycles
  between its ``clear`` and the next tile's; a shorter tile needs idle cycles
  (``valid = 0``, ``clear = 0``, ``last = 0``) after it, otherwise its results
  collide in the drain chain (:func:`min_tile_cycles`).

Accumulators: signed, wrapping, ``acc_width`` bits for the integer kinds; the
generator refuses a width that can overflow for ``max_k`` products of
maximal magnitude (over every operand mode). ``fp16`` accumulates in binary32
with one round-to-nearest-even per add, in ascending k.
"""

import dataclasses

from amaranth.hdl import Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ._params import check_int
from .accumulate import fp32_accumulate, integer_accumulate
from .arith import LOG_PRODUCT_RANGE, log_product, max_safe_k, min_acc_width
from .fp import fp16_product
from .pipeline import delay
from .train_pe import INT_PRODUCT_RANGE, TRAIN_PRODUCT_RANGE, int_product, train_product

__all__ = ["ArrayKind", "ARRAY_KINDS", "SystolicArray", "min_tile_cycles"]


@dataclasses.dataclass(frozen=True)
class ArrayKind:
    """What distinguishes one PE kind inside the array.

    Attributes
    ----------
    name : str
        ``int4``, ``log``, ``fp16`` or ``train``.
    a_width, b_width : int
        Bits of one A / B operand.
    a_modes, b_modes : tuple of str
        Mode inputs travelling with A (rightwards) and with B (downwards).
    product_range : ProductRange or None
        Integer product range over every mode (None: floating point).
    default_acc_width : int
        Accumulator width when none is given (fixed 32 for ``fp16``).
    description : str
    """

    name: str
    a_width: int
    b_width: int
    a_modes: tuple
    b_modes: tuple
    product_range: object
    default_acc_width: int
    description: str

    @property
    def is_float(self):
        return self.product_range is None

    def product(self, m, a, b, modes, prefix):
        if self.name == "int4":
            return int_product(a, b, modes["a_signed"], modes["b_signed"])
        if self.name == "log":
            return log_product(b, a, modes["b_signed"])
        if self.name == "train":
            return train_product(a, b, modes["mode"], modes["a_signed"], modes["b_signed"])
        return fp16_product(m, a, b, prefix=f"mul_{prefix}")


#: Every array kind by name.
ARRAY_KINDS = {
    kind.name: kind
    for kind in (
        ArrayKind(
            "int4",
            4,
            4,
            ("a_signed",),
            ("b_signed",),
            INT_PRODUCT_RANGE,
            24,
            "INT4/UINT4 x INT4/UINT4, wrapping signed accumulators",
        ),
        ArrayKind(
            "log",
            4,
            4,
            (),
            ("b_signed",),
            LOG_PRODUCT_RANGE,
            32,
            "radix-4 FP4 (A) x INT4/UINT4 (B) shift-accumulate, wrapping signed accumulators",
        ),
        ArrayKind(
            "fp16", 16, 16, (), (), None, 32, "binary16 x binary16 -> binary32, one RNE add per product in ascending k"
        ),
        ArrayKind(
            "train",
            4,
            4,
            ("mode", "a_signed"),
            ("b_signed",),
            TRAIN_PRODUCT_RANGE,
            32,
            "unified training PE: mode 0 INT4 x INT4 (forward), mode 1 FP4 x INT4 (backward), one shared accumulator",
        ),
    )
}


def min_tile_cycles(rows):
    """Fewest cycles from one tile's ``clear`` to the next tile's so that the drain
    chains never collide: ``2 * rows - 1``."""
    return 2 * rows - 1


class SystolicArray(wiring.Component):
    """An output-stationary ``rows`` x ``cols`` array of one PE kind.

    Parameters
    ----------
    kind : str
        ``int4``, ``log``, ``fp16`` or ``train`` (:data:`ARRAY_KINDS`).
    rows, cols : int
        Array size R x C (each >= 1).
    acc_width : int, optional
        Accumulator bits of the integer kinds (default: 24 for ``int4``,
        32 for ``log`` and ``train``). ``fp16`` accumulates in binary32 and
        accepts only 32.
    max_k : int
        Declared largest K (products per output) the array must support
        (default 4096). An ``acc_width`` that can overflow within ``max_k``
        products is a ValueError. Ignored by ``fp16`` apart from the check
        that it is a positive integer.

    Attributes
    ----------
    a_in : Signal(rows * a_width), in
        Column k of the A tile, packed: bits ``[i*a_width, (i+1)*a_width)`` hold
        ``A[i, k]`` (a 4-bit code, or binary16 for ``fp16``).
    b_in : Signal(cols * b_width), in
        Row k of the B tile, packed: bits ``[j*b_width, (j+1)*b_width)`` hold ``B[k, j]``.
    valid : Signal(1), in
        ``a_in``/``b_in`` hold a product term this cycle.
    clear : Signal(1), in
        First k of a tile: restart every accumulator (SPEC section 3 rule).
    last : Signal(1), in
        Final k of a tile: then each PE hands its result to the drain. A tile
        with K = 0 is one cycle with ``valid = 0``, ``clear = 1``, ``last = 1``.
    a_signed : Signal(1), in (``int4``, ``train``)
        A is INT4 (1) or UINT4 (0); travels with A.
    b_signed : Signal(1), in (``int4``, ``log``, ``train``)
        B is INT4 (1) or UINT4 (0); travels with B.
    mode : Signal(1), in (``train``)
        0: INT4 x INT4, 1: FP4 (A) x INT4 (B); travels with A.
    out_data : Signal(cols * acc_width), out
        Bits ``[j*acc_width, (j+1)*acc_width)``: the result leaving the top of
        column ``j`` (two's complement, or binary32 for ``fp16``).
    out_valid : Signal(cols), out
        Bit ``j``: ``out_data[j]`` holds a result. Column ``j`` emits each
        tile's rows in ascending order, tiles in order.
    max_k : int or None
        Largest K that cannot overflow the accumulators (None for ``fp16``).
    declared_max_k : int
        The ``max_k`` parameter.
    latency : int
        Cycles from the edge that samples ``last`` to ``out_valid[0]`` for
        row 0 of that tile (1); row ``i`` of column ``j`` follows ``j + 2 i`` later.
    """

    def __init__(self, *, kind, rows, cols, acc_width=None, max_k=4096):
        try:
            self._check(kind, rows, cols, acc_width, max_k)
        except (TypeError, ValueError):
            # A refused array is not an unused design: no UnusedElaboratable warning.
            self._MustUse__silence = True
            raise
        acc_width = self.acc_width
        acc_shape = unsigned(32) if self.kind.is_float else signed(acc_width)
        members = {
            "a_in": In(self.kind.a_width * rows),
            "b_in": In(self.kind.b_width * cols),
            "valid": In(1),
            "clear": In(1),
            "last": In(1),
        }
        for name in self.kind.a_modes + self.kind.b_modes:
            members[name] = In(1)
        members["out_data"] = Out(acc_shape.width * cols)
        members["out_valid"] = Out(cols)
        super().__init__(members)
        self._acc_shape = acc_shape

    latency = 1

    def _check(self, kind, rows, cols, acc_width, max_k):
        owner = f"{kind}_array" if isinstance(kind, str) else "array"
        if kind not in ARRAY_KINDS:
            raise ValueError(f"unknown array kind {kind!r} (known: {', '.join(ARRAY_KINDS)})")
        self.kind = ARRAY_KINDS[kind]
        self.rows = check_int(owner, "rows", rows, minimum=1)
        self.cols = check_int(owner, "cols", cols, minimum=1)
        self.declared_max_k = check_int(owner, "max_k", max_k, minimum=1)
        if acc_width is None:
            acc_width = self.kind.default_acc_width
        self.acc_width = check_int(owner, "acc_width", acc_width, minimum=2)
        if self.kind.is_float:
            if acc_width != 32:
                raise ValueError(f"{owner}: the binary32 accumulator is 32 bits, not acc_width={acc_width}")
            self.max_k = None
        else:
            self.max_k = max_safe_k(self.kind.product_range, acc_width)
            if self.max_k < max_k:
                need = min_acc_width(self.kind.product_range, max_k)
                raise ValueError(
                    f"{owner}: acc_width={acc_width} can overflow: it holds at most {self.max_k} "
                    f"products of {self.kind.product_range.lo}..{self.kind.product_range.hi}, fewer than "
                    f"max_k={max_k} (needs acc_width >= {need})"
                )

    def manifest(self):
        """Array-specific manifest fields (dataflow, size, timing, overflow bound)."""
        return {
            "dataflow": "output-stationary",
            "pe": self.kind.name,
            "accumulator": "binary32 (RNE per add, ascending k)"
            if self.kind.is_float
            else f"signed {self.acc_width}-bit two's complement, wraps",
            "declared_max_k": self.declared_max_k,
            "port_layout": (
                f"a_in: {self.rows} x {self.kind.a_width} bits, A[i, k] at bits i*{self.kind.a_width}; "
                f"b_in: {self.cols} x {self.kind.b_width} bits, B[k, j] at bits j*{self.kind.b_width}; "
                f"out_data: {self.cols} x {self.acc_width} bits, column j at bits j*{self.acc_width}; "
                "out_valid: bit j for column j"
            ),
            "min_tile_cycles": min_tile_cycles(self.rows),
            "timing": (
                "a_in/b_in/controls are presented unskewed, one k per cycle; the array skews them. "
                "PE (i, j) applies the inputs of edge t at edge t + i + j. If `last` is sampled at "
                "edge t, column j shows row i of the tile on out_data[j] with out_valid[j] after "
                f"edge t + 1 + j + 2*i. Consecutive tiles need >= {min_tile_cycles(self.rows)} cycles "
                "from one `clear` to the next (idle cycles in between otherwise)."
            ),
        }

    def elaborate(self, platform):
        m = Module()
        kind, rows, cols = self.kind, self.rows, self.cols

        def register(values, name):
            """Registered copies of a dict of values (the hop to the next PE)."""
            out = {}
            for key, value in values.items():
                reg = Signal(Value.cast(value).shape(), name=f"{name}_{key}")
                m.d.sync += reg.eq(value)
                out[key] = reg
            return out

        # Left edge: row i's controls are row i-1's delayed by one register
        # (a chain, not a fan-out), row i's operand is delayed by i registers.
        a_controls = {
            "valid": self.valid,
            "clear": self.clear,
            "last": self.last,
            **{name: getattr(self, name) for name in kind.a_modes},
        }
        west = []
        for i in range(rows):
            if i > 0:
                a_controls = register(a_controls, f"west{i}")
            a_operand = delay(m, self.a_in.word_select(i, kind.a_width), i, name=f"a_skew{i}")
            west.append({"a": a_operand, **a_controls})
        b_controls = {name: getattr(self, name) for name in kind.b_modes}
        north = []
        for j in range(cols):
            if j > 0:
                b_controls = register(b_controls, f"north{j}")
            b_operand = delay(m, self.b_in.word_select(j, kind.b_width), j, name=f"b_skew{j}")
            north.append({"b": b_operand, **b_controls})

        # PEs, top row first; each passes A right and B down through registers.
        caps = [[None] * cols for _ in range(rows)]
        accs = [[None] * cols for _ in range(rows)]
        from_north = north
        for i in range(rows):
            left = west[i]
            below_inputs = []
            for j in range(cols):
                top = from_north[j]
                prefix = f"{i}_{j}"
                modes = {name: left[name] for name in kind.a_modes}
                modes.update({name: top[name] for name in kind.b_modes})
                prod = kind.product(m, left["a"], top["b"], modes, prefix)
                acc = Signal(self._acc_shape, name=f"acc_{prefix}")
                if kind.is_float:
                    nxt = fp32_accumulate(m, acc, prod, left["valid"], left["clear"], prefix=f"add_{prefix}")
                else:
                    nxt = integer_accumulate(acc, prod, left["valid"], left["clear"])
                m.d.sync += acc.eq(nxt)
                cap = Signal(name=f"cap_{prefix}")
                m.d.sync += cap.eq(left["last"])
                accs[i][j], caps[i][j] = acc, cap
                if j + 1 < cols:
                    left = register(left, f"east_{prefix}")
                if i + 1 < rows:
                    below_inputs.append(register(top, f"south_{prefix}"))
            from_north = below_inputs

        # Drain: per column, output registers shifting up one row per cycle;
        # a PE loads its result the cycle after its `last` (from its register,
        # so the accumulator's adder is not on the drain path).
        for j in range(cols):
            below_data, below_valid = None, None
            for i in reversed(range(rows)):
                if i == 0:
                    # The top register of the chain is the output port itself.
                    data_reg = self.out_data.word_select(j, self._acc_shape.width)
                    valid_reg = self.out_valid[j]
                else:
                    data_reg = Signal(self._acc_shape, name=f"drain{i}_{j}")
                    valid_reg = Signal(name=f"drain{i}_{j}_valid")
                if below_data is None:
                    m.d.sync += [data_reg.eq(Mux(caps[i][j], accs[i][j], 0)), valid_reg.eq(caps[i][j])]
                else:
                    m.d.sync += [
                        data_reg.eq(Mux(caps[i][j], accs[i][j], below_data)),
                        valid_reg.eq(caps[i][j] | below_valid),
                    ]
                below_data, below_valid = data_reg, valid_reg
        return m
