# Area / delay / energy report of the PEs against FP16 (docs/report.md).
#   make report                       technology-independent (Yosys cmos transistor counts)
#   make report LIBERTY=path.lib.gz   + mapped area (um^2), delay (ns), energy per MAC (pJ)
#   make report-step LIBERTY=...      + the whole training step (docs/report.md, "Training step")
# Operand streams come from a tensor capture of golden training (digits, MLP,
# ibm4 recipe, a step of epoch 10), made once and reused.

LIBERTY ?=
REPORT_OUT ?= build/report
REPORT_CAPTURE ?= $(REPORT_OUT)/capture/digits-mlp-ibm4.npz
REPORT_ARGS ?=

.PHONY: report report-synthetic report-step

# remade when the golden model changes
$(REPORT_CAPTURE): $(wildcard golden/*.py golden/formats/*.py)
	$(PYTHON) -m golden.train --dataset digits --model mlp --recipe ibm4 --epochs 10 --seed 0 \
		--metrics $(@:.npz=.json) --capture $@ --capture-steps 110 --threads 1 --progress off

report: rtl $(REPORT_CAPTURE)  ## area/energy vs FP16 -> build/report/report.{json,md,html} (LIBERTY=... for um^2, pJ)
	$(PYTHON) -m report --out $(REPORT_OUT) --capture $(REPORT_CAPTURE) \
		$(if $(LIBERTY),--liberty $(LIBERTY)) $(REPORT_ARGS)

report-synthetic: rtl  ## the same report on synthetic tensors (raw float values for FP16) -> build/report-synthetic
	$(PYTHON) -m report --out build/report-synthetic $(if $(LIBERTY),--liberty $(LIBERTY)) $(REPORT_ARGS)

report-step: rtl $(REPORT_CAPTURE)  ## + the energy of the captured training step, 4-bit datapath vs FP16 (LIBERTY=... required)
	@test -n "$(LIBERTY)" || { echo "error: report-step needs LIBERTY=path.lib.gz" >&2; exit 2; }
	$(PYTHON) -m report --out $(REPORT_OUT) --capture $(REPORT_CAPTURE) --liberty $(LIBERTY) --step $(REPORT_ARGS)

.PHONY: formats-table
formats-table:  ## the side-by-side table of the 4-bit formats (accuracy, area, energy, FPGA MACs) from build/report/report.json + build/golden/accuracy/accuracy.json, into README.md and docs/formats.md
	$(PYTHON) -m report.compare --report $(REPORT_OUT)/report.json --accuracy build/golden/accuracy/accuracy.json \
		--out $(REPORT_OUT)/formats.md --update README.md --update docs/formats.md
