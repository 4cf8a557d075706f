"""Output-stationary R x C systolic MAC arrays of every PE kind (:mod:`hw.kinds`).

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
maximal magnitude (over every operand mode). A floating-point kind
accumulates with its own rule (binary32, one round-to-nearest-even per add,
in ascending k). The product and accumulate rules are the kind's
(:class:`hw.kinds.base.PEKind`), the same the standalone tops use (:mod:`hw.pe`).
"""

from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ._params import check_int
from .kinds import KINDS, get_kind
from .pipeline import delay

__all__ = ["SystolicArray", "min_tile_cycles", "output_stationary_ports"]


def min_tile_cycles(rows):
    """Fewest cycles from one tile's ``clear`` to the next tile's so that the drain
    chains never collide: ``2 * rows - 1``."""
    return 2 * rows - 1


def output_stationary_ports(kind, rows, cols, out_width):
    """Ports of an output-stationary array of ``kind`` (docs/arrays.md, "Ports").

    Shared by :class:`SystolicArray` and the lean FPGA array
    (:mod:`hw.fpga_array`), which keep one interface: packed row operands
    ``a_in`` and column operands ``b_in``, ``valid``/``clear``/``last``, the
    kind's signedness modes, and ``out_data`` (``out_width`` bits per column)
    with ``out_valid``.
    """
    members = {
        "a_in": In(kind.a_width * rows),
        "b_in": In(kind.b_width * cols),
        "valid": In(1),
        "clear": In(1),
        "last": In(1),
    }
    for name in kind.a_modes + kind.b_modes:
        members[name] = In(1)
    members["out_data"] = Out(out_width * cols)
    members["out_valid"] = Out(cols)
    return members


