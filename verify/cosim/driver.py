"""Host driver of the training datapath (:class:`hw.datapath.TrainDatapath`) over cocotb handles.

Every host action is one clock cycle on the datapath's ports: inputs change on
the falling edge and outputs are sampled on the falling edge, as in
:mod:`verify.array_tb`. The driver tiles a layer's GEMMs onto the R x C array,
loads operand buffers and bias registers, starts commands, waits for ``busy``
to fall and reads results back. It counts the datapath's compute cycles
(``busy``) per GEMM and the host-port cycles separately.

:meth:`DatapathDriver.check_layer` refuses shapes the generated datapath cannot
hold, with a message giving its limits.

The driver runs inside the simulator process, which imports neither torch
nor Amaranth (their start-up there is slow): the command encodings come from
:meth:`hw.datapath.TrainDatapath.manifest` through the host.
"""

import dataclasses

import numpy as np

__all__ = ["Geometry", "GemmStats", "DatapathDriver", "pack_codes"]


@dataclasses.dataclass(frozen=True)
class Geometry:
    """The generation parameters of a datapath build (what the host may use)."""

    rows: int
    cols: int
    k_depth: int
    grad_depth: int
    mask_depth: int
    acc_width: int = 32
    grad_width: int = 48

    def check_gemm(self, name, m, k, n):
        """ValueError unless a GEMM with K = ``k`` fits (M and N are tiled)."""
        if min(m, k, n) < 1:
            raise ValueError(f"{name}: empty GEMM {m}x{k}x{n}")
        if k > self.k_depth:
            raise ValueError(
                f"{name}: K = {k} exceeds the operand buffer depth k_depth = {self.k_depth} "
                f"of this datapath ({self.rows}x{self.cols} array); regenerate with a larger k_depth"
            )

    def check_grad(self, name, count):
        if count > self.grad_depth:
            raise ValueError(
                f"{name}: gradient tensor of {count} elements exceeds grad_depth = "
                f"{self.grad_depth} of this datapath; regenerate with a larger grad_depth"
            )

    def check_mask(self, name, end):
        if end > self.mask_depth:
            raise ValueError(
                f"{name}: straight-through masks need {end} bits, more than mask_depth = "
                f"{self.mask_depth} of this datapath; regenerate with a larger mask_depth"
            )


@dataclasses.dataclass
class GemmStats:
    """Cycle counts of one GEMM (all its tiles)."""

    name: str
    m: int
    k: int
    n: int
    tiles: int = 0
    compute_cycles: int = 0
    io_cycles: int = 0

    @property
    def macs(self):
        return self.m * self.k * self.n


def pack_codes(codes, width=4):
    """Pack each row of a 2-D array of small integer codes into one Python int (element j at bits width*j)."""
    codes = np.asarray(codes, dtype=np.int64) & ((1 << width) - 1)
    out = []
    for row in codes:
        word = 0
        for j in range(len(row) - 1, -1, -1):
            word = (word << width) | int(row[j])
        out.append(word)
    return out


def _signed(value, bits):
    return value - (1 << bits) if value >> (bits - 1) else value


