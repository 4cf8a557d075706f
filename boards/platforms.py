"""Supported boards: amaranth-boards platforms, YoWASP tools, and the board top.

Every tool comes from PyPI (YoWASP WebAssembly builds): Amaranth's build
scripts call ``$YOSYS``, ``$NEXTPNR_ICE40``, ``$ICEPACK``, ``$NEXTPNR_ECP5``
and ``$ECPPACK``, which :func:`yowasp_env` points at the ``yowasp-*``
launchers next to the running Python. Nothing board-specific needs installing.
"""

import dataclasses

from amaranth.hdl import (
    ClockDomain,
    ClockSignal,
    Const,
    DomainRenamer,
    Elaboratable,
    Instance,
    Module,
    Mux,
    ResetSignal,
    Signal,
)
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer
from amaranth.lib.wiring import In, Out
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from fourbit.util.tools import yowasp_env
from hw.engine import GemmEngine
from hw.kinds import check_clock_div, default_kind, get_kind

from .pll import PLLConfig

__all__ = [
    "Board",
    "BOARDS",
    "BAUD",
    "PLL_CLOCK_NET",
    "ClockedEngine",
    "BoardTop",
    "uart_divisor",
    "yowasp_env",
    "unknown_board_message",
]


#: UART line rate of every board top.
BAUD = 115200

#: Name of the PLL's output clock signal (nextpnr reports its Fmax under a net named like it).
PLL_CLOCK_NET = "engine_clk"


@dataclasses.dataclass(frozen=True)
class Board:
    """One supported board.

    Attributes
    ----------
    name : str
        Name on the command line (``BOARD=...``).
    platform : type
        amaranth-boards platform class.
    family : str
        ``ice40`` or ``ecp5`` (selects the nextpnr flavour).

    Each PE kind states where its array fits on each board and at what clock
    (:class:`hw.kinds.base.FPGAFit`); the board reads it from the registry.
    """

    name: str
    platform: type
    family: str

    @property
    def default_pe(self):
        """Array kind ``make synth`` builds by default (the registry's first)."""
        return default_kind().name

    def default_size(self, pe):
        """``(rows, cols)`` that ``make synth`` builds for ``pe`` when no size is
        given: the largest square array the sweep placed and routed (docs/boards.md)."""
        largest = get_kind(pe).fpga.largest
        if self.name not in largest:
            raise ValueError(
                f"the {pe} kind has no default size on {self.name} (not placed on the boards yet): "
                "give --rows and --cols (make: ROWS= and COLS=)"
            )
        return largest[self.name]

    def clock_div(self, pe):
        """Default divider of the board clock for the engine of an array of ``pe``
        (2 for a kind whose measured Fmax is below the board clock: 12 -> 6 MHz, 25 -> 12.5 MHz;
        per board where the kind's :class:`~hw.kinds.base.FPGAFit` names one)."""
        return get_kind(pe).fpga.clock_div_on(self.name)

    def synth_opts(self, pe):
        """``synth_<family>`` options for an array of ``pe``.

        Hard multipliers take the wide (FP16) mantissa products of a kind
        whose :class:`~hw.kinds.base.FPGAFit` asks for them (iCE40: ``-dsp``
        enables the UP5K's eight SB_MAC16; ECP5 maps to MULT18X18D by
        default). A 4-bit product is a few LUTs, and Yosys would put each
        one in a whole 18x18 DSP (more PEs than DSPs then fail to place),
        so the 4-bit kinds build with ``-nodsp`` on ECP5 and without
        ``-dsp`` on iCE40: their arrays are pure LUT logic.
        """
        if get_kind(pe).fpga.hard_multipliers:
            return "-dsp" if self.family == "ice40" else ""
        return "-nodsp" if self.family == "ecp5" else ""

    @property
    def device(self):
        return f"{self.platform.device}-{self.platform.package}"


BOARDS = {
    board.name: board
    for board in (
        Board(
            "icebreaker",
            ICEBreakerPlatform,
            "ice40",
        ),
        Board(
            "ulx3s",
            ULX3S_85F_Platform,
            "ecp5",
        ),
    )
}


def unknown_board_message(name):
    return f"unknown board {name!r} (supported: {', '.join(BOARDS)})"


def uart_divisor(board_hz, clock_div=1):
    """Engine clock cycles per UART bit (:data:`BAUD`) at ``board_hz`` divided by ``clock_div``."""
    return round(board_hz / clock_div / BAUD)