class SystolicArray(wiring.Component):
    """An output-stationary ``rows`` x ``cols`` array of one PE kind.

    Parameters
    ----------
    kind : str or PEKind
        A kind of the registry (:data:`hw.kinds.KINDS`).
    rows, cols : int
        Array size R x C (each >= 1).
    acc_width : int, optional
        Accumulator bits of the integer kinds (default: the narrowest that
        cannot overflow within ``max_k`` products). Floating-point kinds
        accumulate in binary32 and accept only 32.
    max_k : int
        Declared largest K (products per output) the array must support
        (default 4096). An ``acc_width`` that can overflow within ``max_k``
        products is a ValueError; without ``acc_width`` the accumulators are
        the narrowest that hold ``max_k`` products
        (:meth:`~hw.kinds.base.PEKind.lean_acc_width`). Ignored by
        floating-point kinds apart from the check that it is a positive integer.
    gated : bool
        Lean registers (default True): an operand register between PEs loads
        only when the ``valid`` travelling with it is set, and a drain register
        only when a result enters it. The results are the same; idle operands
        and an empty drain chain are not clocked (a synthesis flow maps the
        enables to clock gates, :mod:`report.synth`), and ``out_data`` keeps
        its last value while ``out_valid`` is 0. False: every register loads
        every cycle and an empty drain chain shifts zeros.
    zero_hold : bool
        Hold zero operands (default False, so the training datapath and the board
        engines load zeros like any other operand; gated arrays of a kind with
        zero-operand rules only, :meth:`~hw.kinds.base.PEKind.operand_zero`):
        an operand register between PEs does not load a zero operand (INT4
        code 0, an FP4 zero, binary16 +-0: only its sign) but registers a
        1-bit flag that travels with it, so the product logic downstream
        does not switch for it and every PE downstream skips the product
        exactly (binary16 0 x inf/NaN still gives NaN). The results are the
        same. False (or ``gated=False``): zero operands load like any other.

    Attributes
    ----------
    a_in : Signal(rows * a_width), in
        Column k of the A tile, packed: bits ``[i*a_width, (i+1)*a_width)`` hold
        ``A[i, k]`` (a 4-bit code, or a binary16 pattern).
    b_in : Signal(cols * b_width), in
        Row k of the B tile, packed: bits ``[j*b_width, (j+1)*b_width)`` hold ``B[k, j]``.
    valid : Signal(1), in
        ``a_in``/``b_in`` hold a product term this cycle.
    clear : Signal(1), in
        First k of a tile: restart every accumulator (SPEC section 3 rule).
    last : Signal(1), in
        Final k of a tile: then each PE hands its result to the drain. A tile
        with K = 0 is one cycle with ``valid = 0``, ``clear = 1``, ``last = 1``.
    <mode inputs> : Signal(1), in
        The kind's ``a_modes`` (travel with A, e.g. ``a_signed``: A is INT4 or
        UINT4) and ``b_modes`` (travel with B).
    out_data : Signal(cols * acc_width), out
        Bits ``[j*acc_width, (j+1)*acc_width)``: the result leaving the top of
        column ``j`` (two's complement, or a binary32 pattern); meaningful
        only where ``out_valid`` is set.
    out_valid : Signal(cols), out
        Bit ``j``: ``out_data[j]`` holds a result. Column ``j`` emits each
        tile's rows in ascending order, tiles in order.
    max_k : int or None
        Largest K that cannot overflow the accumulators (None: floating point).
    declared_max_k : int
        The ``max_k`` parameter.
    zero_hold : bool
        Whether the operand registers hold zero operands (``zero_hold`` and
        ``gated``, for a kind with zero-operand rules).
    latency : int
        Cycles from the edge that samples ``last`` to ``out_valid[0]`` for
        row 0 of that tile (1); row ``i`` of column ``j`` follows ``j + 2 i`` later.
    """

    def __init__(self, *, kind, rows, cols, acc_width=None, max_k=4096, gated=True, zero_hold=False):
        try:
            self._check(kind, rows, cols, acc_width, max_k, gated, zero_hold)
        except (TypeError, ValueError):
            # A refused array is not an unused design: no UnusedElaboratable warning.
            self._MustUse__silence = True
            raise
        acc_shape = self.kind.acc_shape(self.acc_width)
        super().__init__(output_stationary_ports(self.kind, rows, cols, acc_shape.width))
        self._acc_shape = acc_shape
        self.held_registers = []

    latency = 1

    def _check(self, kind, rows, cols, acc_width, max_k, gated, zero_hold):
        if isinstance(kind, str) and kind not in KINDS:
            raise ValueError(f"unknown array kind {kind!r} (known: {', '.join(KINDS)})")
        self.kind = get_kind(kind)
        owner = self.kind.array_module
        self.rows = check_int(owner, "rows", rows, minimum=1)
        self.cols = check_int(owner, "cols", cols, minimum=1)
        self.declared_max_k = check_int(owner, "max_k", max_k, minimum=1)
        if not isinstance(gated, bool):
            raise TypeError(f"{owner}: gated must be a bool, not {gated!r}")
        self.gated = gated
        if not isinstance(zero_hold, bool):
            raise TypeError(f"{owner}: zero_hold must be a bool, not {zero_hold!r}")
        # Holding needs the gated operand registers and a kind with zero-operand rules.
        probe = self.kind.operand_zero("a", Signal(self.kind.a_width), {name: Signal() for name in self.kind.a_modes})
        self.zero_hold = zero_hold and gated and probe is not None
        if acc_width is None:
            acc_width = self.kind.lean_acc_width(max_k)
        self.acc_width = self.kind.check_acc_width(owner, acc_width, max_k)
        self.max_k = self.kind.max_k(self.acc_width)

    def manifest(self):
        """Array-specific manifest fields (dataflow, size, timing, overflow bound)."""
        return {
            "dataflow": "output-stationary",
            "gated": self.gated,
            "zero_hold": self.zero_hold,
            "pe": self.kind.name,
            "accumulator": self.kind.accumulator_description(self.acc_width),
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
        gated, zero_hold = self.gated, self.zero_hold
        # (operand register, its zero flag) of every hop that holds zero operands:
        # what the tests watch to see a zero leave the register's bits alone.
        self.held_registers = []

        def register(values, name, *, operand=None, enable=None):
            """Registered copies of a dict of values (the hop to the next PE).

            In a gated array the ``operand`` entry loads only when ``enable``
            (the ``valid`` travelling with it) is set: an operand that no PE
            multiplies is not clocked in, so the product logic downstream does
            not switch either. With ``zero_hold`` it does not load a zero
            operand either (the kind's :meth:`~hw.kinds.base.PEKind.operand_zero`)
            but keeps its old bits (apart from the kind's
            :meth:`~hw.kinds.base.PEKind.zero_loaded_bits`) and registers the
            ``<operand>_zero`` flag, which loads with ``enable`` and tells every
            PE downstream that the held bits are stale. Controls and mode bits
            load every cycle.
            """
            flag = f"{operand}_zero"
            out = {}
            for key, value in values.items():
                reg = Signal(Value.cast(value).shape(), name=f"{name}_{key}")
                if gated and key == flag:
                    with m.If(enable):
                        m.d.sync += reg.eq(value)
                elif gated and key == operand and flag in values:
                    loaded = kind.zero_loaded_bits(operand)
                    with m.If(enable & ~values[flag]):
                        m.d.sync += reg.eq(value)
                    if loaded is not None:
                        with m.If(enable):
                            m.d.sync += reg[loaded].eq(Value.cast(value)[loaded])
                elif gated and key == operand:
                    with m.If(enable):
                        m.d.sync += reg.eq(value)
                else:
                    m.d.sync += reg.eq(value)
                out[key] = reg
            if gated and operand in out and flag in out:
                self.held_registers.append((out[operand], out[flag]))
            return out

        def with_flag(values, role, names):
            """``values`` with the zero flag of its (live, not held) operand ``role`` added."""
            if not zero_hold:
                return values
            flag = kind.operand_zero(role, values[role], {name: values[name] for name in names})
            return {**values, f"{role}_zero": flag}

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
            # The skew registers are not gated: their enables would be `valid`
            # delayed by each stage, a net whose fanout grows with the array.
            # Their operands are live, so the first PE of a row (and of a
            # column) finds the zero flag from the operand itself.
            a_operand = delay(m, self.a_in.word_select(i, kind.a_width), i, name=f"a_skew{i}")
            west.append(with_flag({"a": a_operand, **a_controls}, "a", kind.a_modes))
        b_controls = {name: getattr(self, name) for name in kind.b_modes}
        north = []
        for j in range(cols):
            if j > 0:
                b_controls = register(b_controls, f"north{j}")
            b_operand = delay(m, self.b_in.word_select(j, kind.b_width), j, name=f"b_skew{j}")
            north.append(with_flag({"b": b_operand, **b_controls}, "b", kind.b_modes))

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
                prod = kind.product(m, left["a"], top["b"], modes, prefix=f"mul_{prefix}")
                acc = Signal(self._acc_shape, name=f"acc_{prefix}")
                valid = left["valid"]
                if gated:
                    # SPEC section 3: the accumulator holds unless valid or clear, so
                    # it loads only then (an explicit enable a flow can clock-gate),
                    # and not for a product that cannot change it (a zero operand:
                    # the flags travelling with held operands, or the live operands').
                    if zero_hold:
                        zero = (left["a_zero"], top["b_zero"])
                    else:
                        zero = (
                            kind.operand_zero("a", left["a"], {name: left[name] for name in kind.a_modes}),
                            kind.operand_zero("b", top["b"], {name: top[name] for name in kind.b_modes}),
                        )
                    prod, valid, skip = kind.zero_product(
                        m, prod, left["a"], top["b"], zero, modes, acc, valid, stale=zero_hold, prefix=f"zero_{prefix}"
                    )
                    nxt, load = kind.gated_accumulate(m, acc, prod, valid, left["clear"], prefix=f"add_{prefix}")
                    use = valid if skip is None else valid & ~skip
                    enable = use | left["clear"]
                    with m.If(enable if load is None else enable & load):
                        m.d.sync += acc.eq(nxt)
                else:
                    nxt = kind.accumulate(m, acc, prod, valid, left["clear"], prefix=f"add_{prefix}")
                    m.d.sync += acc.eq(nxt)
                cap = Signal(name=f"cap_{prefix}")
                m.d.sync += cap.eq(left["last"])
                accs[i][j], caps[i][j] = acc, cap
                here_valid = left["valid"]  # B of PE (i, j) arrives with the valid of its A
                if i + 1 < rows:
                    below_inputs.append(register(top, f"south_{prefix}", operand="b", enable=here_valid))
                if j + 1 < cols:
                    left = register(left, f"east_{prefix}", operand="a", enable=here_valid)
            from_north = below_inputs

        # Drain: per column, output registers shifting up one row per cycle;
        # a PE loads its result the cycle after its `last` (from its register,
        # so the accumulator's adder is not on the drain path). Gated, a drain
        # register loads only when a result enters it (its PE's or the one
        # below's), so between tiles the chain is not clocked; its data is then
        # stale and only `out_valid` tells a result.
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
                incoming = caps[i][j] if below_valid is None else caps[i][j] | below_valid
                data = Mux(caps[i][j], accs[i][j], 0 if below_data is None else below_data)
                if gated:
                    with m.If(incoming):
                        m.d.sync += data_reg.eq(data)
                else:
                    m.d.sync += data_reg.eq(data)
                m.d.sync += valid_reg.eq(incoming)
                below_data, below_valid = data_reg, valid_reg
        return m
