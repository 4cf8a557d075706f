"""Modules imported at their first use, so that importing a package does not pay for a heavy dependency.

``golden.formats`` (under ``hw.kinds``) computes with torch, but much of what
imports it never calls torch: ``python -m verify.gemm --sim verilator`` checks
and encodes its operands in numpy and runs a compiled model, and ``import
torch`` alone takes seconds (most of that command's start-up). Those modules
bind ``torch = lazy_import("torch")`` instead of ``import torch``.
"""

import importlib.util
import sys
import threading

__all__ = ["lazy_import"]

_LOCK = threading.Lock()


def lazy_import(name):
    """The module ``name``, executed at the first access to one of its attributes.

    The standard library's :class:`importlib.util.LazyLoader`: the module
    object is registered in ``sys.modules`` at once (every later ``import
    name`` returns it, and that ``import`` statement itself loads it), and
    after the load it is the ordinary module (no proxy in the way of any
    attribute access). A module already imported is returned as it is.

    Parameters
    ----------
    name : str
        An absolute module name (``"torch"``).

    Raises
    ------
    ModuleNotFoundError
        ``name`` is not installed (found now, not at its first use).
    """
    with _LOCK:
        module = sys.modules.get(name)
        if module is not None:
            return module
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
        return module
