# FPGA boards: UART GEMM engine bitstreams, resource/Fmax sweep (docs/boards.md).
# PYTHON, PATH and VERILATOR_ROOT come from the top-level Makefile.

BOARD ?=
PE ?=
ROWS ?=
COLS ?=
CLOCK_DIV ?=
CLOCK_MHZ ?=
SEED ?= 1
LEAN ?= 0
SWEEP_ARGS ?=
DENSITY_ARGS ?=

.PHONY: synth fpga-sweep fpga-density test-boards-slow

synth:  ## bitstream + build/boards/<board>/report.json of the UART GEMM engine (BOARD=icebreaker|ulx3s [PE= ROWS= COLS= CLOCK_DIV= or CLOCK_MHZ= (PLL) SEED= LEAN=1 (lean FPGA array)])
	@test -n "$(BOARD)" || { echo "error: set BOARD=<board> ($$($(PYTHON) -c 'from boards.platforms import BOARDS; print(", ".join(BOARDS))'))" >&2; exit 2; }
	$(PYTHON) -m boards.synth --board "$(BOARD)" --pe "$(PE)" --rows "$(ROWS)" --cols "$(COLS)" --clock-div "$(CLOCK_DIV)" --clock-mhz "$(CLOCK_MHZ)" --seed "$(SEED)" --lean "$(LEAN)"

fpga-density:  ## Yosys-only LUT4s/FFs/DSPs per MAC, plain vs lean FPGA arrays, ECP5 and iCE40 -> build/boards/density/density.{md,json} (tens of minutes; resumable; DENSITY_ARGS="--families ecp5 --sizes 1 8 16 --variants plain lean:256")
	$(PYTHON) -m boards.density $(DENSITY_ARGS)

fpga-sweep:  ## LUTs/FFs/DSPs/Fmax per PE kind and array size up to the largest that fits, both boards, as dask tasks -> build/boards/sweep/sweep.{md,png} (hours; resumable; SWEEP_ARGS="--seeds N --workers N --scheduler tcp://HOST:PORT")
	$(PYTHON) -m boards.sweep $(SWEEP_ARGS)

test-boards-slow:  ## slow board tests: a too-big array (real build), fp16 engine on Verilator, a tiny sweep on a two-process dask LocalCluster
	$(PYTHON) -m pytest -q -m slow tests/boards
