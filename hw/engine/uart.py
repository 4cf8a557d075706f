"""8N1 UART receiver and transmitter with :mod:`amaranth.lib.stream` byte ports.

Amaranth 0.5 ships no UART (amaranth-stdio is not a dependency), so the board
top uses these two small components. Both run in the ``sync`` domain with a
fixed ``divisor`` (clock cycles per bit, ``clk_hz / baud`` rounded).

* :class:`UARTReceiver` synchronises ``rx`` (two flip-flops), waits for a
  start bit, samples it again half a bit later (a glitch shorter than half a
  bit is ignored), then samples the 8 data bits (LSB first) in the middle of
  each bit and the stop bit. A byte with a valid stop bit appears on
  ``data`` for one cycle (``valid``); the stream is ``always_ready``: the
  consumer must take every byte (the command interface does, it is never
  busy while the host may send). A framing error (stop bit 0) drops the byte
  and waits for the line to go idle.
* :class:`UARTTransmitter` accepts a byte when ``data.ready`` (idle) and
  shifts out start bit, 8 data bits LSB first, stop bit; ``tx`` idles high.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from hw._params import check_int

__all__ = ["UARTReceiver", "UARTTransmitter"]


def _check_divisor(owner, divisor):
    return check_int(owner, "divisor", divisor, minimum=4)


class UARTReceiver(wiring.Component):
    """8N1 receiver.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).

    Attributes
    ----------
    rx : Signal(1), in
        Serial input (asynchronous; idle high).
    data : stream of 8 bits, out, always ready
        Received bytes, one cycle each.
    """

    def __init__(self, *, divisor):
        self.divisor = _check_divisor("UARTReceiver", divisor)
        super().__init__(
            {
                "rx": In(1, init=1),
                "data": Out(stream.Signature(8, always_ready=True)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.rx_sync = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self.divisor + 1))
        bits = Signal(range(9))
        shift = Signal(8)
        m.d.sync += self.data.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM(name="uart_rx"):
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.next = "IDLE"  # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), bits.eq(bits + 1), timer.eq(self.divisor - 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTransmitter(wiring.Component):
    """8N1 transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).

    Attributes
    ----------
    data : stream of 8 bits, in
        Bytes to send; taken when ``valid`` and ``ready`` (the line is idle).
    tx : Signal(1), out
        Serial output, idle high.
    """

    def __init__(self, *, divisor):
        self.divisor = _check_divisor("UARTTransmitter", divisor)
        super().__init__(
            {
                "data": In(stream.Signature(8)),
                "tx": Out(1, init=1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        remaining = Signal(range(11))
        # Stop bit, 8 data bits, start bit: shifted out LSB first.
        frame = Signal(10, init=0x3FF)
        m.d.comb += [self.tx.eq(frame[0]), self.data.ready.eq(remaining == 0)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [
                frame.eq(Cat(Const(0, 1), self.data.payload, Const(1, 1))),
                remaining.eq(10),
                timer.eq(self.divisor - 1),
            ]
        with m.Elif(remaining != 0):
            with m.If(timer == 0):
                m.d.sync += [
                    frame.eq(Cat(frame[1:], Const(1, 1))),
                    remaining.eq(remaining - 1),
                    timer.eq(self.divisor - 1),
                ]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
