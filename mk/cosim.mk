# Training datapath: hardware-in-the-loop co-simulation (docs/datapath.md).
# PYTHON, PATH and VERILATOR_ROOT come from the top-level Makefile.
# The datapath runs on the native Verilator harness (verify/cpp/datapath_harness.cpp);
# COSIM_ARGS="--sim verilator-cocotb" selects the cocotb driver instead.

COSIM_ARGS ?=
FMAX_PRESET ?= digits

.PHONY: cosim cosim-mnist cosim-mnist-epoch cosim-fmax

cosim:  ## train a 64-32-10 MLP on digits for one epoch through the RTL datapath (native Verilator), bit-exact vs golden every step
	$(PYTHON) -m verify.cosim --preset digits --report build/cosim/digits.json $(COSIM_ARGS)

cosim-mnist:  ## the same for a 784-128-10 MLP on a batch of MNIST (2 steps), with the cycle report
	$(PYTHON) -m verify.cosim --preset mnist --report build/cosim/mnist.json $(COSIM_ARGS)

cosim-mnist-epoch:  ## one full MNIST epoch (784-128-10, 3750 steps) through the RTL datapath, bit-exact every step, test accuracy vs golden
	$(PYTHON) -m verify.cosim --preset mnist-epoch --print-every 250 --report build/cosim/mnist-epoch.json $(COSIM_ARGS)

cosim-fmax:  ## Fmax of the digits datapath on ECP5 (nextpnr, out of context) for the projected step time (FMAX_PRESET=mnist tries the 16x16 one: it does not fit the LFE5U-85F)
	$(PYTHON) -m verify.cosim.fmax --preset $(FMAX_PRESET)
