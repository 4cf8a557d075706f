"""The standalone processing element of a kind: the SPEC section 3 tops (``int4_mac``, ...).

One component for every kind that has a :class:`~hw.kinds.base.StandaloneTop`:
its operand ports in the top's order, ``valid``, ``clear`` and the registered
accumulator ``acc``; the product and the accumulate rule are the kind's, the
same that every array cell uses (:mod:`hw.array`). Optional register stages
between product and accumulator make pipelined variants (latency
``1 + pipeline``); the defaults keep SPEC section 3's latency 1.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ._params import check_int
from .arith import max_safe_k
from .kinds import get_kind
from .pipeline import delay

__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """The standalone top of one PE kind.

    Parameters
    ----------
    kind : str or PEKind
        A kind of :data:`hw.kinds.KINDS` that has a standalone top.
    acc_width : int, optional
        Accumulator width (default: the top's; integer kinds only).
    pipeline : int
        Register stages between the product and the accumulator (default 0);
        the latency is ``1 + pipeline`` cycles.
    min_k : int
        Maximal-magnitude products the accumulator must hold without overflow
        (default 1; integer kinds only); a narrower ``acc_width`` is a ValueError.

    Attributes
    ----------
    <operand ports> : Signal, in
        As the kind's :class:`~hw.kinds.base.StandaloneTop` lists them.
    valid, clear : Signal(1), in
        Accumulation controls (SPEC section 3).
    acc : Signal, out
        Registered accumulator: ``signed(acc_width)``, wrapping, or a binary32 pattern.
    max_k : int or None
        Largest K such that any K products cannot overflow ``acc`` (None: floating point).
    module_name : str
        The top's module name.
    """

    def __init__(self, *, kind, **params):
        try:
            self._check(kind, params)
        except (TypeError, ValueError):
            self._MustUse__silence = True  # a rejected component is not an unused one
            raise
        top = self.top
        members = {port: In(width) for port, _, width in top.ports}
        acc_shape = self.kind.acc_shape(self.acc_width)
        members.update(valid=In(1), clear=In(1), acc=Out(acc_shape))
        super().__init__(members)

    def _check(self, kind, params):
        self.kind = get_kind(kind)
        self.top = top = self.kind.standalone
        if top is None:
            raise ValueError(f"the {self.kind.name} kind has no standalone top")
        owner = self.module_name = top.module
        unknown = sorted(set(params) - set(top.defaults))
        if unknown:
            raise TypeError(f"{owner}: unknown parameter(s) {', '.join(unknown)} (known: {', '.join(top.defaults)})")
        params = {**top.defaults, **params}
        if top.product_range is None:
            self.pipeline = check_int(owner, "pipeline", params["pipeline"], minimum=0)
            self.acc_width, self.min_k, self.max_k = 32, None, None
            return
        self.acc_width = check_int(owner, "acc_width", params["acc_width"], minimum=1)
        self.pipeline = check_int(owner, "pipeline", params["pipeline"], minimum=0)
        self.min_k = check_int(owner, "min_k", params["min_k"], minimum=1)
        self.max_k = max_safe_k(top.product_range, self.acc_width)
        if self.max_k < self.min_k:
            raise ValueError(
                f"{owner}: acc_width={self.acc_width} holds at most {self.max_k} products without "
                f"overflow, fewer than min_k={self.min_k}"
            )

    @property
    def latency(self):
        """Cycles from an input edge to its effect on ``acc``."""
        return 1 + self.pipeline

    def _operand(self, role):
        port = self.top.port_of(role)
        return self.top.fixed_modes[role] if port is None else getattr(self, port)

    def elaborate(self, platform):
        m = Module()
        kind = self.kind
        modes = {name: self._operand(name) for name in kind.a_modes + kind.b_modes}
        product = kind.product(m, self._operand("a"), self._operand("b"), modes, prefix="mul")
        prod = delay(m, product, self.pipeline, name="prod")
        valid = delay(m, self.valid, self.pipeline, name="valid")
        clear = delay(m, self.clear, self.pipeline, name="clear")
        # SPEC section 3: the accumulator holds unless valid or clear, so it loads
        # only then: an explicit enable that a synthesis flow can map to a clock
        # gate. Unpipelined, it does not load either for a product that cannot
        # change it (the kind's zero operands, :meth:`~hw.kinds.base.PEKind.zero_product`);
        # with pipeline stages the rule would see operands and an accumulator of
        # different cycles. The top has no operand registers of its own (latency
        # 1: the inputs of edge t reach acc at edge t), so nothing here can hold
        # a zero operand; the flags are the operands' own, never stale.
        # A kind whose accumulator changes on fewer cycles narrows the enable
        # further (PEKind.gated_accumulate: the block-scaled kinds load once per block).
        skip = None
        if not self.pipeline:
            zero = tuple(kind.operand_zero(role, self._operand(role), modes) for role in ("a", "b"))
            prod, valid, skip = kind.zero_product(
                m,
                prod,
                self._operand("a"),
                self._operand("b"),
                zero,
                modes,
                self.acc,
                valid,
                stale=False,
                prefix="zero",
            )
        use = valid if skip is None else valid & ~skip
        # The accumulate logic is built inside the enable's If: its named
        # intermediates (a floating-point add) are then driven only on a load
        # and rest at 0 otherwise, so they do not switch on held cycles.
        with m.If(use | clear):
            nxt, load = kind.gated_accumulate(m, self.acc, prod, valid, clear, prefix="add")
            if load is None:
                m.d.sync += self.acc.eq(nxt)
            else:
                with m.If(load):
                    m.d.sync += self.acc.eq(nxt)
        return m
