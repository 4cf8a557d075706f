"""Weight-stationary R x C systolic arrays of every PE kind (:mod:`hw.kinds`): the second dataflow.

PE (k, j) holds one weight ``B[k0 + k, n0 + j]`` of the current K x N chunk
(K on the rows, N on the columns); rows of A flow in from the left, one per
cycle, and each column sums its products from top to bottom, so the partial
sum of ``C[m, n0 + j]`` over the chunk's R values of k leaves the bottom of
column ``j``. Every wire between PEs is a register; nothing broadcasts across
the array (one exception, inside a column: see *weight loading*).

* **Activations.** The driver presents A row m of the chunk (``a_in``: R
  operands, ``A[m, k0 + k]`` in element k) per cycle, *unskewed*, with the row's
  controls ``valid`` (a real row of A), ``swap`` (first row of a chunk: the
  PEs switch to the chunk's weights), ``first`` (the chunk is the first of the
  K sum: the partial sum starts from nothing) and ``last`` (the chunk is the
  last of the K sum: the bottom result is an output), and the kind's ``a_modes``.
  Row k of A is delayed by k registers; the controls walk down a register
  chain on the left edge and then rightwards with A. PE (k, j) applies the row
  presented at edge t at edge t + k + j.
* **Partial sums.** PE (k, j) registers ``accumulate(psum_in, a * w)`` with
  the kind's own accumulate rule (:meth:`hw.kinds.base.PEKind.accumulate`),
  ``psum_in`` being the register of PE (k-1, j). At the top, PE (0, j) restarts
  the sum on ``first`` (the rule's ``clear``: a floating-point product passes
  through exactly) and otherwise continues the partial sum of the previous
  chunk, which comes round a per-column *ring*: the bottom register of
  column j feeds ``depth - rows`` registers back to the top, so the partial
  sum of row m re-enters exactly ``depth`` cycles after row m entered, when
  row m of the next chunk does. Each output is therefore summed in ascending
  k, one accumulate per product: bit for bit the SPEC section 2 order for
  binary32, the exact (wrapping) integer sum for the integer kinds.
* **Chunks.** A chunk is exactly ``depth`` cycles of rows (rows beyond M are
  presented with ``valid = 0``); ``swap`` is set on its first row only, and
  consecutive chunks of one K sum follow each other with no gap (the ring's
  length is fixed). A K sum longer than R is ``ceil(K / R)`` chunks.
* **Weight loading** (double buffered). Each PE has a *shadow* weight register
  besides the *active* one. The shadow registers of a column form a shift
  chain from the top: on a cycle with ``w_load`` the driver presents one row of
  the next chunk's weights (``w_in``: C operands), with ``w_valid`` (the row is
  inside K: a PE whose weight is not valid passes partial sums on unchanged,
  which pads K to a multiple of R exactly, also for signed zeros) and the
  kind's ``b_modes``, deepest row (k = R-1) first, and the column's chain shifts
  down one row. The weight ports pass one register stage, then column j's
  ``w_in`` is delayed by j registers and ``w_load``, ``w_valid`` and the
  ``b_modes`` walk along the top edge: a row presented at edge L enters column
  j's chain at edge L + 1 + j, in step with the activations; inside a column
  the registered ``w_load`` enables its R shadow registers (a fan-out of R,
  not of the array; every port drives a fixed number of loads). A PE copies
  its shadow weight into the active one when the chunk's ``swap`` reaches it,
  and uses it from that row on. So the R load cycles of a chunk whose
  ``swap`` is presented at cycle t, the previous chunk's at cycle t', must
  lie in [t' + R - 2, t - 2]: with ``depth >= 2 R - 1`` (:func:`min_depth`) the
  loads hide entirely under the previous chunk's rows, and the array computes
  R x C products every cycle but the R + 1 cycles before a GEMM's first chunk.
* **Outputs.** The bottom register of column j is ``out_data[j]``;
  ``out_valid[j]`` is set for a row of a ``last`` chunk with ``valid``: the
  result of the row presented at edge t is visible after edge t + R - 1 + j.
  Column j emits its results in the order the rows were presented.

Accumulators: as :mod:`hw.array` (signed, wrapping, ``acc_width`` bits for the
integer kinds, refused when ``max_k`` products could overflow it; binary32 for
a floating-point kind); here the accumulator is the partial sum travelling
down a column and round the ring.
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ._params import check_int
from .kinds import KINDS, get_kind
from .pipeline import delay, register_all, skewed_edge

__all__ = ["WeightStationaryArray", "min_depth", "default_depth"]


def min_depth(rows):
    """Fewest rows per chunk that hide the weight loads of the next chunk: ``2 * rows - 1``."""
    return 2 * rows - 1


def default_depth(rows):
    """The chunk depth the tools generate when none is given: ``2 * rows``."""
    return 2 * rows


class WeightStationaryArray(wiring.Component):
    """A weight-stationary ``rows`` x ``cols`` array of one PE kind.

    Parameters
    ----------
    kind : str or PEKind
        A kind of the registry (:data:`hw.kinds.KINDS`).
    rows, cols : int
        Array size R x C (each >= 1): R values of k per chunk, C columns of B.
    depth : int, optional
        Cycles (rows of A) per chunk, the length of the partial-sum ring plus R;
        at least :func:`min_depth` (default :func:`default_depth`). Larger
        reuses each weight load for more rows of A at the cost of
        ``cols * (depth - rows)`` accumulator registers in the rings.
    acc_width : int, optional
        Accumulator bits of the integer kinds (default: the narrowest that holds
        ``max_k`` products); floating-point kinds accept only 32.
    max_k : int
        Declared largest K (default 4096): an ``acc_width`` that can overflow
        within ``max_k`` products is a ValueError.
    zero_hold : bool
        Hold zero activations (default False, for a kind with zero-operand
        rules, :meth:`~hw.kinds.base.PEKind.operand_zero`): an A register
        between PEs does not load a zero operand (apart from the kind's
        :meth:`~hw.kinds.base.PEKind.zero_loaded_bits`) but registers a 1-bit
        flag that travels with it, so the product logic downstream does not
        switch for it; each PE adds the exact product from the flags
        (binary16 0 x inf/NaN still gives NaN). The results are the same.

    Attributes
    ----------
    a_in : Signal(rows * a_width), in
        Row m of the chunk's A, packed: bits ``[k*a_width, (k+1)*a_width)`` hold ``A[m, k0 + k]``.
    valid : Signal(1), in
        ``a_in`` is a row of A (0: a padding row, no output).
    swap : Signal(1), in
        First row of a chunk: the PEs take the weights loaded since the previous ``swap``.
    first : Signal(1), in
        The row's chunk starts the K sum (the partial sums start from nothing).
    last : Signal(1), in
        The row's chunk ends the K sum (its results leave at the bottom).
    <a modes> : Signal(1), in
        The kind's ``a_modes`` (travel with A).
    w_in : Signal(cols * b_width), in
        One row of the next chunk's weights: bits ``[j*b_width, (j+1)*b_width)`` hold ``B[k0 + k, n0 + j]``.
    w_load : Signal(1), in
        Shift ``w_in`` into the top of the shadow chains (rows in descending k).
    w_valid : Signal(1), in
        The loaded row is inside K (0: padding; those PEs pass partial sums on unchanged).
    <b modes> : Signal(1), in
        The kind's ``b_modes`` (loaded and held with the weights).
    out_data : Signal(cols * acc_width), out
        Bits ``[j*acc_width, (j+1)*acc_width)``: the partial sum leaving the bottom of column ``j``.
    out_valid : Signal(cols), out
        Bit ``j``: ``out_data[j]`` is a result (a valid row of a ``last`` chunk).
    max_k : int or None
        Largest K that cannot overflow the accumulators (None: floating point).
    declared_max_k : int
        The ``max_k`` parameter.
    zero_hold : bool
        Whether the A registers hold zero operands (``zero_hold`` for a kind with zero-operand rules).
    latency : int
        Registers from ``a_in`` to ``out_data`` of column 0 (``rows``): the row sampled at
        edge t is visible after edge ``t + latency - 1 + j`` in column j.
    """

    def __init__(self, *, kind, rows, cols, depth=None, acc_width=None, max_k=4096, zero_hold=False):
        try:
            self._check(kind, rows, cols, depth, acc_width, max_k, zero_hold)
        except (TypeError, ValueError):
            # A refused array is not an unused design: no UnusedElaboratable warning.
            self._MustUse__silence = True
            raise
        kind = self.kind
        acc_shape = kind.acc_shape(self.acc_width)
        members = {"a_in": In(kind.a_width * rows), "valid": In(1), "swap": In(1), "first": In(1), "last": In(1)}
        members.update({name: In(1) for name in kind.a_modes})
        members.update({"w_in": In(kind.b_width * cols), "w_load": In(1), "w_valid": In(1)})
        members.update({name: In(1) for name in kind.b_modes})
        members["out_data"] = Out(acc_shape.width * cols)
        members["out_valid"] = Out(cols)
        super().__init__(members)
        self._acc_shape = acc_shape
        self.latency = rows
        #: (A register, its zero flag) of every hop that holds zero operands, after elaboration.
        self.held_registers = []

    def _check(self, kind, rows, cols, depth, acc_width, max_k, zero_hold):
        if isinstance(kind, str) and kind not in KINDS:
            raise ValueError(f"unknown array kind {kind!r} (known: {', '.join(KINDS)})")
        self.kind = get_kind(kind)
        owner = self.kind.ws_array_module
        if not self.kind.weight_stationary:
            raise ValueError(f"the {self.kind.name} kind has no weight-stationary array (output-stationary only)")
        self.rows = check_int(owner, "rows", rows, minimum=1)
        self.cols = check_int(owner, "cols", cols, minimum=1)
        self.depth = check_int(owner, "depth", default_depth(rows) if depth is None else depth, minimum=min_depth(rows))
        self.declared_max_k = check_int(owner, "max_k", max_k, minimum=1)
        if acc_width is None:
            acc_width = self.kind.lean_acc_width(max_k)
        self.acc_width = self.kind.check_acc_width(owner, acc_width, max_k)
        self.max_k = self.kind.max_k(self.acc_width)
        if not isinstance(zero_hold, bool):
            raise TypeError(f"{owner}: zero_hold must be a bool, not {zero_hold!r}")
        probe = self.kind.operand_zero("a", Signal(self.kind.a_width), {name: Signal() for name in self.kind.a_modes})
        self.zero_hold = zero_hold and probe is not None

    def manifest(self):
        """Array-specific manifest fields (dataflow, size, timing, overflow bound)."""
        kind, rows, cols = self.kind, self.rows, self.cols
        return {
            "dataflow": "weight-stationary",
            "zero_hold": self.zero_hold,
            "pe": kind.name,
            "accumulator": kind.accumulator_description(self.acc_width),
            "declared_max_k": self.declared_max_k,
            "depth": self.depth,
            "min_depth": min_depth(rows),
            "weight_load_cycles": rows,
            "port_layout": (
                f"a_in: {rows} x {kind.a_width} bits, A[m, k0+k] at bits k*{kind.a_width}; "
                f"w_in: {cols} x {kind.b_width} bits, B[k0+k, n0+j] at bits j*{kind.b_width}; "
                f"out_data: {cols} x {self.acc_width} bits, column j at bits j*{self.acc_width}; "
                "out_valid: bit j for column j"
            ),
            "timing": (
                "a_in and its controls (valid, swap, first, last, A-side modes) are presented unskewed, one row "
                "of A per cycle; PE (k, j) applies the row of edge t at edge t + k + j. A chunk is exactly "
                f"{self.depth} rows with swap on the first; a K sum is consecutive chunks, first on the first, "
                "last on the last. The chunk's weights are loaded with w_load, one row of w_in per cycle in "
                f"descending k ({rows} cycles), all within cycles [t' + {rows - 2}, t - 2] if the chunk's swap is "
                "presented at cycle t and the previous chunk's at t'. The result of a valid row of a last chunk "
                "sampled at edge t is on out_data[j] "
                f"with out_valid[j] after edge t + {rows - 1} + j."
            ),
        }

    def elaborate(self, platform):
        m = Module()
        kind, rows, cols = self.kind, self.rows, self.cols
        self.held_registers = []

        # Top edge: one register stage first, so that every weight port drives one register (not
        # column 0's R shadow enables); then column j's weight controls are column j-1's through one
        # register and its weights are delayed by j registers, so column j's chain takes a row
        # presented at edge L at edge L + 1 + j, shifting down on its registered w_load.
        weight_controls = {
            "load": self.w_load,
            "present": self.w_valid,
            **{name: getattr(self, name) for name in kind.b_modes},
        }
        staged = register_all(m, {"w": self.w_in, **weight_controls}, name="w_stage")
        north = skewed_edge(m, staged.pop("w"), kind.b_width, staged, cols, operand="b", name="north")
        shadows = [[None] * cols for _ in range(rows)]
        for j in range(cols):
            above = dict(north[j])
            load = above.pop("load")
            for k in range(rows):
                shadow = {key: Signal(value.shape(), name=f"shadow_{k}_{j}_{key}") for key, value in above.items()}
                with m.If(load):
                    m.d.sync += [shadow[key].eq(above[key]) for key in shadow]
                shadows[k][j] = above = shadow

        # Left edge: row k's controls are row k-1's through one register, its operand is
        # delayed by k registers. `first` is used by the top row only, `last` by the bottom row.
        a_controls = {
            "valid": self.valid,
            "swap": self.swap,
            "last": self.last,
            **{name: getattr(self, name) for name in kind.a_modes},
        }
        west = skewed_edge(m, self.a_in, kind.a_width, a_controls, rows, operand="a", name="west")
        west[0]["first"] = self.first
        for row in west[:-1]:
            del row["last"]  # passed on down the left edge only
        if self.zero_hold:
            # The skew registers pass live operands: the first PE of a row finds the
            # flag from the operand itself; the registers east of it hold zeros.
            for row in west:
                row["a_zero"] = kind.operand_zero("a", row["a"], {name: row[name] for name in kind.a_modes})

        # Rings: the bottom partial sum of column j, depth - rows registers later, enters its top.
        bottoms = [Signal(self._acc_shape, name=f"psum_{rows - 1}_{j}") for j in range(cols)]
        psums_above = [delay(m, bottoms[j], self.depth - rows, name=f"ring{j}") for j in range(cols)]

        for k in range(rows):
            left = west[k]
            below = []
            for j in range(cols):
                prefix = f"{k}_{j}"
                shadow = shadows[k][j]
                active = {key: Signal(value.shape(), name=f"weight_{prefix}_{key}") for key, value in shadow.items()}
                with m.If(left["swap"]):
                    m.d.sync += [active[key].eq(shadow[key]) for key in active]
                # The swapping row already uses the new weight.
                weight = {key: Mux(left["swap"], shadow[key], active[key]) for key in active}
                modes = {name: left[name] for name in kind.a_modes}
                modes.update({name: weight[name] for name in kind.b_modes})
                prod = kind.product(m, left["a"], weight["b"], modes, prefix=f"mul_{prefix}")
                psum = bottoms[j] if k == rows - 1 else Signal(self._acc_shape, name=f"psum_{prefix}")
                restart = left["first"] if k == 0 else Const(0)
                valid = left["valid"] & weight["present"]
                if self.zero_hold:
                    # A held zero activation: the exact product from its flag (the weight is
                    # live). The partial sum moves on every cycle, so nothing is skipped.
                    b_modes = {name: weight[name] for name in kind.b_modes}
                    zero = (left["a_zero"], kind.operand_zero("b", weight["b"], b_modes))
                    prod, valid, _ = kind.zero_product(
                        m,
                        prod,
                        left["a"],
                        weight["b"],
                        zero,
                        modes,
                        psums_above[j],
                        valid,
                        stale=True,
                        prefix=f"zero_{prefix}",
                    )
                nxt = kind.accumulate(m, psums_above[j], prod, valid, restart, prefix=f"add_{prefix}")
                m.d.sync += psum.eq(nxt)
                below.append(psum)
                if k == rows - 1:
                    m.d.sync += self.out_valid[j].eq(left["valid"] & left["last"])
                if j + 1 < cols:
                    left = self._east(m, left, name=f"east_{prefix}")
            psums_above = below

        for j in range(cols):
            m.d.comb += self.out_data.word_select(j, self._acc_shape.width).eq(bottoms[j])
        return m

    def _east(self, m, left, *, name):
        """The hop of A and its controls to the next PE; with ``zero_hold`` a zero A is not loaded.

        The held register keeps its old bits (but for the kind's
        :meth:`~hw.kinds.base.PEKind.zero_loaded_bits`) and the registered
        ``a_zero`` flag says they are stale; every other register loads every cycle.
        """
        if not self.zero_hold:
            return register_all(m, left, name=name)
        out = register_all(m, {key: value for key, value in left.items() if key != "a"}, name=name)
        out["a"] = reg = Signal(left["a"].shape(), name=f"{name}_a")
        with m.If(~left["a_zero"]):
            m.d.sync += reg.eq(left["a"])
        loaded = self.kind.zero_loaded_bits("a")
        if loaded is not None:
            m.d.sync += reg[loaded].eq(left["a"][loaded])
        self.held_registers.append((reg, out["a_zero"]))
        return out
