"""What a processing-element kind is: the registry's two abstractions.

In the spirit of Gemmini's ``Arithmetic`` typeclass, each number pairing the
hardware computes with is described once, here, and every layer above reads
it instead of keeping its own table:

:class:`GemmType`
    A GEMM of SPEC section 5 (``verify.gemm --pe NAME``): its operand codes and
    their checks, how they become the raw bit patterns an array takes, how the
    raw accumulator words become the result, its golden reference and random
    operands.
:class:`PEKind`
    A processing element: operand widths, the mode inputs that travel with A
    and with B, the product rule (one rule for torch and Amaranth, through
    :class:`golden.formats.base.Ops`), the accumulate rule, the accumulator
    width rule, the GEMMs it runs (and the mode values that select each), the
    SPEC section 3 standalone top where it has one (:class:`StandaloneTop`),
    the training workloads a report runs on it, and its place on the FPGA
    boards (:class:`FPGAFit`).

A kind lives in one module of :mod:`hw.kinds`; :mod:`hw.kinds` finds every
module there, so adding a kind is adding that module (and its tests).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from amaranth.hdl import signed, unsigned

from .._params import check_int
from ..accumulate import integer_accumulate
from ..arith import AMARANTH_OPS, max_safe_k, min_acc_width

__all__ = [
    "GemmInputError",
    "GemmType",
    "IntegerGemm",
    "StandaloneTop",
    "FPGAFit",
    "check_clock_div",
    "PEKind",
    "IntegerKind",
    "integer_codes",
    "random_codes",
    "int64_tensors",
]

#: Widest integer accumulator a GEMM result can come back in: results are int64.
MAX_RESULT_BITS = 64


class GemmInputError(ValueError):
    """Operands (shapes, dtypes, code ranges) or a GEMM that a kind cannot run."""


def integer_codes(name, matrix, signed):
    """Raw 4-bit patterns (int64) of INT4 (``signed``) or UINT4 codes, checked.

    Raises
    ------
    GemmInputError
        Not integer, or a value outside -8..7 (INT4) / 0..15 (UINT4).
    """
    if not np.issubdtype(matrix.dtype, np.integer):
        raise GemmInputError(f"{name} must hold integer codes, not dtype {matrix.dtype}")
    lo, hi = (-8, 7) if signed else (0, 15)
    if matrix.size and (matrix.min() < lo or matrix.max() > hi):
        raise GemmInputError(
            f"{name} holds values outside {'INT4' if signed else 'UINT4'} range {lo}..{hi} "
            f"(min {matrix.min()}, max {matrix.max()})"
        )
    return matrix.astype(np.int64) & 0xF


def random_codes(rng, shape, signed):
    """Uniformly random INT4 (``signed``) or UINT4 codes, int8."""
    return rng.integers(-8 if signed else 0, 8 if signed else 16, size=shape).astype(np.int8)


def int64_tensors(*matrices):
    """numpy code matrices as contiguous int64 torch tensors (for :mod:`golden.reference`)."""
    import torch

    return tuple(torch.from_numpy(np.ascontiguousarray(x)).to(torch.int64) for x in matrices)


def _check_matrices(a, b):
    for name, matrix in (("A", a), ("B", b)):
        if not isinstance(matrix, np.ndarray):
            raise GemmInputError(f"{name} must be a numpy array")
        if matrix.ndim != 2:
            raise GemmInputError(f"{name} must be a 2-D matrix, not shape {matrix.shape}")
    if a.shape[1] != b.shape[0]:
        raise GemmInputError(
            f"inner dimensions differ: A is {a.shape[0]} x {a.shape[1]}, B is {b.shape[0]} x {b.shape[1]}"
        )


class GemmType:
    """A GEMM ``C = A @ B`` of SPEC section 5, as a tool feeds it to an array.

    Subclasses set the attributes and implement :meth:`encode`,
    :meth:`reference`, :meth:`random_operands` and :meth:`decode`.

    Attributes
    ----------
    name : str
        The ``--pe`` value of ``verify.gemm`` and ``boards.host``.
    description : str
        What A, B and C are, one line.
    signedness : tuple of str
        Which of ``a_signed`` / ``b_signed`` the GEMM takes (the others do not apply).
    is_float : bool
        C is binary32 (compared bit for bit) rather than int64.
    workload : str or None
        The training workload whose GEMMs this is (``forward``: Y = X W;
        ``backward``: dX and dW), or None for a GEMM that runs both (the
        floating-point baseline takes every GEMM's real values).
    scaled : bool
        The GEMM takes block-scale matrices ``a_scales`` and ``b_scales`` with
        its code matrices (SPEC section 7): keyword arguments of
        :meth:`operand_bits`, :meth:`encode` and :meth:`reference`, and keys of
        :meth:`random_inputs`. Other GEMMs refuse them.
    """

    name: str
    description: str
    signedness: tuple = ()
    is_float: bool = False
    workload: str | None = None
    scaled: bool = False

    def scale_arguments(self, a_scales=None, b_scales=None):
        """The block-scale keyword arguments this GEMM takes (``{}`` for an unscaled one).

        Raises
        ------
        GemmInputError
            Scales missing for a scaled GEMM, or given to an unscaled one.
        """
        given = a_scales is not None or b_scales is not None
        if not self.scaled:
            if given:
                raise GemmInputError(f"--pe {self.name} takes no block scales (--a-scales, --b-scales)")
            return {}
        if a_scales is None or b_scales is None:
            raise GemmInputError(f"--pe {self.name} needs the block scales of A and B (--a-scales, --b-scales)")
        return {"a_scales": a_scales, "b_scales": b_scales}

    def operand_bits(self, a, b, *, a_signed=True, b_signed=True, a_scales=None, b_scales=None):
        """Validate the operands and return their raw bit patterns (uint64 matrices).

        Raises
        ------
        GemmInputError
            Shapes, dtypes or code ranges this GEMM does not accept.
        """
        _check_matrices(a, b)
        scales = self.scale_arguments(a_scales, b_scales)
        a_bits, b_bits = self.encode(a, b, a_signed=a_signed, b_signed=b_signed, **scales)
        return a_bits.astype(np.uint64), b_bits.astype(np.uint64)

    def encode(self, a, b, *, a_signed, b_signed):
        """Checked raw patterns of 2-D operands whose inner dimensions agree (a scaled GEMM also
        takes ``a_scales`` and ``b_scales``)."""
        raise NotImplementedError

    def random_inputs(self, rng, m, k, n, *, a_signed=True, b_signed=True):
        """Random operands as keyword arguments of :meth:`operand_bits` / :meth:`reference`:
        ``a`` and ``b`` (:meth:`random_operands`), plus the scales of a scaled GEMM."""
        a, b = self.random_operands(rng, m, k, n, a_signed=a_signed, b_signed=b_signed)
        return {"a": a, "b": b}

    def reference(self, a, b, *, a_signed=True, b_signed=True):
        """The :mod:`golden.reference` result as numpy (int64, or float32)."""
        raise NotImplementedError

    def random_operands(self, rng, m, k, n, *, a_signed=True, b_signed=True):
        """Random operands covering every code (finite values for floating point)."""
        raise NotImplementedError

    def decode(self, raw, acc_width):
        """The result matrix from raw accumulator words (uint64) of ``acc_width`` bits."""
        raise NotImplementedError

    def result_bits(self, c):
        """``c`` as the integers compared bit for bit (float results: their binary32 patterns)."""
        return c.view(np.uint32) if self.is_float else c

    def __repr__(self):
        return f"<GemmType {self.name}>"


class IntegerGemm(GemmType):
    """A GEMM whose result is the exact int64 sum of integer products."""

    def decode(self, raw, acc_width):
        from ..tiling import sign_extend  # tiling imports the array, which imports the registry

        return sign_extend(raw, acc_width)


@dataclasses.dataclass(frozen=True)
class StandaloneTop:
    """The SPEC section 3 standalone top of a kind (``<name>_mac``), if it has one.

    Attributes
    ----------
    module : str
        Module (and unit) name, e.g. ``int4_mac``.
    ports : tuple of (str, str, int)
        Operand ports in port order: ``(port, role, width)`` with ``role`` one
        of ``a``, ``b`` or a mode input of the kind (``a_signed``, ...).
    fixed_modes : dict
        Mode inputs the top has no port for, with their constant value (Python
        ``bool`` or ``int``), e.g. ``{"b_signed": True}``: ``b`` is INT4 only.
    product_range : ProductRange or None
        Products the top can form (its fixed modes included); None: floating point.
    defaults : dict
        Generation parameters with their defaults (the only accepted ones).
    description : str
        One line for ``rtl_gen --list`` and the manifest.
    """

    module: str
    ports: tuple
    fixed_modes: dict
    product_range: object
    defaults: dict
    description: str

    def port_of(self, role):
        """The port that carries ``role`` (``a``, ``b`` or a mode), or None."""
        return next((port for port, r, _ in self.ports if r == role), None)


def check_clock_div(owner, clock_div):
    """``clock_div``, the divider of a board clock for the engine: an integer >= 1.

    The one rule for a kind's :class:`FPGAFit` and a board top's argument
    (:mod:`boards.platforms`); TypeError or ValueError names ``owner``.
    """
    return check_int(owner, "clock_div", clock_div, minimum=1)


@dataclasses.dataclass(frozen=True)
class FPGAFit:
    """How a kind's array goes on the FPGA boards (:mod:`boards`).

    Attributes
    ----------
    largest : dict
        ``{board: (rows, cols)}``: the largest square array the sweep placed
        and routed on each board (docs/boards.md); ``make synth`` builds it by default.
    clock_div : int or dict
        Divider of the board clock for the engine (2 where the measured Fmax
        is below the board clock), or ``{board: divider}`` where the boards
        differ (a board it does not name: 1); :meth:`clock_div_on` reads it.
    hard_multipliers : bool
        Map products to DSP blocks (wide mantissa products); the 4-bit kinds
        are a few LUTs per product and build without DSPs.
    """

    largest: dict
    clock_div: int | dict = 1
    hard_multipliers: bool = False

    def __post_init__(self):
        if isinstance(self.clock_div, dict):
            for board, divider in self.clock_div.items():
                check_clock_div(f"FPGAFit ({board})", divider)
            # a copy: kinds may share one divider table (hw.kinds._blockfp)
            object.__setattr__(self, "clock_div", dict(self.clock_div))
        else:
            check_clock_div("FPGAFit", self.clock_div)

    def clock_div_on(self, board):
        """The engine's divider of ``board``'s clock (a board name)."""
        return self.clock_div.get(board, 1) if isinstance(self.clock_div, dict) else self.clock_div


class PEKind:
    """A processing-element kind: one entry of the registry (:mod:`hw.kinds`).

    Subclasses set the class attributes below and implement :meth:`product`
    (and :meth:`accumulate` for a non-integer accumulator).

    Attributes
    ----------
    name : str
        Registry key (``hw.array`` kind, ``<name>_array`` unit).
    order : int
        Position in listings; the first kind is the tools' default.
    description : str
        One line: what the kind computes.
    array_description : str
        One line for the array unit (``rtl_gen --list``, the manifest).
    a_width, b_width : int
        Bits of one A / B operand as the array takes it.
    a_modes, b_modes : tuple of str
        Mode inputs travelling with A (rightwards) and with B (downwards).
    product_range : ProductRange or None
        Integer product range over every mode (None: floating point).
    default_acc_width : int
        Accumulator width when none is given.
    gemms : tuple of (GemmType, dict)
        The GEMMs the kind's array runs and the mode values that select each
        (e.g. ``mode = 1`` for the backward GEMM of the unified training PE).
        The first is the kind's own GEMM.
    standalone : StandaloneTop or None
        The SPEC section 3 top.
    workloads : tuple of str
        Training workloads (``forward``, ``backward``) a report runs on it.
    baseline : bool
        The FP16 baseline the 4-bit kinds are compared with.
    recipes : tuple of str
        The :mod:`golden.recipes` whose training GEMMs the kind's hardware
        runs (the side-by-side table of docs/formats.md, :mod:`report.compare`);
        the baseline lists the FP32 reference it stands beside.
    info_code : int
        The kind byte of the board engine's INFO reply (:mod:`hw.engine.protocol`).
    fpga : FPGAFit
    """

    name: str
    order: int
    description: str
    array_description: str
    a_width: int
    b_width: int
    a_modes: tuple = ()
    b_modes: tuple = ()
    product_range = None
    default_acc_width: int = 32
    gemms: tuple = ()
    standalone: StandaloneTop | None = None
    workloads: tuple = ()
    baseline: bool = False
    recipes: tuple = ()
    info_code: int
    fpga: FPGAFit

    @property
    def array_module(self):
        """Module (and unit) name of the kind's systolic array, e.g. ``int4_array``."""
        return f"{self.name}_array"

    #: The kind has a weight-stationary array (:mod:`hw.ws_array`). The block-scaled
    #: kinds do not yet: their block boundary and scales live in an output-stationary PE.
    weight_stationary = True

    @property
    def ws_array_module(self):
        """Module (and unit) name of the kind's weight-stationary array (:mod:`hw.ws_array`), e.g. ``int4_ws_array``."""
        return f"{self.name}_ws_array"

    @property
    def ws_array_description(self):
        """One line for the weight-stationary array unit (``rtl_gen --list``, the manifest)."""
        return f"weight-stationary R x C array of {self.name} PEs: {self.description}"

    # -- arithmetic -------------------------------------------------------------------

    @property
    def is_float(self):
        return self.product_range is None

    def product(self, m, a, b, modes, *, prefix):
        """Product of operands ``a`` and ``b`` (Amaranth values) under ``modes``.

        Parameters
        ----------
        m : Module
            Module that named intermediates (floating point) are added to.
        modes : dict
            Mode input name -> value (a signal, or a constant of a standalone top).
        prefix : str
            Name prefix of intermediate signals.
        """
        raise NotImplementedError

    def golden_products(self, a, b, modes):
        """The golden model's element-wise products (torch tensors) of codes ``a`` and ``b``.

        Computed by :mod:`golden` itself (:mod:`golden.reference`,
        :mod:`golden.formats.fp16`), not by this kind's hardware rule, so that
        the testbenches compare the RTL with an independent composition of the
        format rules. Binary32 bit patterns for a floating-point kind.
        """
        raise NotImplementedError

    def accumulate(self, m, acc, prod, valid, clear, *, prefix):
        """Next accumulator value under the SPEC section 3 ``valid``/``clear`` rule."""
        return integer_accumulate(acc, prod, valid, clear)

    def gated_accumulate(self, m, acc, prod, valid, clear, *, prefix):
        """:meth:`accumulate` for a register with an enable: ``(next, load)``.

        ``load`` is a 1-bit value, or None for ``valid | clear`` (the SPEC
        section 3 rule: the accumulator holds otherwise). A kind whose
        accumulator changes on fewer cycles narrows it (the block-scaled kinds:
        once per block); the register must hold ``next == acc`` whenever
        ``load`` is 0, so the enable saves clocking and changes no result.
        """
        return self.accumulate(m, acc, prod, valid, clear, prefix=prefix), None

    # -- zero operands ----------------------------------------------------------------

    def operand_zero(self, role, x, modes):
        """When operand ``x`` alone decides the product: a 1-bit Amaranth value, or None.

        Parameters
        ----------
        role : str
            ``a`` or ``b``.
        x : Value
            The operand (``a_width`` / ``b_width`` bits).
        modes : dict
            The mode inputs travelling with it (:attr:`a_modes` or
            :attr:`b_modes`; the rule reads no other).

        A lean PE skips its accumulator on such an operand (see
        :meth:`zero_product`) and a lean array's operand register does not
        load it (it holds its old bits, so the product logic downstream does
        not switch) but registers this flag instead, which travels with the
        operand from PE to PE. The default is None: every operand is loaded.
        """
        return None

    def zero_loaded_bits(self, role):
        """Bits of a flagged operand that its register still loads (a ``slice``), or None.

        What :meth:`zero_product` needs of a zero operand besides its flag
        (the sign of a floating-point zero); None: a flagged operand's
        register holds all its bits.
        """
        return None

    def zero_product(self, m, prod, a, b, zero, modes, acc, valid, *, stale, prefix):
        """The accumulator's inputs given the operands' zero flags.

        Parameters
        ----------
        m : Module
            Module that named intermediates are added to.
        prod : Value
            :meth:`product` of ``a`` and ``b`` as the PE sees them.
        a, b : Value
            The operands; where a flag is set, only :meth:`zero_loaded_bits` of
            that operand are meaningful if ``stale``.
        zero : tuple of (Value or None)
            :meth:`operand_zero` of A and of B (combinational, or registered
            with a held operand).
        modes : dict
            Every mode input, as the PE sees it.
        acc : Value
            The accumulator.
        valid : Value
            The PE's ``valid``.
        stale : bool
            A flagged operand may hold stale bits (its register held), so
            ``prod`` may be wrong where a flag is set.
        prefix : str
            Name prefix of intermediate signals.

        Returns
        -------
        (prod, valid, skip) : (Value, Value, Value or None)
            The accumulator is ``accumulate(acc, prod, valid, clear)`` (the
            SPEC section 3 rule, exact bit for bit) and loads only on
            ``valid & ~skip | clear``; ``skip`` is sound (never 1 where the
            product would change ``acc``). The default: no flags, no skip.
        """
        return prod, valid, None

    def acc_shape(self, acc_width):
        """Shape of an accumulator of ``acc_width`` bits (binary32 patterns are unsigned)."""
        return unsigned(32) if self.is_float else signed(acc_width)

    def max_k(self, acc_width):
        """Largest K whose products cannot overflow ``acc_width`` bits (None: floating point)."""
        return None if self.is_float else max_safe_k(self.product_range, acc_width)

    def acc_width_for(self, k):
        """The default accumulator width, or the narrowest one that holds ``k`` products.

        Raises
        ------
        GemmInputError
            ``k`` needs more than 64 bits (results are int64).
        """
        if self.is_float:
            return 32
        width = self.default_acc_width
        if max_safe_k(self.product_range, width) < max(k, 1):
            width = min_acc_width(self.product_range, k)
        if width > MAX_RESULT_BITS:
            raise GemmInputError(f"K={k} needs a {width}-bit accumulator; results are int64 (at most 64 bits)")
        return width

    def lean_acc_width(self, max_k):
        """The narrowest accumulator that cannot overflow within ``max_k`` products (32 for floating point).

        What a lean array is generated with when no width is given: a wider
        accumulator only adds flip-flops and adder bits that a declared K never uses.
        """
        return 32 if self.is_float else min_acc_width(self.product_range, max(max_k, 1))

    def check_acc_width(self, owner, acc_width, max_k):
        """``acc_width`` checked against the declared ``max_k``; returns the width.

        Raises
        ------
        ValueError
            A floating-point kind given another width than 32, or an integer
            width that can overflow within ``max_k`` products.
        """
        acc_width = check_int(owner, "acc_width", acc_width, minimum=2)
        if self.is_float:
            if acc_width != 32:
                raise ValueError(f"{owner}: the binary32 accumulator is 32 bits, not acc_width={acc_width}")
            return acc_width
        holds = max_safe_k(self.product_range, acc_width)
        if holds < max_k:
            need = min_acc_width(self.product_range, max_k)
            raise ValueError(
                f"{owner}: acc_width={acc_width} can overflow: it holds at most {holds} "
                f"products of {self.product_range.lo}..{self.product_range.hi}, fewer than "
                f"max_k={max_k} (needs acc_width >= {need})"
            )
        return acc_width

    def accumulator_description(self, acc_width):
        """The accumulator in words, for manifests."""
        if self.is_float:
            return "binary32 (RNE per add, ascending k)"
        return f"signed {acc_width}-bit two's complement, wraps"

    # -- lean FPGA rule (hw.fpga_array) ----------------------------------------------

    @property
    def lean_array_module(self):
        """Module (and unit) name of the kind's lean FPGA array (:mod:`hw.fpga_array`), e.g. ``int4_lean_array``."""
        return f"{self.name}_lean_array"

    #: The kind has a lean FPGA array (:class:`hw.fpga_array.LeanSystolicArray`):
    #: it implements :meth:`lean_a`, :meth:`lean_b`, :meth:`lean_product` and
    #: the per-row / per-column terms, with ``product(a, b, modes) ==
    #: lean_product(a', b') + row_term(a', modes) + col_term(b', modes)`` for
    #: ``a' = lean_a(a, modes)``, ``b' = lean_b(b, modes)``, every code and mode.
    fpga_lean = False
    #: A rewritten A code whose lean product is 0 for every B code (fed where ``valid`` is 0).
    lean_zero_a = 0
    #: Mode inputs the lean rule reads along the left edge (:meth:`lean_a`, :meth:`row_term`)
    #: and along the top edge (:meth:`lean_b`, :meth:`col_term`); None: all of them.
    lean_row_modes = None
    lean_col_modes = None
    #: Range of :meth:`lean_product`; of :meth:`row_term` / :meth:`col_term` (None: the kind has none).
    lean_product_range = None
    row_term_range = None
    col_term_range = None

    def lean_a(self, a, modes):
        """A code as the lean PEs take it (Amaranth, once per row where A enters the array)."""
        return a

    def lean_b(self, b, modes):
        """B code as the lean PEs take it (once per column)."""
        return b

    def lean_product(self, a, b):
        """Product of rewritten codes, without mode inputs (the logic of every lean PE)."""
        raise NotImplementedError

    def row_term(self, a, modes):
        """Per-(row, k) term of the product, a function of the rewritten A code and the modes."""
        raise NotImplementedError

    def col_term(self, b, modes):
        """Per-(k, column) term of the product, a function of the rewritten B code and the modes."""
        raise NotImplementedError

    # -- GEMMs --------------------------------------------------------------------------

    @property
    def gemm(self):
        """The kind's own GEMM (the first of :attr:`gemms`)."""
        return self.gemms[0][0]

    def runs(self, gemm):
        """Whether the kind's array runs GEMM ``gemm`` (a :class:`GemmType` or its name)."""
        name = getattr(gemm, "name", gemm)
        return any(g.name == name for g, _ in self.gemms)

    def gemm_for(self, workload):
        """The kind's GEMM that runs ``workload`` (``forward`` / ``backward``).

        Raises
        ------
        ValueError
            The kind runs no GEMM of that workload.
        """
        for gemm, _ in self.gemms:
            if gemm.workload in (workload, None):
                return gemm
        raise ValueError(f"workload {workload!r} is not run on the {self.name} kind")

    def mode_inputs(self, gemm, *, a_signed=True, b_signed=True):
        """Values of the array's mode inputs for a GEMM ``gemm`` with this signedness.

        Raises
        ------
        GemmInputError
            The kind does not run ``gemm``.
        """
        name = getattr(gemm, "name", gemm)
        for g, fixed in self.gemms:
            if g.name == name:
                values = {"a_signed": int(a_signed), "b_signed": int(b_signed), **fixed}
                return {mode: values[mode] for mode in self.a_modes + self.b_modes}
        raise GemmInputError(
            f"the {self.name} array runs {' and '.join(g.name for g, _ in self.gemms)} GEMMs, not {name}"
        )

    def __repr__(self):
        return f"<PEKind {self.name}>"


class IntegerKind(PEKind):
    """A kind whose products are small integers given by one rule over :class:`golden.formats.base.Ops`.

    Subclasses implement :meth:`product_rule`; the hardware evaluates it with
    :data:`hw.arith.AMARANTH_OPS`, the golden model with
    :data:`golden.formats.TORCH_OPS`, so both are literally the same rule.
    """

    def product_rule(self, ops, a, b, modes):
        """Product of codes ``a`` and ``b`` under ``modes``, evaluated with backend ``ops``."""
        raise NotImplementedError

    def product(self, m, a, b, modes, *, prefix):
        return self.product_rule(AMARANTH_OPS, a, b, modes)

    def operand_zero_rule(self, ops, role, x, modes):
        """Codes of operand ``role`` (``a``/``b``) whose product is 0 whatever the other operand, or None.

        Evaluated with ``ops`` like :meth:`product_rule` (a boolean per
        element), reading only the modes that travel with the operand.
        """
        return None

    def zero_rule(self, ops, a, b, modes):
        """Operand pairs whose product is 0 (either operand's :meth:`operand_zero_rule`), or None.

        ``tests/hw/test_kinds.py`` checks it implies a zero product for every
        code and mode, and that it catches every operand that always zeroes it.
        """
        rules = [
            self.operand_zero_rule(ops, role, x, {name: modes[name] for name in names})
            for role, x, names in (("a", a, self.a_modes), ("b", b, self.b_modes))
        ]
        if rules[0] is None or rules[1] is None:
            return None
        return rules[0] | rules[1]

    def operand_zero(self, role, x, modes):
        return self.operand_zero_rule(AMARANTH_OPS, role, x, modes)

    def zero_product(self, m, prod, a, b, zero, modes, acc, valid, *, stale, prefix):
        if zero[0] is None or zero[1] is None:
            return prod, valid, None
        if not stale:
            # acc + 0 == acc for a wrapping accumulator, and the product is 0.
            return prod, valid, self.zero_rule(AMARANTH_OPS, a, b, modes)
        skip = zero[0] | zero[1]
        # A flagged product is 0 whatever the held bits multiply to: for the
        # SPEC rule that is a cycle without valid (clear then loads 0 == prod).
        return prod, valid & ~skip, skip