def _check_pll(owner, pll, clock_div):
    if pll is not None:
        if not isinstance(pll, PLLConfig):
            raise TypeError(f"{owner}: pll must be a boards.pll.PLLConfig, not {pll!r}")
        if clock_div != 1:
            raise ValueError(f"{owner}: a PLL clock excludes clock_div {clock_div}")
    return pll


class ClockedEngine(wiring.Component):
    """The :class:`hw.engine.GemmEngine` with the clock it runs from on a board.

    Everything of a board top but the pin buffers: the simulations run it as
    is (``tests/boards/test_engine_cocotb.py``), :class:`BoardTop` puts it on
    the pins.

    With ``clock_div`` 1 the engine runs in the ``sync`` domain (on a board:
    the board clock and the platform's power-on reset). With ``clock_div``
    N > 1 it runs in the ``engine`` domain, clocked by a register that divides
    the ``sync`` clock by N (high for the first ``N // 2`` cycles of each
    period) and, under a platform, constrained to ``board_hz / N``, so that
    nextpnr checks the engine against the clock it gets; its reset is the
    ``sync`` reset synchronised to it. Nothing else crosses between the two
    domains (the UART input has its own synchroniser). An integer divider
    works the same on every family: no PLL is needed, and the iCE40 PLL
    cannot go below 16 MHz.

    With ``pll`` (a :class:`boards.pll.PLLConfig` for the board clock) the
    engine runs in the ``engine`` domain clocked by the device PLL from the
    board clock (ECP5: the ``sync`` clock; iCE40: the clock pin, the PAD
    PLL's own input), at the PLL's achieved frequency, which sets the UART
    divisor and, under a platform, the constraint of the PLL's output signal
    (:data:`PLL_CLOCK_NET`); the engine is held in reset until the PLL has
    been locked for 15 us (a power-on reset as the platform's own).
    Without a platform (simulation) there is no PLL: the engine runs in the
    ``sync`` domain, whose clock the simulator drives and which stands for
    the PLL's output; the design of the engine is the same.

    Parameters
    ----------
    kind : str
        Array kind.
    rows, cols : int
        Array size.
    board_hz : int or float
        Frequency of the ``sync`` clock: sets the UART divisor and the
        constraint of the divided clock.
    depth : int
        Operand buffer depth (largest K of one RUN).
    clock_div : int
        Divider of the board clock for the engine (>= 1).
    pll : boards.pll.PLLConfig, optional
        Clock the engine from the device PLL instead (``clock_div`` must be 1).
    lean : bool
        The engine's lean FPGA array (:class:`hw.fpga_array.LeanSystolicArray`).
    max_k : int, optional
        With ``lean``: the K its accumulators are sized for (:class:`hw.engine.GemmEngine`).

    Attributes
    ----------
    rx : Signal(1), in
        UART from the host (idle high).
    tx : Signal(1), out
        UART to the host (idle high).
    """

    def __init__(self, *, kind, rows, cols, board_hz, depth=256, clock_div=1, pll=None, lean=False, max_k=None):
        self.clock_div, self.board_hz = check_clock_div(type(self).__name__, clock_div), board_hz
        self.pll = _check_pll(type(self).__name__, pll, clock_div)
        engine_hz = board_hz / clock_div if pll is None else pll.out_hz
        try:
            self.engine = GemmEngine(
                kind=kind, rows=rows, cols=cols, depth=depth, divisor=uart_divisor(engine_hz), lean=lean, max_k=max_k
            )
        except (TypeError, ValueError):
            # A refused engine is not an unused design: no UnusedElaboratable warning.
            self._MustUse__silence = True
            raise
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        engine = self.engine
        if self.pll is not None and platform is not None:
            # Constrained by this name (see the divider below).
            engine_clk, lock = Signal(name=PLL_CLOCK_NET), Signal()
            if self.pll.family == "ice40":
                # The board clock's pin is the PAD PLL's own reference input
                # and can then feed nothing else: no sync domain here.
                clk_in = platform.request(platform.default_clk, dir="-").io
            else:
                clk_in = ClockSignal("sync")
            m.submodules.pll = self.pll.instance(clk_in=clk_in, clk_out=engine_clk, lock=lock)
            platform.add_clock_constraint(engine_clk, self.pll.out_hz)
            # Power-on reset, as Amaranth's iCE40 platform makes one for its
            # sync domain (iCE40 BRAMs read zeros for about 3 us after
            # configuration): the engine is held in reset until the PLL has
            # been locked for 15 us of its clock.
            delay = int(15e-6 * self.pll.out_hz)
            m.domains.pll_por = ClockDomain("pll_por", reset_less=True, local=True)
            m.domains.engine = ClockDomain("engine")
            locked, timer, ready = Signal(), Signal(range(delay + 1)), Signal()
            m.d.comb += [ClockSignal("pll_por").eq(engine_clk), ClockSignal("engine").eq(engine_clk)]
            m.submodules.lock_sync = FFSynchronizer(lock, locked, o_domain="pll_por")
            with m.If(~locked):
                m.d.pll_por += [timer.eq(0), ready.eq(0)]
            with m.Elif(timer == delay):
                m.d.pll_por += ready.eq(1)
            with m.Else():
                m.d.pll_por += timer.eq(timer + 1)
            if self.pll.family == "ecp5":
                # The reset reaches every flip-flop of the engine, a fanout that grows
                # with the array: from a register through a global buffer (DCCA) onto
                # the dedicated network, not through fabric routing and a LUT.
                reset, reset_global = Signal(init=1), Signal()
                m.d.pll_por += reset.eq(~ready)
                m.submodules.reset_buffer = Instance("DCCA", i_CLKI=reset, i_CE=Const(1), o_CLKO=reset_global)
                m.d.comb += ResetSignal("engine").eq(reset_global)
            else:
                m.d.comb += ResetSignal("engine").eq(~ready)
            m.submodules.engine = DomainRenamer("engine")(engine)
        elif self.clock_div == 1:
            # The board clock, or in simulation the clock that stands for the PLL's output.
            m.submodules.engine = engine
        else:
            div = self.clock_div
            m.domains.engine = ClockDomain("engine")
            phase = Signal(range(div))
            # Constrained by this name: the domain's own clk signal would be
            # named after the submodule that Amaranth finds using it first.
            divided_clk = Signal()
            m.d.sync += [phase.eq(Mux(phase == div - 1, 0, phase + 1)), divided_clk.eq(phase < div // 2)]
            m.d.comb += ClockSignal("engine").eq(divided_clk)
            if platform is not None:
                platform.add_clock_constraint(divided_clk, self.board_hz / div)
            # iCE40: the power-on reset that keeps the BRAMs from reading zeros;
            # ECP5's sync domain is reset-less (GSR initialises every flip-flop).
            m.submodules.engine_reset = ResetSynchronizer(ResetSignal("sync", allow_reset_less=True), domain="engine")
            m.submodules.engine = DomainRenamer("engine")(engine)
        m.d.comb += [engine.rx.eq(self.rx), self.tx.eq(engine.tx)]
        return m


class BoardTop(Elaboratable):
    """A :class:`ClockedEngine` on a board's UART pins at :data:`BAUD`, from the board clock, its divider or the PLL.

    Parameters
    ----------
    kind : str
        Array kind.
    rows, cols : int
        Array size.
    depth : int
        Operand buffer depth (largest K of one RUN).
    clock_div : int
        Divider of the board clock for the engine (>= 1).
    pll : boards.pll.PLLConfig, optional
        Clock the engine from the device PLL (made for the board clock).
    lean : bool
        The engine's lean FPGA array (:mod:`hw.fpga_array`).
    """

    def __init__(self, *, kind, rows, cols, depth=256, clock_div=1, pll=None, lean=False):
        self.kind, self.rows, self.cols, self.depth, self.clock_div = kind, rows, cols, depth, clock_div
        self.lean = lean
        # Validate eagerly (the board clock is only known with the platform);
        # a refused top is not an unused design (no UnusedElaboratable warning).
        try:
            check_clock_div(type(self).__name__, clock_div)
            self.pll = _check_pll(type(self).__name__, pll, clock_div)
            probe = ClockedEngine(
                kind=kind,
                rows=rows,
                cols=cols,
                board_hz=4 * clock_div * BAUD,
                depth=depth,
                clock_div=clock_div,
                pll=pll,
                lean=lean,
            )
        except (TypeError, ValueError):
            self._MustUse__silence = True
            raise
        probe._MustUse__silence = probe.engine._MustUse__silence = True
        probe.engine.array._MustUse__silence = True

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = ClockedEngine(
            kind=self.kind,
            rows=self.rows,
            cols=self.cols,
            board_hz=platform.default_clk_frequency,
            depth=self.depth,
            clock_div=self.clock_div,
            pll=self.pll,
            lean=self.lean,
        )
        if self.pll is not None and self.pll.in_hz != platform.default_clk_frequency:
            raise ValueError(
                f"the PLL was planned for a {self.pll.in_hz / 1e6:g} MHz reference, "
                f"the board clock is {platform.default_clk_frequency / 1e6:g} MHz"
            )
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buffer = rx_buffer = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx_buffer = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx_buffer.i), tx_buffer.o.eq(core.tx)]
        return m
