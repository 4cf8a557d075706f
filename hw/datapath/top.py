"""The training datapath of fully connected layers: one unified training array with its
operand buffers, edge requantizers, on-chip ST-mask and gradient memories, amax
reduction and the FP4 TPR encoder, sequenced by a command FSM.

Commands (``cmd`` sampled with ``start``; ``busy`` is high until done)
----------------------------------------------------------------------
``CMD_GEMM``
    One R x C output tile (``tiles`` <= 1): streams ``k`` words from the A / B operand buffers
    into the array (``mode`` 0: INT4/UINT4 x INT4 forward, 1: FP4 x INT4
    backward), collects the drained accumulators, adds ``bias[j]`` and
    requantizes each column at the array edge ((M0, shift), ReLU/PACT clamp,
    masks) into the result registers, then runs the tile's post-operation
    over its ``rows_valid`` x ``cols_valid`` elements, element ``(i, j)`` of
    the tile being element ``offset + i * stride + j`` of its tensor, whose
    mask lives at ``base + offset + i * stride + j``:

    * ``POST_NONE``: nothing (dW tiles, logits);
    * ``POST_MASK``: store the straight-through mask bit (``inside``) in the mask memory;
    * ``POST_GRAD``: gradient = the accumulator, zeroed where the mask memory
      (at the address above) says outside (when ``use_mask``), written to the
      gradient memory at ``offset + i * stride + j`` (the element's index in
      the gradient tensor); its magnitude enters the amax register.

    With ``tiles`` = T > 1 the command streams T tiles back to back that share the A
    words ``0 .. k-1``: tile t reads B words ``t*k .. t*k + k-1`` (so ``T * k <= k_depth``),
    and starts ``max(k, 2R - 1)`` cycles after tile t - 1 (the array's drain chains need
    ``2R - 1``, :func:`hw.array.min_tile_cycles`), while tile t - 1 drains. Every drained
    total (accumulator + bias) is shown on ``drain_total`` with its column's
    ``drain_valid`` bit for one cycle: column j shows the tiles' rows in order (tile 0 rows
    0 .. R-1, tile 1 rows 0 .. R-1, ...). The result registers keep the last tile; the
    post-operation, if any, runs over the last tile only, so the host uses ``POST_NONE``
    (weight-gradient tiles, whose short K = batch leaves the array idle while a lone tile
    fills and drains).
``CMD_ENCODE``
    GradScale exponent ``k`` from amax (leading-one detection), then both
    TPR phases' FP4 codes of gradient words ``0 .. count-1`` into the code
    memory (phase 0 in bits 3..0, phase 1 in bits 7..4).
``CMD_CLEAR``
    amax <= 0.

The host writes the operand buffers, the bias registers and (for a loss
gradient) gradient words directly; a host gradient write updates amax too.
See docs/datapath.md for the full host interface and the block diagram.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .._params import check_int
from ..array import SystolicArray, min_tile_cycles
from ..kinds.train import KIND as TRAIN_KIND
from .fp4_encoder import fp4_encode, grad_exponent, k_width
from .requant import M0_BITS, SHIFT_BITS, requantize

__all__ = [
    "CMD_NOP",
    "CMD_GEMM",
    "CMD_ENCODE",
    "CMD_CLEAR",
    "POST_NONE",
    "POST_MASK",
    "POST_GRAD",
    "TOTAL_WIDTH",
    "TrainDatapath",
]

CMD_NOP, CMD_GEMM, CMD_ENCODE, CMD_CLEAR = 0, 1, 2, 3
POST_NONE, POST_MASK, POST_GRAD = 0, 1, 2
#: Signed width of accumulator + bias (the golden requantizer's 40-bit limit).
TOTAL_WIDTH = 40


_STATES = (_IDLE, _STREAM, _DRAIN, _POST, _ENCODE) = range(5)


def _padded(values, fill):
    """An Array of ``values`` padded with ``fill`` to a power-of-two length, so that indexing it
    by an address emits a complete case statement."""
    values = list(values)
    return Array(values + [fill] * ((1 << _bits(len(values))) - len(values)))


def _bits(n):
    return max(1, (n - 1).bit_length())


class TrainDatapath(wiring.Component):
    """Forward / backward datapath of a fully connected layer on an R x C training array.

    Parameters
    ----------
    rows, cols : int
        Array size R x C.
    k_depth : int
        Operand buffer depth: the largest K of one tile.
    grad_depth : int
        Words of the gradient and code memories (largest gradient tensor).
    mask_depth : int
        Bits of the straight-through mask memory (largest hidden activation tensor).
    acc_width : int
        Array accumulator bits (default 32).
    grad_width : int
        Signed bits of a gradient word (default 48).

    Attributes
    ----------
    cmd : Signal(2), in
        Command, sampled with ``start``.
    start : Signal(1), in
        Starts ``cmd`` when idle.
    busy : Signal(1), out
    cycles : Signal(32), out
        Cycles the last command took (start edge to idle).
    k : Signal(range(k_depth + 1)), in
        Products per output of a GEMM tile (>= 1).
    tiles : Signal(range(k_depth + 1)), in
        Tiles of one ``CMD_GEMM`` (0 and 1: one), sharing the A words, with B tile t at words
        ``t*k ..``; ``tiles * k <= k_depth``.
    mode, a_signed, b_signed : Signal(1), in
        Array mode (0 forward, 1 backward) and operand signedness.
    post : Signal(2), in
        ``POST_NONE`` / ``POST_MASK`` / ``POST_GRAD``.
    use_mask : Signal(1), in
        ``POST_GRAD``: zero gradients outside the stored mask.
    m0 : Signal(16), in
    shift : Signal(6), in
        Requantizer multiplier (M0, shift); shift >= 1.
    rows_valid, cols_valid : Signal, in
        Extent of the tile inside the tensor (1..R, 1..C), for the post-operation.
    base, offset, stride : Signal, in
        Mask memory base of the tensor, index of tile element (0, 0) in the tensor, and the
        tensor's row stride, for the post-operation.
    count : Signal, in
        Words for ``CMD_ENCODE``.
    a_we, a_addr, a_data : in
        Host write of A buffer word ``a_addr`` = column k of the A tile (R x 4 bits, row i at bits 4i).
    b_we, b_addr, b_data : in
        Host write of B buffer word ``b_addr`` = row k of the B tile (C x 4 bits, column j at bits 4j).
    bias_we, bias_addr, bias_data : in
        Host write of the bias register of column ``bias_addr`` (signed 40 bits, accumulator units).
    g_we, g_addr, g_data : in
        Host write of a gradient word (signed ``grad_width``); updates amax.
    drain_valid : Signal(C), out
        Column j's total is on ``drain_total`` this cycle (as it enters the result registers).
    drain_total : Signal(C * 40), out
        Accumulator + bias of the row each column drains now, column j at bits 40j.
    res_row : in
        Row of the result registers shown on the ``res_*`` outputs.
    res_total : Signal(C * 40), out
        Accumulator + bias of row ``res_row``, column j at bits 40j (two's complement).
    res_code, res_inside, res_saturated : out
        Requantized UINT4 codes (4 bits per column) and the PACT masks (1 bit per column) of that row.
    c_addr : in
    c_data : Signal(8), out
        Code memory word ``c_addr`` of the previous cycle (synchronous read): phase 0 code in bits 3..0,
        phase 1 code in bits 7..4.
    amax : Signal(grad_width), out
    grad_k : Signal, out
        GradScale exponent of amax.
    """

    def __init__(self, *, rows, cols, k_depth, grad_depth, mask_depth, acc_width=32, grad_width=48):
        try:
            self._check(rows, cols, k_depth, grad_depth, mask_depth, acc_width, grad_width)
        except (TypeError, ValueError):
            # A refused datapath is not an unused design: no UnusedElaboratable warning.
            self._MustUse__silence = True
            raise
        addr = max(_bits(grad_depth), _bits(mask_depth))
        self.addr_bits = addr
        self.k_bits = k_width(grad_width)
        super().__init__(
            {
                "cmd": In(2),
                "start": In(1),
                "busy": Out(1),
                "cycles": Out(32),
                "k": In(range(k_depth + 1)),
                "tiles": In(range(k_depth + 1)),
                "mode": In(1),
                "a_signed": In(1),
                "b_signed": In(1),
                "post": In(2),
                "use_mask": In(1),
                "m0": In(M0_BITS),
                "shift": In(SHIFT_BITS),
                "rows_valid": In(range(rows + 1)),
                "cols_valid": In(range(cols + 1)),
                "base": In(addr),
                "offset": In(addr),
                "stride": In(addr),
                "count": In(range(grad_depth + 1)),
                "a_we": In(1),
                "a_addr": In(_bits(k_depth)),
                "a_data": In(4 * rows),
                "b_we": In(1),
                "b_addr": In(_bits(k_depth)),
                "b_data": In(4 * cols),
                "bias_we": In(1),
                "bias_addr": In(_bits(cols)),
                "bias_data": In(signed(TOTAL_WIDTH)),
                "g_we": In(1),
                "g_addr": In(_bits(grad_depth)),
                "g_data": In(signed(grad_width)),
                "drain_valid": Out(cols),
                "drain_total": Out(TOTAL_WIDTH * cols),
                "res_row": In(_bits(rows)),
                "res_total": Out(TOTAL_WIDTH * cols),
                "res_code": Out(4 * cols),
                "res_inside": Out(cols),
                "res_saturated": Out(cols),
                "c_addr": In(_bits(grad_depth)),
                "c_data": Out(8),
                "amax": Out(grad_width),
                "grad_k": Out(self.k_bits),
            }
        )

    def _check(self, rows, cols, k_depth, grad_depth, mask_depth, acc_width, grad_width):
        owner = "train_datapath"
        self.rows = check_int(owner, "rows", rows, minimum=1)
        self.cols = check_int(owner, "cols", cols, minimum=1)
        self.k_depth = check_int(owner, "k_depth", k_depth, minimum=1)
        self.grad_depth = check_int(owner, "grad_depth", grad_depth, minimum=1)
        self.mask_depth = check_int(owner, "mask_depth", mask_depth, minimum=1)
        self.acc_width = check_int(owner, "acc_width", acc_width, minimum=2)
        self.grad_width = check_int(owner, "grad_width", grad_width, minimum=acc_width)
        if acc_width > TOTAL_WIDTH:
            raise ValueError(f"{owner}: acc_width must be <= {TOTAL_WIDTH}, not {acc_width}")
        # Refuses an accumulator that can overflow within k_depth products (either mode).
        self.array = SystolicArray(kind=TRAIN_KIND, rows=rows, cols=cols, acc_width=acc_width, max_k=k_depth)

    #: No fixed input-to-output latency: commands run until ``busy`` falls.
    latency = None

    def manifest(self):
        """Datapath-specific manifest fields (geometry, command and post-operation encodings)."""
        return {
            "timing": (
                "command interface: configuration latched with `start`; `busy` high until done. "
                "CMD_GEMM takes k + drain (C - 1 + 2(R - 1) + 2) cycles, plus one per valid element "
                "with a post-operation; with tiles = T > 1, (T - 1) * max(k, 2R - 1) cycles more, the "
                "drained totals shown on drain_total/drain_valid; CMD_ENCODE count + 1 cycles"
            ),
            "rows": self.rows,
            "cols": self.cols,
            "k_depth": self.k_depth,
            "grad_depth": self.grad_depth,
            "mask_depth": self.mask_depth,
            "acc_width": self.acc_width,
            "grad_width": self.grad_width,
            "commands": {"nop": CMD_NOP, "gemm": CMD_GEMM, "encode": CMD_ENCODE, "clear": CMD_CLEAR},
            "post": {"none": POST_NONE, "mask": POST_MASK, "grad": POST_GRAD},
            "total_width": TOTAL_WIDTH,
            "max_k_no_overflow": self.array.max_k,
        }

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        m.submodules.array = array = self.array

        # Operand buffers: written by the host, read one word per cycle by the streamer.
        m.submodules.a_buf = a_buf = Memory(shape=unsigned(4 * R), depth=self.k_depth, init=[])
        m.submodules.b_buf = b_buf = Memory(shape=unsigned(4 * C), depth=self.k_depth, init=[])
        a_wr, b_wr = a_buf.write_port(), b_buf.write_port()
        a_rd, b_rd = a_buf.read_port(), b_buf.read_port()
        m.d.comb += [
            a_wr.en.eq(self.a_we),
            a_wr.addr.eq(self.a_addr),
            a_wr.data.eq(self.a_data),
            b_wr.en.eq(self.b_we),
            b_wr.addr.eq(self.b_addr),
            b_wr.data.eq(self.b_data),
        ]

        # Gradient words, their FP4 codes, and the straight-through mask.
        m.submodules.grad_mem = grad_mem = Memory(shape=signed(self.grad_width), depth=self.grad_depth, init=[])
        m.submodules.code_mem = code_mem = Memory(shape=unsigned(8), depth=self.grad_depth, init=[])
        m.submodules.mask_mem = mask_mem = Memory(shape=unsigned(1), depth=self.mask_depth, init=[])
        g_wr, g_rd = grad_mem.write_port(), grad_mem.read_port()
        c_wr, c_rd = code_mem.write_port(), code_mem.read_port()
        k_wr, k_rd = mask_mem.write_port(), mask_mem.read_port()
        m.d.comb += [c_rd.addr.eq(self.c_addr), self.c_data.eq(c_rd.data)]

        bias = [Signal(signed(TOTAL_WIDTH), name=f"bias{j}") for j in range(C)]
        for j in range(C):
            with m.If(self.bias_we & (self.bias_addr == j)):
                m.d.sync += bias[j].eq(self.bias_data)

        # Result registers, filled column by column as the array drains.
        total = [[Signal(signed(TOTAL_WIDTH), name=f"total_{i}_{j}") for j in range(C)] for i in range(R)]
        code = [[Signal(4, name=f"code_{i}_{j}") for j in range(C)] for i in range(R)]
        inside = [[Signal(name=f"inside_{i}_{j}") for j in range(C)] for i in range(R)]
        sat = [[Signal(name=f"sat_{i}_{j}") for j in range(C)] for i in range(R)]
        m.d.comb += [
            self.res_total.eq(_padded((Cat(*total[i]) for i in range(R)), 0)[self.res_row]),
            self.res_code.eq(_padded((Cat(*code[i]) for i in range(R)), 0)[self.res_row]),
            self.res_inside.eq(_padded((Cat(*inside[i]) for i in range(R)), 0)[self.res_row]),
            self.res_saturated.eq(_padded((Cat(*sat[i]) for i in range(R)), 0)[self.res_row]),
        ]

        amax = Signal(self.grad_width)
        m.d.comb += self.amax.eq(amax)
        gk = grad_exponent(m, amax, self.k_bits)
        m.d.comb += self.grad_k.eq(gk)

        def magnitude(value):
            return Mux(value < 0, -value, value)[: self.grad_width]

        # Configuration latched at start, so the host may change its inputs meanwhile.
        k_reg = Signal.like(self.k)
        tiles_reg = Signal.like(self.tiles)
        post = Signal(2)
        use_mask = Signal()
        rows_valid, cols_valid = Signal.like(self.rows_valid), Signal.like(self.cols_valid)
        base, offset, stride = Signal.like(self.base), Signal.like(self.offset), Signal.like(self.stride)
        count = Signal.like(self.count)
        m0, shift = Signal.like(self.m0), Signal.like(self.shift)
        mode, a_signed, b_signed = Signal(), Signal(), Signal()
        m.d.comb += [array.mode.eq(mode), array.a_signed.eq(a_signed), array.b_signed.eq(b_signed)]

        cycles = Signal(32)
        m.d.comb += self.cycles.eq(cycles)
        with m.If(self.busy):
            m.d.sync += cycles.eq(cycles + 1)

        # Streamer: buffer read at cycle t, presented to the array at t + 1. ``kk`` is the word of the
        # current tile (it stops at k while a short tile waits out the spacing), ``since`` the cycles
        # since the tile's first word, ``b_base`` the tile's first B word.
        spacing = min_tile_cycles(R)
        kk = Signal.like(self.k)
        since = Signal(range(spacing + 1))
        tile, b_base = Signal.like(self.tiles), Signal.like(self.tiles)
        issue, first, final = Signal(), Signal(), Signal()
        m.d.sync += [issue.eq(0), first.eq(0), final.eq(0)]
        m.d.comb += [
            a_rd.addr.eq(kk),
            b_rd.addr.eq(b_base + kk),
            array.a_in.eq(a_rd.data),
            array.b_in.eq(b_rd.data),
            array.valid.eq(issue),
            array.clear.eq(first),
            array.last.eq(final),
        ]

        # Drain collector: column j emits rows 0..R-1 of each tile in order; bias add + requantizer
        # per column. ``row_of`` is the row column j drains next, ``tiles_of`` its tiles drained.
        row_of = [Signal(range(max(R, 2)), name=f"drained{j}") for j in range(C)]
        tiles_of = [Signal.like(self.tiles, name=f"drained_tiles{j}") for j in range(C)]
        all_drained = Signal()
        m.d.comb += all_drained.eq(Cat(*(tiles_of[j] == tiles_reg for j in range(C))).all())
        m.d.comb += self.drain_valid.eq(array.out_valid)
        for j in range(C):
            acc = array.out_data.word_select(j, self.acc_width).as_signed()
            col_total = Signal(signed(TOTAL_WIDTH), name=f"col_total{j}")
            m.d.comb += [col_total.eq(acc + bias[j]), self.drain_total.word_select(j, TOTAL_WIDTH).eq(col_total)]
            rq_code, rq_inside, rq_sat = requantize(m, col_total, m0, shift)
            with m.If(array.out_valid[j]):
                with m.If(row_of[j] == R - 1):
                    m.d.sync += [row_of[j].eq(0), tiles_of[j].eq(tiles_of[j] + 1)]
                with m.Else():
                    m.d.sync += row_of[j].eq(row_of[j] + 1)
                for i in range(R):
                    with m.If(row_of[j] == i):
                        m.d.sync += [
                            total[i][j].eq(col_total),
                            code[i][j].eq(rq_code),
                            inside[i][j].eq(rq_inside),
                            sat[i][j].eq(rq_sat),
                        ]

        # Post-operation / encoder: stage A issues a memory read, stage B writes.
        flat_total = _padded((total[i][j] for i in range(R) for j in range(C)), 0)
        flat_inside = _padded((inside[i][j] for i in range(R) for j in range(C)), 0)
        pi, pj = Signal(range(R + 1)), Signal(range(C + 1))
        row_addr, row_rel = Signal(self.addr_bits), Signal(self.addr_bits)  # start of the tile row
        cur_addr, cur_rel = Signal(self.addr_bits), Signal(self.addr_bits)  # element issued now
        idx = Signal(range(self.grad_depth + 1))
        st_valid = Signal()
        st_elem = Signal(range(R * C))
        st_addr = Signal(self.addr_bits)
        st_rel = Signal(self.addr_bits)
        m.d.sync += st_valid.eq(0)
        m.d.comb += [k_rd.addr.eq(cur_addr), g_rd.addr.eq(idx)]

        # Stage B of POST_MASK / POST_GRAD.
        value = Signal(signed(TOTAL_WIDTH))
        m.d.comb += value.eq(flat_total[st_elem])
        masked = Signal(signed(TOTAL_WIDTH))
        m.d.comb += masked.eq(Mux(use_mask & ~k_rd.data[0], 0, value))
        # Stage B of CMD_ENCODE.
        enc_valid = Signal()
        enc_addr = Signal.like(idx)
        m.d.sync += enc_valid.eq(0)
        code0 = fp4_encode(m, g_rd.data, gk, 0, name="enc0")
        code1 = fp4_encode(m, g_rd.data, gk, 1, name="enc1")
        m.d.comb += [c_wr.en.eq(enc_valid), c_wr.addr.eq(enc_addr), c_wr.data.eq(Cat(code0, code1))]

        with m.If(st_valid & (post == POST_MASK)):
            m.d.comb += [k_wr.en.eq(1), k_wr.addr.eq(st_addr), k_wr.data.eq(flat_inside[st_elem])]
        # Gradient memory: host writes when idle, the post-operation when busy.
        with m.If(st_valid & (post == POST_GRAD)):
            m.d.comb += [g_wr.en.eq(1), g_wr.addr.eq(st_rel), g_wr.data.eq(masked)]
            with m.If(magnitude(masked) > amax):
                m.d.sync += amax.eq(magnitude(masked))
        with m.Elif(self.g_we & ~self.busy):
            m.d.comb += [g_wr.en.eq(1), g_wr.addr.eq(self.g_addr), g_wr.data.eq(self.g_data)]
            with m.If(magnitude(self.g_data) > amax):
                m.d.sync += amax.eq(magnitude(self.g_data))

        # Command FSM: a plain state register decoded by an if/elif chain (IDLE last), which
        # Yosys emits as if/else, not as a case statement lacking the arms that assign nothing.
        state = Signal(range(len(_STATES)), name="ctrl_state")
        with m.If(state == _STREAM):
            m.d.comb += self.busy.eq(1)
            with m.If(kk < k_reg):
                m.d.sync += [issue.eq(1), first.eq(kk == 0), final.eq(kk + 1 == k_reg), kk.eq(kk + 1)]
            with m.If(since < spacing):
                m.d.sync += since.eq(since + 1)
            last_tile = tile + 1 >= tiles_reg
            # The tile's last word now; the next tile, if any, starts once the spacing is met.
            with m.If((kk + 1 >= k_reg) & (last_tile | (since + 1 >= spacing))):
                with m.If(last_tile):
                    m.d.sync += state.eq(_DRAIN)
                with m.Else():
                    m.d.sync += [kk.eq(0), since.eq(0), tile.eq(tile + 1), b_base.eq(b_base + k_reg)]
        with m.Elif(state == _DRAIN):
            m.d.comb += self.busy.eq(1)
            m.d.sync += [
                pi.eq(0),
                pj.eq(0),
                row_addr.eq(base + offset),
                row_rel.eq(offset),
                cur_addr.eq(base + offset),
                cur_rel.eq(offset),
            ]
            with m.If(all_drained):
                m.d.sync += state.eq(Mux(post == POST_NONE, _IDLE, _POST))
        with m.Elif(state == _POST):
            m.d.comb += self.busy.eq(1)
            with m.If(pi < rows_valid):
                m.d.sync += [st_valid.eq(1), st_elem.eq(pi * C + pj), st_addr.eq(cur_addr), st_rel.eq(cur_rel)]
                with m.If(pj + 1 >= cols_valid):
                    m.d.sync += [
                        pj.eq(0),
                        pi.eq(pi + 1),
                        row_addr.eq(row_addr + stride),
                        row_rel.eq(row_rel + stride),
                        cur_addr.eq(row_addr + stride),
                        cur_rel.eq(row_rel + stride),
                    ]
                with m.Else():
                    m.d.sync += [pj.eq(pj + 1), cur_addr.eq(cur_addr + 1), cur_rel.eq(cur_rel + 1)]
            with m.Else():
                m.d.sync += state.eq(_IDLE)
        with m.Elif(state == _ENCODE):
            m.d.comb += self.busy.eq(1)
            with m.If(idx < count):
                m.d.sync += [enc_valid.eq(1), enc_addr.eq(idx), idx.eq(idx + 1)]
            with m.Else():
                m.d.sync += state.eq(_IDLE)
        with m.Else():  # IDLE
            with m.If(self.start):
                m.d.sync += [
                    k_reg.eq(self.k),
                    tiles_reg.eq(Mux(self.tiles == 0, 1, self.tiles)),
                    post.eq(self.post),
                    use_mask.eq(self.use_mask),
                    rows_valid.eq(self.rows_valid),
                    cols_valid.eq(self.cols_valid),
                    base.eq(self.base),
                    offset.eq(self.offset),
                    stride.eq(self.stride),
                    count.eq(self.count),
                    m0.eq(self.m0),
                    shift.eq(self.shift),
                    mode.eq(self.mode),
                    a_signed.eq(self.a_signed),
                    b_signed.eq(self.b_signed),
                    cycles.eq(1),
                    kk.eq(0),
                    since.eq(0),
                    tile.eq(0),
                    b_base.eq(0),
                    idx.eq(0),
                ]
                m.d.sync += [row_of[j].eq(0) for j in range(C)] + [tiles_of[j].eq(0) for j in range(C)]
                m.d.sync += state.eq(Mux(self.cmd == CMD_GEMM, _STREAM, Mux(self.cmd == CMD_ENCODE, _ENCODE, _IDLE)))
                with m.If(self.cmd == CMD_CLEAR):
                    m.d.sync += amax.eq(0)
        return m
