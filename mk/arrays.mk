# Systolic arrays: GEMM runner checks and simulation speed (docs/arrays.md).
# PYTHON, PATH and VERILATOR_ROOT come from the top-level Makefile.

ARRAY_BENCH_ARGS ?=

.PHONY: bench-sim-arrays verify-arrays-long gemm-check

bench-sim: bench-sim-arrays
verify-long: verify-arrays-long

bench-sim-arrays:  ## PE-MACs verified per second vs array size: Icarus, Verilator via cocotb, native Verilator (64x64x64 GEMMs, native also 512x1024x512; ARRAY_BENCH_ARGS="--sizes 4x4,16x16")
	$(PYTHON) -m verify.bench_arrays --out build/bench/arrays.md $(ARRAY_BENCH_ARGS)

verify-arrays-long:  ## slow array checks: every size and kind on both simulators, K up to 1024, wide accumulators; weight-stationary sizes and K
	$(PYTHON) -m pytest -q -n 2 -m slow tests/verify/test_gemm.py tests/verify/test_gemm_ws.py

gemm-check:  ## independent check: random .npy -> python -m verify.gemm (subprocess) vs its own numpy reference: Icarus, native Verilator, Verilator via cocotb; both dataflows
	$(PYTHON) tests/verify/test_gemm_cli.py --sim icarus
	$(PYTHON) tests/verify/test_gemm_cli.py --sim verilator
	$(PYTHON) tests/verify/test_gemm_cli.py --sim verilator-cocotb
	$(PYTHON) tests/verify/test_gemm_cli.py --sim icarus --dataflow ws
	$(PYTHON) tests/verify/test_gemm_cli.py --sim verilator --dataflow ws