class DatapathDriver:
    """Drives one datapath instance.

    Parameters
    ----------
    dut : cocotb handle
        The ``train_datapath`` top.
    geometry : Geometry
    encodings : dict
        ``commands`` (``gemm``, ``encode``, ``clear``), ``post`` (``none``...) and
        ``total_width`` of the datapath (its manifest).
    """

    def __init__(self, dut, geometry, encodings):
        from cocotb.triggers import FallingEdge

        self.dut, self.g = dut, geometry
        self.cmd = encodings["commands"]
        self.total_width = encodings["total_width"]
        self._edge = FallingEdge(dut.clk)
        self.io_cycles = 0
        self.compute_cycles = 0
        self._a_key = self._b_key = self._bias_key = None

    async def tick(self):
        await self._edge
        self.io_cycles += 1

    async def reset(self):
        d = self.dut
        for name in ("start", "a_we", "b_we", "bias_we", "g_we", "cmd"):
            getattr(d, name).value = 0
        d.rst.value = 1
        await self.tick()
        await self.tick()
        d.rst.value = 0
        await self.tick()
        self.io_cycles = 0

    async def command(self, cmd, on_cycle=None, **config):
        """Start ``cmd`` with the given configuration inputs; wait until done; its busy cycles.

        ``on_cycle()``, if given, runs after every clock edge of the command (the start edge too).
        """
        d = self.dut
        for name, value in config.items():
            getattr(d, name).value = int(value)
        d.cmd.value = cmd
        d.start.value = 1
        await self._edge
        if on_cycle is not None:
            on_cycle()
        d.start.value = 0
        cycles = 0
        while True:
            await self._edge
            if on_cycle is not None:
                on_cycle()
            cycles += 1
            if not int(d.busy.value):
                break
        self.compute_cycles += cycles
        return cycles

    async def _write_words(self, we, addr, data, words):
        we.value = 1
        for i, w in enumerate(words):
            addr.value = i
            data.value = w
            await self.tick()
        we.value = 0

    async def _write_bias(self, values):
        d = self.dut
        d.bias_we.value = 1
        for j, v in enumerate(values):
            d.bias_addr.value = j
            d.bias_data.value = int(v) & ((1 << self.total_width) - 1)
            await self.tick()
        d.bias_we.value = 0

    async def gemm(
        self,
        stats,
        a,
        b,
        *,
        mode,
        a_signed,
        b_signed,
        bias=None,
        post=0,
        m0=1 << 15,
        shift=1,
        base=0,
        stride=0,
        use_mask=False,
        want_codes=False,
    ):
        """``a @ b`` (+ bias) of code matrices on the array, tile by tile.

        Returns ``total`` (int64 M x N) and, with ``want_codes``, ``(codes, inside, saturated)``.
        ``post`` is the datapath's post-operation code (0: none); element (m, n) is element
        ``m*stride + n`` of the gradient tensor and has its mask bit at ``base + m*stride + n``.
        """
        g = self.g
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        (m_, k_), (k2, n_) = a.shape, b.shape
        assert k_ == k2
        g.check_gemm(stats.name, m_, k_, n_)
        R, C = g.rows, g.cols
        bias = np.zeros(n_, dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64)
        if bias.size and int(np.abs(bias).max()) >= 1 << (self.total_width - 1):
            raise ValueError(f"{stats.name}: bias codes beyond {self.total_width}-bit accumulator range")
        total = np.zeros((m_, n_), dtype=np.int64)
        codes = np.zeros((m_, n_), dtype=np.uint8)
        inside = np.zeros((m_, n_), dtype=bool)
        sat = np.zeros((m_, n_), dtype=bool)
        io0, comp0 = self.io_cycles, self.compute_cycles
        d = self.dut
        for m0_ in range(0, m_, R):
            rows = min(R, m_ - m0_)
            a_tile = np.zeros((R, k_), dtype=np.int64)
            a_tile[:rows] = a[m0_ : m0_ + rows]
            await self._write_words(d.a_we, d.a_addr, d.a_data, pack_codes(a_tile.T))
            n0 = 0
            while n0 < n_:
                # Consecutive column tiles with the same bias tile stream as one multi-tile command
                # (as many as the B buffer holds) when nothing but totals is wanted (POST_NONE).
                bias_tile = self._bias_tile(bias, n0)
                group = 1
                if post == 0 and not want_codes:
                    while (
                        group < g.k_depth // k_
                        and n0 + C * group < n_
                        and np.array_equal(self._bias_tile(bias, n0 + C * group), bias_tile)
                    ):
                        group += 1
                cols = min(C, n_ - n0)
                b_words = []
                for t in range(group):
                    first = n0 + C * t
                    b_tile = np.zeros((k_, C), dtype=np.int64)
                    b_tile[:, : min(C, n_ - first)] = b[:, first : first + C]
                    b_words += pack_codes(b_tile)
                await self._write_words(d.b_we, d.b_addr, d.b_data, b_words)
                key = tuple(bias_tile.tolist())
                if key != self._bias_key:
                    await self._write_bias(bias_tile)
                    self._bias_key = key
                config = dict(
                    k=k_,
                    tiles=group,
                    mode=mode,
                    a_signed=a_signed,
                    b_signed=b_signed,
                    post=post,
                    use_mask=use_mask,
                    m0=m0,
                    shift=shift,
                    rows_valid=rows,
                    cols_valid=cols,
                    base=base,
                    offset=m0_ * stride + n0,
                    stride=stride,
                )
                if group > 1:
                    collect = self._drain_collector(total, m0_, n0)
                    await self.command(self.cmd["gemm"], on_cycle=collect, **config)
                    stats.tiles += group
                    n0 += C * group
                    continue
                await self.command(self.cmd["gemm"], **config)
                stats.tiles += 1
                # Read back row by row: row i is shown while row i + 1 is addressed.
                d.res_row.value = 0
                for i in range(rows):
                    await self.tick()
                    word = d.res_total.value.to_unsigned()
                    if want_codes:
                        cw = d.res_code.value.to_unsigned()
                        iw = d.res_inside.value.to_unsigned()
                        sw = d.res_saturated.value.to_unsigned()
                    if i + 1 < rows:
                        d.res_row.value = i + 1
                    for j in range(cols):
                        total[m0_ + i, n0 + j] = _signed(
                            (word >> (self.total_width * j)) & ((1 << self.total_width) - 1), self.total_width
                        )
                        if want_codes:
                            codes[m0_ + i, n0 + j] = (cw >> (4 * j)) & 0xF
                            inside[m0_ + i, n0 + j] = (iw >> j) & 1
                            sat[m0_ + i, n0 + j] = (sw >> j) & 1
                n0 += C
        stats.io_cycles += self.io_cycles - io0
        stats.compute_cycles += self.compute_cycles - comp0
        if want_codes:
            return total, codes, inside, sat
        return total

    def _drain_collector(self, total, m0_, n0):
        """A command's ``on_cycle`` that stores the totals of a multi-tile GEMM into ``total`` as they
        drain: column j's d-th drained total is row d % R of column tile d // R from ``n0``."""
        d, (R, C), width = self.dut, (self.g.rows, self.g.cols), self.total_width
        (m_, n_), drained = total.shape, [0] * C

        def collect():
            valid = int(d.drain_valid.value)
            if not valid:
                return
            word = d.drain_total.value.to_unsigned()
            for j in range(C):
                if (valid >> j) & 1:
                    t, i = divmod(drained[j], R)
                    drained[j] += 1
                    if m0_ + i < m_ and n0 + C * t + j < n_:
                        total[m0_ + i, n0 + C * t + j] = _signed((word >> (width * j)) & ((1 << width) - 1), width)

        return collect

    def _bias_tile(self, bias, n0):
        """The bias registers of the column tile at ``n0`` (zero beyond the tensor)."""
        tile = np.zeros(self.g.cols, dtype=np.int64)
        part = bias[n0 : n0 + self.g.cols]
        tile[: part.size] = part
        return tile

    async def clear_amax(self):
        await self.command(self.cmd["clear"])

    async def load_grad(self, ints):
        """Write signed gradient words 0..n-1 (host gradients; amax follows)."""
        flat = np.asarray(ints, dtype=object).reshape(-1)
        self.g.check_grad("gradient", len(flat))
        d = self.dut
        mask = (1 << self.g.grad_width) - 1
        d.g_we.value = 1
        for i, v in enumerate(flat):
            d.g_addr.value = i
            d.g_data.value = int(v) & mask
            await self.tick()
        d.g_we.value = 0

    async def encode(self, count):
        """FP4-encode gradient words 0..count-1: ``(codes phase 0, codes phase 1, k, amax, cycles)``."""
        self.g.check_grad("gradient", count)
        cycles = await self.command(self.cmd["encode"], count=count)
        d = self.dut
        c0 = np.zeros(count, dtype=np.uint8)
        c1 = np.zeros(count, dtype=np.uint8)
        d.c_addr.value = 0
        for i in range(count):
            await self.tick()
            word = int(d.c_data.value)
            if i + 1 < count:
                d.c_addr.value = i + 1
            c0[i], c1[i] = word & 0xF, word >> 4
        return c0, c1, int(d.grad_k.value), int(d.amax.value), cycles
