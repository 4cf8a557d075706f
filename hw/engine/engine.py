"""A GEMM engine behind a UART: operand buffers, one systolic array, a result buffer.

The engine speaks the command protocol of :mod:`hw.engine.protocol`. It holds

* an A buffer and a B buffer (:class:`amaranth.lib.memory.Memory`, ``depth``
  words each, one word per k: a column of the A tile, a row of the B tile,
  packed as :class:`hw.array.SystolicArray` takes them on ``a_in``/``b_in``);
* the ``rows`` x ``cols`` :class:`hw.array.SystolicArray` (reused as is);
* one result memory per array column (``rows`` words of ``acc_width`` bits):
  the columns drain at different cycles, so each gets its own write port.

RUN streams k = 0 .. K-1 from the buffers into the array, one k per cycle
(synchronous-read memories: the controls are registered to line up with the
read data), with ``clear`` on the first k unless ACCUMULATE is set and
``last`` on the final k, then waits until the last column has drained its
``rows`` results into the result memory and answers. The host tiles larger
GEMMs (:mod:`boards.host`).
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .._params import check_int
from ..array import SystolicArray
from ..fpga_array import LeanSystolicArray
from ..kinds import KINDS, get_kind
from .protocol import INFO_LENGTH, MODE_FLAGS, Command, Status, info_reply
from .uart import UARTReceiver, UARTTransmitter

__all__ = ["GemmEngine"]


def _bytes(bits):
    return (bits + 7) // 8


class GemmEngine(wiring.Component):
    """UART-controlled GEMM engine around one systolic array.

    Parameters
    ----------
    kind : str or PEKind
        Array kind (:data:`hw.kinds.KINDS`).
    rows, cols : int
        Array size.
    divisor : int
        Clock cycles per UART bit (>= 4), ``clk_hz / baud``.
    depth : int
        Words of each operand buffer: the largest K of one LOAD/RUN (default
        256: one iCE40 block RAM deep). Larger K runs as several RUNs.
    acc_width : int, optional
        Accumulator bits (default: the kind's default; with ``lean``, the
        narrowest result width that holds ``max_k`` products).
    lean : bool
        The lean FPGA array (:class:`hw.fpga_array.LeanSystolicArray`, a kind
        with a lean rule) instead of :class:`hw.array.SystolicArray`: the same
        protocol and results, fewer LUTs per MAC.
    max_k : int, optional
        With ``lean``: the declared K its accumulators are sized for (default
        ``depth``, the longest K of one RUN); the host runs a longer K as
        several GEMMs and adds their results (:func:`boards.host.run_gemm`).

    Attributes
    ----------
    rx : Signal(1), in
        UART from the host (idle high).
    tx : Signal(1), out
        UART to the host (idle high).
    array : SystolicArray
        The MAC array.
    max_k : int or None
        Largest K whose products cannot overflow the accumulators (None for
        floating point); the host splits nothing to stay below it, it refuses.
    """

    def __init__(self, *, kind, rows, cols, divisor, depth=256, acc_width=None, lean=False, max_k=None):
        try:
            self.depth = check_int("GemmEngine", "depth", depth, minimum=1)
            if depth > 0xFFFF:
                raise ValueError(f"GemmEngine: depth must be <= 65535 (a u16 count), not {depth}")
            self.divisor = check_int("GemmEngine", "divisor", divisor, minimum=4)
            if not isinstance(lean, bool):
                raise TypeError(f"GemmEngine: lean must be a bool, not {lean!r}")
            self.lean = lean
            if lean:
                max_k = depth if max_k is None else max_k
                self.array = LeanSystolicArray(kind=kind, rows=rows, cols=cols, acc_width=acc_width, max_k=max_k)
            else:
                if max_k is not None:
                    raise ValueError("GemmEngine: max_k sizes the lean array only (lean=True)")
                # max_k=1: the host, not the generator, keeps K within the overflow bound
                # (it reads acc_width from INFO and splits larger K).
                # Without an acc_width, the kind's own default (not the lean width for max_k=1).
                if acc_width is None and (not isinstance(kind, str) or kind in KINDS):
                    acc_width = get_kind(kind).default_acc_width
                self.array = SystolicArray(kind=kind, rows=rows, cols=cols, acc_width=acc_width, max_k=1)
        except (TypeError, ValueError):
            # A refused engine is not an unused design: no UnusedElaboratable warning.
            self._MustUse__silence = True
            raise
        self.kind, self.rows, self.cols = self.array.kind, rows, cols
        self.acc_width = self.array.acc_width
        # The accumulators' overflow bound (None: floating point): the host's K limit.
        self.max_k = self.array.max_k
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    #: No fixed input-to-output latency: a command takes as long as its bytes.
    latency = None

    def manifest(self):
        """Engine-specific manifest fields for ``make rtl`` (protocol, buffers, UART timing)."""
        return {
            "protocol": "hw/engine/protocol.py (docs/boards.md): INFO 'I', LOAD_A 'A', LOAD_B 'B', RUN 'R', "
            "READ_C 'C'; 8N1, LSB first, idle high",
            "uart_divisor": self.divisor,
            "buffer_depth": self.depth,
            "acc_width": self.acc_width,
            "info_reply": self.info_bytes().hex(),
        }

    def info_bytes(self):
        """The INFO reply (status included)."""
        return info_reply(
            kind=self.kind.name, rows=self.rows, cols=self.cols, acc_width=self.acc_width, depth=self.depth
        )

    def elaborate(self, platform):
        m = Module()
        rows, cols, kind, depth = self.rows, self.cols, self.kind, self.depth
        a_bits, b_bits, acc = rows * kind.a_width, cols * kind.b_width, self.acc_width
        a_bytes, b_bytes, acc_bytes = _bytes(a_bits), _bytes(b_bits), _bytes(acc)

        m.submodules.array = array = self.array
        m.submodules.uart_rx = rx = UARTReceiver(divisor=self.divisor)
        m.submodules.uart_tx = tx = UARTTransmitter(divisor=self.divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]

        # Every buffer is a block RAM: small result memories would otherwise
        # become flip-flops and multiplexers, LUT4s the MACs need, and deep
        # operand buffers ECP5 distributed RAM.
        block = {"ram_style": "block"}
        m.submodules.a_mem = a_mem = Memory(shape=a_bits, depth=depth, init=[], attrs=block)
        m.submodules.b_mem = b_mem = Memory(shape=b_bits, depth=depth, init=[], attrs=block)
        a_write, b_write = a_mem.write_port(), b_mem.write_port()
        a_read, b_read = a_mem.read_port(), b_mem.read_port()
        c_writes, c_reads = [], []
        for j in range(cols):
            c_mem = Memory(shape=acc, depth=rows, init=[], attrs=block)
            m.submodules[f"c_mem{j}"] = c_mem
            c_writes.append(c_mem.write_port())
            c_reads.append(c_mem.read_port())

        byte = rx.data.payload
        got = rx.data.valid
        status = Signal(8)
        count = Signal(16)  # LOAD word count, or RUN K
        flags = Signal(4)
        target_b = Signal()  # LOAD_B (else LOAD_A)
        word = Signal(8 * max(a_bytes, b_bytes))
        index = Signal(range(max(a_bytes, b_bytes, acc_bytes, INFO_LENGTH) + 1))
        addr = Signal(range(depth + 1))
        # Down-counters and flags prepared one state early keep the 16-bit
        # subtract-and-compare off the FSM's next-state logic (Fmax).
        left = Signal(16)  # words (LOAD) / steps (RUN) after the current one
        empty = Signal()  # RUN with K = 0
        first = Signal()  # the current RUN step is k = 0

        # Operand words arrive LSB byte first: shift each byte in at the top.
        new_word = Cat(word[8:], byte)
        for port, bits, nbytes in ((a_write, a_bits, a_bytes), (b_write, b_bits, b_bytes)):
            aligned = new_word[8 * (len(word) // 8 - nbytes) :]
            m.d.comb += [port.addr.eq(addr), port.data.eq(aligned[:bits])]

        # RUN: k counter reads the buffers; the controls wait one cycle with the data.
        k = Signal(16)
        active, issue_valid, issue_clear, issue_last = Signal(), Signal(), Signal(), Signal()
        m.d.sync += active.eq(0)
        m.d.comb += [a_read.addr.eq(k), b_read.addr.eq(k)]
        # One more register between the block RAMs and the array: a RAM's
        # clock-to-output is slow (iCE40), and without it the first PE's
        # product and accumulator would hang off it and set Fmax.
        m.d.sync += [
            array.a_in.eq(a_read.data),
            array.b_in.eq(b_read.data),
            array.valid.eq(active & issue_valid),
            array.clear.eq(active & issue_clear),
            array.last.eq(active & issue_last),
        ]
        for name in kind.a_modes + kind.b_modes:
            m.d.comb += getattr(array, name).eq((flags & MODE_FLAGS[name]) != 0)

        # Result capture: column j stores its drained rows in order.
        filled = [Signal(range(rows + 1), name=f"filled{j}") for j in range(cols)]
        for j in range(cols):
            m.d.comb += [
                c_writes[j].addr.eq(filled[j]),
                c_writes[j].data.eq(array.out_data.word_select(j, acc)),
                c_writes[j].en.eq(array.out_valid[j]),
            ]
            with m.If(array.out_valid[j]):
                m.d.sync += filled[j].eq(filled[j] + 1)

        # READ_C: row i, column j; all result memories read row i. The read data
        # is registered before the column multiplexer (a flow can fold that
        # register into the block RAM's output register), so no path runs from
        # a block RAM's clock-to-output through a ``cols``-wide multiplexer.
        out_row = Signal(range(rows))
        out_col = Signal(range(cols))
        result = Signal(8 * acc_bytes)
        read_data = []
        for j, port in enumerate(c_reads):
            m.d.comb += port.addr.eq(out_row)
            data = Signal(acc, name=f"c_read{j}")
            m.d.sync += data.eq(port.data)
            read_data.append(data)
        selected = Array(read_data)[out_col]

        # INFO shifts its reply out of a register (a constant table indexed by a
        # counter would be a combinational block Icarus never evaluates at time 0).
        info = Signal(8 * INFO_LENGTH)

        with m.FSM(name="command"):
            with m.State("IDLE"):
                with m.If(got):
                    m.d.sync += [addr.eq(0), index.eq(0)]
                    with m.Switch(byte):
                        with m.Case(Command.INFO):
                            m.d.sync += info.eq(int.from_bytes(self.info_bytes(), "little"))
                            m.next = "INFO"
                        with m.Case(Command.LOAD_A, Command.LOAD_B):
                            m.d.sync += target_b.eq(byte == Command.LOAD_B)
                            m.next = "LOAD_COUNT0"
                        with m.Case(Command.RUN):
                            m.next = "RUN_COUNT0"
                        with m.Case(Command.READ_C):
                            m.d.sync += [out_row.eq(0), out_col.eq(0)]
                            m.next = "READ_STATUS"
                        with m.Default():
                            m.d.sync += status.eq(Status.UNKNOWN_COMMAND)
                            m.next = "STATUS"

            with m.State("INFO"):
                m.d.comb += [tx.data.valid.eq(1), tx.data.payload.eq(info[:8])]
                with m.If(tx.data.ready):
                    m.d.sync += [info.eq(info >> 8), index.eq(index + 1)]
                    with m.If(index == INFO_LENGTH - 1):
                        m.next = "IDLE"

            for prefix in ("LOAD", "RUN"):
                with m.State(f"{prefix}_COUNT0"):
                    with m.If(got):
                        m.d.sync += count[:8].eq(byte)
                        m.next = f"{prefix}_COUNT1"
            with m.State("LOAD_COUNT1"):
                with m.If(got):
                    full = Cat(count[:8], byte)
                    m.d.sync += count.eq(full)
                    with m.If((full == 0) | (full > depth)):
                        m.d.sync += status.eq(Status.OUT_OF_RANGE)
                        m.next = "STATUS"
                    with m.Else():
                        m.d.sync += left.eq(full - 1)
                        m.next = "LOAD"
            with m.State("LOAD"):
                with m.If(got):
                    m.d.sync += [word.eq(new_word), index.eq(index + 1)]
                    last_byte = Signal()
                    m.d.comb += last_byte.eq(index == Mux(target_b, b_bytes - 1, a_bytes - 1))
                    with m.If(last_byte):
                        m.d.comb += [a_write.en.eq(~target_b), b_write.en.eq(target_b)]
                        m.d.sync += [index.eq(0), addr.eq(addr + 1), left.eq(left - 1)]
                        with m.If(left == 0):
                            m.d.sync += status.eq(Status.OK)
                            m.next = "STATUS"

            with m.State("RUN_COUNT1"):
                with m.If(got):
                    m.d.sync += count[8:].eq(byte)
                    m.next = "RUN_FLAGS"
            with m.State("RUN_FLAGS"):
                with m.If(got):
                    m.d.sync += [flags.eq(byte[:4]), k.eq(0), left.eq(count - 1), empty.eq(count == 0), first.eq(1)]
                    m.d.sync += [fill.eq(0) for fill in filled]
                    with m.If(count > depth):
                        m.d.sync += status.eq(Status.OUT_OF_RANGE)
                        m.next = "STATUS"
                    with m.Else():
                        m.next = "RUN"
            with m.State("RUN"):
                final = Signal()
                m.d.comb += final.eq(empty | (left == 0))
                m.d.sync += [
                    active.eq(1),
                    issue_valid.eq(~empty),
                    issue_clear.eq(first & ~flags[0]),
                    issue_last.eq(final),
                    k.eq(k + 1),
                    left.eq(left - 1),
                    first.eq(0),
                ]
                with m.If(final):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(filled[cols - 1] == rows):
                    m.d.sync += status.eq(Status.OK)
                    m.next = "STATUS"

            with m.State("READ_STATUS"):
                m.d.comb += [tx.data.valid.eq(1), tx.data.payload.eq(Status.OK)]
                with m.If(tx.data.ready):
                    m.next = "READ_ADDR"
            with m.State("READ_ADDR"):
                # The result memories read row out_row during this cycle.
                m.next = "READ_DATA"
            with m.State("READ_DATA"):
                # ... and their data is registered in this one.
                m.next = "READ_LATCH"
            with m.State("READ_LATCH"):
                m.d.sync += [result.eq(selected), index.eq(0)]
                m.next = "READ_SEND"
            with m.State("READ_SEND"):
                m.d.comb += [tx.data.valid.eq(1), tx.data.payload.eq(result[:8])]
                with m.If(tx.data.ready):
                    m.d.sync += [result.eq(result >> 8), index.eq(index + 1)]
                    with m.If(index == acc_bytes - 1):
                        m.next = "READ_ADDR"
                        with m.If(out_col == cols - 1):
                            m.d.sync += [out_col.eq(0), out_row.eq(out_row + 1)]
                            with m.If(out_row == rows - 1):
                                m.next = "IDLE"
                        with m.Else():
                            m.d.sync += out_col.eq(out_col + 1)

            with m.State("STATUS"):
                m.d.comb += [tx.data.valid.eq(1), tx.data.payload.eq(status)]
                with m.If(tx.data.ready):
                    m.next = "IDLE"
        return m
