"""Area and power reports: Yosys synthesis and switching-activity energy of fourbit units against FP16."""
