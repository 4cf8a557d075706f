"""Hardware-in-the-loop training on the simulated datapath (issue 6): host driver, testbench, CLI.

:func:`run_cosim` builds the datapath (Verilator, cached), trains an MLP whose
every GEMM, requantization and gradient quantization runs in the RTL, and
compares the master weights with the golden model's after every step. The
datapath runs on the native harness (:mod:`verify.cosim.native`, the default)
or under cocotb (:mod:`verify.cosim.remote`, :mod:`verify.cosim.server`), both
driving its ports cycle for cycle as :mod:`verify.cosim.driver` does.
"""

from .run import PRESETS, run_cosim

__all__ = ["PRESETS", "run_cosim"]
