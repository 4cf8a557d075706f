"""Lean output-stationary arrays for FPGAs: the :class:`hw.array.SystolicArray` interface, fewer LUTs per MAC.

Same ports, same results (bit for bit, for every K up to ``max_k``), same
drain order and tile spacing as :class:`hw.array.SystolicArray`; three
cycles of latency instead of one. What a PE no longer has:

* **No run-time signedness in the PE.** A kind with a lean rule
  (:meth:`hw.kinds.base.PEKind.lean_a` and friends) rewrites each operand
  code once per row (A) or column (B) where it enters the array, so that
  every PE multiplies fixed-signedness codes; for ``int4`` a UINT4 code
  ``u`` becomes the INT4 code of ``u - 8`` (its top bit flipped). The
  difference is a sum of per-row terms (functions of A alone) and per-column
  terms (functions of B alone): ``a * b = P(a', b') + r(a') + c(b')``. One
  accumulator per row (a column of row sums beside the array, drained like
  the PEs) and one per column (at the top edge) sum those terms, and the
  output stage adds them to every result: ``R + C`` adders instead of
  ``R x C`` sign logics. Mode bits travel along the edges only, never
  through the PEs.
* **Zero operands instead of valid gating.** Where ``valid`` is 0 the
  entering A code is the kind's zero code (its product is 0 for every B),
  so the accumulator adds whatever arrives; ``valid`` does not reach a PE.
* **A product register, and ``clear`` as the accumulator's synchronous
  reset.** Each PE registers its product; the accumulator adds the
  registered product and resets to 0 on the cycle ``clear`` arrives (when
  the product register takes the tile's first product), so ``clear`` is
  the flip-flops' own reset input (free on ECP5 and iCE40) instead of a mux
  in front of the adder. A tile's sum is the adder's output the cycle after
  ``last``: the drain register takes it from there.
* **Accumulators sized for the lean products.** The PE accumulators hold
  ``max_k`` products ``P(a', b')`` (``int4``: -56..64, two bits narrower
  than -120..225 over every mode); the row and column sums hold ``max_k``
  terms; the output adds them in ``acc_width`` bits, which hold ``max_k``
  products of the kind's full range (as the plain array's accumulators).
  Beyond ``max_k`` the plain array wraps in ``acc_width`` bits and this
  one is not defined: the runner and the engine keep K within ``max_k``.

Forwarded per PE: the two operand codes, ``clear`` and ``last`` (10 bits
for 4-bit kinds, against 13 with ``valid`` and both mode bits).
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring

from ._params import check_int
from .arith import min_acc_width
from .array import min_tile_cycles, output_stationary_ports
from .kinds import KINDS, get_kind
from .pipeline import register_all, skewed_edge

__all__ = ["LeanSystolicArray", "lean_kinds"]


def lean_kinds():
    """Names of the kinds that have a lean FPGA rule (:attr:`hw.kinds.base.PEKind.fpga_lean`)."""
    return [name for name, kind in KINDS.items() if kind.fpga_lean]


class LeanSystolicArray(wiring.Component):
    """A lean output-stationary ``rows`` x ``cols`` array of one kind with a lean FPGA rule.

    Parameters
    ----------
    kind : str or PEKind
        A kind whose :attr:`~hw.kinds.base.PEKind.fpga_lean` is true.
    rows, cols : int
        Array size R x C (each >= 1).
    acc_width : int, optional
        Bits of each result word (``out_data``); default: the narrowest that
        holds ``max_k`` products of the kind's full product range.
    max_k : int
        Declared largest K (default 4096); an ``acc_width`` that cannot hold
        ``max_k`` products is a ValueError. The PE accumulators and the row
        and column sums are the narrowest that hold ``max_k`` of their terms.

    Attributes
    ----------
    a_in, b_in, valid, clear, last, <mode inputs>, out_data, out_valid
        As :class:`hw.array.SystolicArray`.
    pe_acc_width : int
        Bits of each PE accumulator.
    max_k : int
        Largest K whose results are exact (the plain array's bound for ``acc_width``).
    declared_max_k : int
        The ``max_k`` parameter.
    latency : int
        Cycles from the edge that samples ``last`` to ``out_valid[0]`` for
        row 0 of that tile (3); row ``i`` of column ``j`` follows ``j + 2 i`` later.
    """

    latency = 3

    def __init__(self, *, kind, rows, cols, acc_width=None, max_k=4096):
        try:
            self._check(kind, rows, cols, acc_width, max_k)
        except (TypeError, ValueError):
            # A refused array is not an unused design: no UnusedElaboratable warning.
            self._MustUse__silence = True
            raise
        super().__init__(output_stationary_ports(self.kind, rows, cols, self.acc_width))

    def _check(self, kind, rows, cols, acc_width, max_k):
        if isinstance(kind, str) and kind not in KINDS:
            raise ValueError(f"unknown array kind {kind!r} (known: {', '.join(KINDS)})")
        self.kind = get_kind(kind)
        owner = f"{self.kind.array_module} (lean FPGA)"
        if not self.kind.fpga_lean:
            lean = ", ".join(lean_kinds())
            raise ValueError(f"{owner}: the {self.kind.name} kind has no lean FPGA rule (lean kinds: {lean})")
        self.rows = check_int(owner, "rows", rows, minimum=1)
        self.cols = check_int(owner, "cols", cols, minimum=1)
        self.declared_max_k = check_int(owner, "max_k", max_k, minimum=1)
        if acc_width is None:
            acc_width = self.kind.lean_acc_width(max_k)
        self.acc_width = self.kind.check_acc_width(owner, acc_width, max_k)
        self.max_k = self.kind.max_k(self.acc_width)
        # Internal widths hold max_k terms of each sum: exact for every K the outputs hold.
        self.pe_acc_width = min_acc_width(self.kind.lean_product_range, self.max_k)
        self._row_width = _sum_width(self.kind.row_term_range, self.max_k)
        self._col_width = _sum_width(self.kind.col_term_range, self.max_k)

    def manifest(self):
        """Array-specific manifest fields (dataflow, size, timing, overflow bound)."""
        return {
            "dataflow": "output-stationary (lean FPGA)",
            "pe": self.kind.name,
            "accumulator": (
                f"PE: signed {self.pe_acc_width}-bit; results signed {self.acc_width}-bit, exact for K <= {self.max_k}"
            ),
            "declared_max_k": self.declared_max_k,
            "min_tile_cycles": min_tile_cycles(self.rows),
            "timing": (
                "as the output-stationary array, two cycles later: if `last` is sampled at edge t, "
                f"column j shows row i after edge t + 3 + j + 2*i; >= {min_tile_cycles(self.rows)} cycles "
                "from one `clear` to the next."
            ),
        }

    def elaborate(self, platform):
        m = Module()
        kind, rows, cols = self.kind, self.rows, self.cols
        inputs = {name: getattr(self, name) for name in kind.a_modes + kind.b_modes}
        row_modes = {name: inputs[name] for name in (kind.lean_row_modes or inputs)}
        col_modes = {name: inputs[name] for name in (kind.lean_col_modes or inputs)}
        has_rows, has_cols = self._row_width is not None, self._col_width is not None
        tile = {"valid": self.valid, "clear": self.clear, "last": self.last}

        # Edges: the raw codes skewed; the controls and the mode bits each edge
        # uses on a chain down the left and along the top (per row / column, not per PE).
        west = skewed_edge(m, self.a_in, kind.a_width, {**tile, **row_modes}, rows, operand="a", name="west")
        north_controls = {**tile, **col_modes} if has_cols else col_modes
        north = skewed_edge(m, self.b_in, kind.b_width, north_controls, cols, operand="b", name="north")

        # Entry registers: each row's (column's) code rewritten once, with the
        # modes that travel with it, A zeroed where it is not valid, and the
        # row's (column's) correction term of this k (0 where not valid).
        zero_a = Const(kind.lean_zero_a, kind.a_width)
        rows_in = []
        for i, edge in enumerate(west):
            here = {name: edge[name] for name in row_modes}
            code = kind.lean_a(edge["a"], here)
            entry = {"a": Mux(edge["valid"], code, zero_a), "clear": edge["clear"], "last": edge["last"]}
            if has_rows:
                entry["term"] = _fit(Mux(edge["valid"], kind.row_term(code, here), 0), kind.row_term_range)
            rows_in.append(register_all(m, entry, name=f"row{i}"))
        cols_in = []
        for j, edge in enumerate(north):
            here = {name: edge[name] for name in col_modes}
            code = kind.lean_b(edge["b"], here)
            entry = {"b": code}
            if has_cols:
                entry.update(
                    term=_fit(Mux(edge["valid"], kind.col_term(code, here), 0), kind.col_term_range),
                    clear=edge["clear"],
                    last=edge["last"],
                )
            cols_in.append(register_all(m, entry, name=f"col{j}"))

        def cell(term, term_range, clear, last, width, name):
            """Registered term, accumulator with ``clear`` as synchronous reset; (sum, cap).

            ``sum`` is the adder's output: the cycle after ``last`` it is the tile's total.
            """
            held = Signal(signed(_range_width(term_range)), name=f"{name}_term")
            cap = Signal(name=f"{name}_cap")
            acc = Signal(signed(width), name=f"{name}_acc")
            total = (acc + held)[:width].as_signed()
            m.d.sync += [held.eq(term), cap.eq(last)]
            with m.If(clear):
                m.d.sync += acc.eq(0)
            with m.Else():
                m.d.sync += acc.eq(total)
            return total, cap

        def drain(column, width, name, *, valid=True):
            """A drain chain shifting up one row per cycle; its top data register (and valid)."""
            below_data, below_valid = None, None
            for i in reversed(range(rows)):
                total, cap = column[i]
                data_reg = Signal(signed(width), name=f"{name}{i}")
                m.d.sync += data_reg.eq(Mux(cap, total, 0 if below_data is None else below_data))
                if valid:
                    valid_reg = Signal(name=f"{name}{i}_valid")
                    m.d.sync += valid_reg.eq(cap if below_valid is None else cap | below_valid)
                    below_valid = valid_reg
                below_data = data_reg
            return below_data, below_valid

        # PEs: A right, B down, each with its tile's clear/last.
        pes = [[None] * cols for _ in range(rows)]
        from_north = cols_in
        for i in range(rows):
            left = rows_in[i]
            below = []
            for j in range(cols):
                top = from_north[j]
                prefix = f"{i}_{j}"
                prod = kind.lean_product(left["a"], top["b"])
                pes[i][j] = cell(
                    prod, kind.lean_product_range, left["clear"], left["last"], self.pe_acc_width, f"pe{prefix}"
                )
                if i + 1 < rows:
                    below.append(register_all(m, {"b": top["b"]}, name=f"south_{prefix}"))
                if j + 1 < cols:
                    left = register_all(
                        m, {"a": left["a"], "clear": left["clear"], "last": left["last"]}, name=f"east_{prefix}"
                    )
            from_north = below

        # Row sums: a column beside column 0 (the same skew), drained like it;
        # its top walks right one register per column, in step with the drains.
        row_top = None
        if has_rows:
            sums = [
                cell(entry["term"], kind.row_term_range, entry["clear"], entry["last"], self._row_width, f"rowsum{i}")
                for i, entry in enumerate(rows_in)
            ]
            row_top, _ = drain(sums, self._row_width, "rowdrain", valid=False)

        for j in range(cols):
            data, valid = drain([pes[i][j] for i in range(rows)], self.pe_acc_width, f"drain_{j}_")
            terms = [data]
            if row_top is not None:
                terms.append(row_top)
                if j + 1 < cols:
                    nxt = Signal(signed(self._row_width), name=f"rowcorr{j + 1}")
                    m.d.sync += nxt.eq(row_top)
                    row_top = nxt
            if has_cols:
                # Column sum: at the top edge, with the tile's clear/last of
                # column j; held from the tile's end through its drain.
                entry = cols_in[j]
                total, cap = cell(
                    entry["term"], kind.col_term_range, entry["clear"], entry["last"], self._col_width, f"colsum{j}"
                )
                held = Signal(signed(self._col_width), name=f"colcorr{j}")
                with m.If(cap):
                    m.d.sync += held.eq(total)
                terms.append(held)
            result = terms[0]
            for term in terms[1:]:
                result = result + term
            m.d.sync += [
                self.out_data.word_select(j, self.acc_width).eq(result),
                self.out_valid[j].eq(valid),
            ]
        return m


def _sum_width(term_range, k):
    """Width of a signed sum of ``k`` terms in ``term_range`` (None: the kind has no such term)."""
    return None if term_range is None else min_acc_width(term_range, k)


def _range_width(term_range):
    """Bits of a signed register that holds every value of ``term_range``."""
    magnitude = max(-term_range.lo - 1, term_range.hi, 0)
    return magnitude.bit_length() + 1


def _fit(value, term_range):
    """``value`` (whose values lie in ``term_range``) in just the signed bits that hold the range."""
    return value[: _range_width(term_range)].as_signed()
