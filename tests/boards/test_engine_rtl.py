"""The UART GEMM engine as `make rtl` writes it: manifest entry, determinism, lint-clean under the waivers."""

import json
import tomllib

import pytest

from report.units import discover
from rtl_gen.__main__ import main as rtl_main
from rtl_gen.lint import lint_directory
from verify.runner import REPO_ROOT


def _engine_config():
    """The gemm_engine sections of configs/default.toml (one per array kind)."""
    config = tomllib.loads((REPO_ROOT / "configs" / "default.toml").read_text())
    return {name: table for name, table in config.items() if table.get("kind") == "gemm_engine"}


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    sections = _engine_config()
    path = tmp_path_factory.mktemp("cfg") / "engines.toml"
    path.write_text(
        "".join(
            f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in table.items())
            for name, table in sections.items()
        )
    )
    out = tmp_path_factory.mktemp("rtl")
    assert rtl_main(["--config", str(path), "--out", str(out)]) == 0
    return out, sections


def test_default_config_has_an_engine_per_kind():
    assert sorted(table["pe"] for table in _engine_config().values()) == ["fp16", "int4", "log", "train"]


def test_manifest_entry(engines):
    out, sections = engines
    modules = json.loads((out / "manifest.json").read_text())["modules"]
    assert list(modules) == list(sections)
    entry = modules["int4_engine_4x4"]
    assert [(p["name"], p["direction"], p["width"]) for p in entry["ports"]] == [
        ("clk", "input", 1),
        ("rst", "input", 1),
        ("rx", "input", 1),
        ("tx", "output", 1),
    ]
    assert entry["parameters"] == {"pe": "int4", "rows": 4, "cols": 4, "divisor": 104, "depth": 256}
    # The array takes UINT4 x UINT4 too: products up to 225, 2**23 // 225 = 37282.
    assert entry["max_k_no_overflow"] == 2**23 // 225 and entry["latency"] is None
    # INFO: status 0, "F4", version 1, kind 0, rows 4, cols 4, acc 24 bits, depth 256.
    assert bytes.fromhex(entry["info_reply"]) == bytes([0, 0x46, 0x34, 1, 0, 4, 0, 4, 0, 24, 0, 1])
    assert modules["fp16_engine_2x2"]["max_k_no_overflow"] is None


def test_lint_clean(engines):
    out, sections = engines
    assert lint_directory(out) == {name: [] for name in sections}


def test_report_does_not_take_an_engine_for_an_array(engines):
    units, problems = discover(str(engines[0]))
    assert not problems
    assert all(unit.array is None and not unit.workloads for unit in units)
