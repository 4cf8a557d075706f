"""Drives a PE component through a :class:`verify.stimulus.Sequence` in Amaranth's own simulator.

Fast unit tests need no external simulator: the same step sequences and
golden expectations as the cocotb testbench, run on the Amaranth model.
"""

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

__all__ = ["simulate_sequence"]


def simulate_sequence(component, sequence):
    """Raw ``acc`` bits after each step (``acc`` sampled ``component.latency`` edges later).

    Parameters
    ----------
    component : wiring.Component
        A PE whose ports are named like ``sequence``'s columns.
    sequence : verify.stimulus.Sequence
        Steps to apply, one per clock cycle; ``rst`` drives the ``sync`` reset.

    Returns
    -------
    numpy.ndarray
        uint64 raw accumulator bits, one per step.
    """
    columns = {name: column.tolist() for name, column in sequence.inputs.items()}
    ports = [(getattr(component, name), columns[name]) for name in columns if name != "rst"]
    # An explicit domain makes the reset a signal the testbench may drive.
    top = Module()
    top.domains.sync = domain = ClockDomain("sync")
    top.submodules.dut = component
    reset = domain.rst
    latency = component.latency
    steps = len(sequence)
    mask = (1 << len(component.acc)) - 1
    observed = []

    async def testbench(ctx):
        for step in range(steps + latency - 1):
            if step < steps:
                for port, column in ports:
                    ctx.set(port, column[step])
                ctx.set(reset, columns["rst"][step])
            else:
                for port, _ in ports:
                    ctx.set(port, 0)
                ctx.set(reset, 0)
            await ctx.tick()
            if step >= latency - 1:
                observed.append(ctx.get(component.acc) & mask)

    simulator = Simulator(top)
    simulator.add_clock(1e-8)
    simulator.add_testbench(testbench)
    simulator.run()
    return np.array(observed, dtype=np.uint64)
