"""FPGA builds of fourbit designs for open boards (iCE40, ECP5) with the YoWASP tools."""
