"""cocotb testbenches and runners that check the generated RTL against :mod:`golden` bit for bit."""
