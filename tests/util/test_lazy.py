"""fourbit.util.lazy: modules executed at their first use (torch under hw.kinds)."""

import subprocess
import sys
import textwrap

import pytest

from fourbit.util.lazy import lazy_import


def test_module_runs_at_first_attribute_access(tmp_path, monkeypatch):
    (tmp_path / "lazy_probe.py").write_text(
        "import sys\nsys.lazy_probe_runs = getattr(sys, 'lazy_probe_runs', 0) + 1\nVALUE = 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_probe", raising=False)
    monkeypatch.setattr(sys, "lazy_probe_runs", 0, raising=False)
    module = lazy_import("lazy_probe")
    try:
        assert sys.lazy_probe_runs == 0
        assert sys.modules["lazy_probe"] is module
        assert lazy_import("lazy_probe") is module
        assert module.VALUE == 42
        assert sys.lazy_probe_runs == 1
        assert module.VALUE == 42
        assert sys.lazy_probe_runs == 1
    finally:
        sys.modules.pop("lazy_probe", None)


def test_imported_module_is_returned_as_is():
    assert lazy_import("json") is __import__("json")


def test_missing_module_fails_at_once():
    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        lazy_import("no_such_module_here")


def test_native_gemm_path_loads_no_torch():
    """What python -m verify.gemm --sim verilator runs in Python (all but the compiled model) executes no torch."""
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from verify import gemm, native
        from hw import tiling
        from hw.kinds import get_gemm, get_kind

        a = np.arange(-8, 8).reshape(4, 4)
        int4 = get_gemm("int4")
        a_bits, b_bits = int4.operand_bits(a, a.T.copy())
        plan = tiling.schedule(a_bits, b_bits, 2, 2)
        tiling.pack_rows(plan.a_words, 4)
        int4.decode(np.zeros((4, 4), dtype=np.uint64), 24)
        get_kind("int4").mode_inputs("int4")
        gemm.ArrayBuild(kind="int4", rows=2, cols=2, acc_width=24, sim="verilator").hdl.is_cached()
        print("torch._C" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
