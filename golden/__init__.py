"""The golden model: bit-exact number formats, exact GEMM references and 4-bit training in PyTorch.

``golden`` knows nothing of the hardware. Its arithmetic is defined to be the
hardware's, so the RTL is checked against it bit for bit.
"""
