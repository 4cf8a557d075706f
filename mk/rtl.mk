# Processing elements: Verilog generation, lint, long verification, simulator benchmark
# (docs/rtl.md). PYTHON, PATH and VERILATOR_ROOT come from the top-level Makefile.

RTL_DIR ?= build/rtl
RTL_CONFIG ?= configs/default.toml
RTL_ARGS ?=

.PHONY: rtl lint verify-long bench-sim

rtl:  ## Verilog of every configured unit + manifest.json -> build/rtl (RTL_CONFIG=..., RTL_ARGS="--set int4_mac.acc_width=32")
	$(PYTHON) -m rtl_gen --config $(RTL_CONFIG) --out $(RTL_DIR) $(RTL_ARGS)

lint: lint-python rtl  ## ruff, import-linter (layer contract), then verilator --lint-only -Wall on every generated module (waivers: rtl_gen/lint_waivers.vlt)
	$(PYTHON) -m rtl_gen.lint --dir $(RTL_DIR)

verify-long:  ## slow checks: 10^6 random FP16 MAC steps, full-width wrap (Icarus + Verilator), FP16 product on all 2^32 pairs
	$(PYTHON) -m pytest -q -n 2 -m slow tests/verify/test_pe_cocotb.py tests/verify/test_exhaustive.py

bench-sim:  ## MAC steps checked per second per unit on Icarus and Verilator (table for docs/rtl.md)
	$(PYTHON) -m verify.bench
