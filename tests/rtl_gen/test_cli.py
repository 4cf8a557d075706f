"""``python -m rtl_gen``: outputs, manifest, determinism, errors, lint."""

import json
import os
import subprocess
import sys

import pytest

from rtl_gen.__main__ import main
from rtl_gen.lint import lint_directory, lint_file
from verify.runner import REPO_ROOT

#: The three SPEC section 3 tops at their defaults (what `make rtl` writes for them).
PE_CONFIG = """
[int4_mac]
acc_width = 24
[log_mac]
acc_width = 32
[fp16_mac]
pipeline = 0
"""

SPEC_PORTS = {
    "int4_mac": [
        ("clk", "input", 1),
        ("rst", "input", 1),
        ("a", "input", 4),
        ("b", "input", 4),
        ("a_signed", "input", 1),
        ("valid", "input", 1),
        ("clear", "input", 1),
        ("acc", "output", 24),
    ],
    "log_mac": [
        ("clk", "input", 1),
        ("rst", "input", 1),
        ("x", "input", 4),
        ("x_signed", "input", 1),
        ("g", "input", 4),
        ("valid", "input", 1),
        ("clear", "input", 1),
        ("acc", "output", 32),
    ],
    "fp16_mac": [
        ("clk", "input", 1),
        ("rst", "input", 1),
        ("a", "input", 16),
        ("b", "input", 16),
        ("valid", "input", 1),
        ("clear", "input", 1),
        ("acc", "output", 32),
    ],
}


@pytest.fixture(scope="module")
def pe_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "pe.toml"
    path.write_text(PE_CONFIG)
    return path


@pytest.fixture(scope="module")
def generated(tmp_path_factory, pe_config):
    out = tmp_path_factory.mktemp("rtl")
    assert main(["--config", str(pe_config), "--out", str(out)]) == 0
    return out


def _cli(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "rtl_gen", *args], cwd=REPO_ROOT, capture_output=True, text=True, **kwargs
    )


def test_help():
    result = _cli("--help")
    assert result.returncode == 0
    assert "--config" in result.stdout and "--set" in result.stdout


def test_outputs_and_manifest(generated):
    assert sorted(p.name for p in generated.iterdir()) == ["fp16_mac.v", "int4_mac.v", "log_mac.v", "manifest.json"]
    manifest = json.loads((generated / "manifest.json").read_text())
    modules = manifest["modules"]
    assert list(modules) == ["int4_mac", "log_mac", "fp16_mac"]
    for name, ports in SPEC_PORTS.items():
        entry = modules[name]
        assert [(p["name"], p["direction"], p["width"]) for p in entry["ports"]] == ports
        assert entry["latency"] == 1
        assert f"module {name}(" in (generated / entry["file"]).read_text()
    assert modules["int4_mac"]["max_k_no_overflow"] == 69905
    assert modules["log_mac"]["max_k_no_overflow"] == 34952
    assert modules["fp16_mac"]["max_k_no_overflow"] is None
    assert modules["int4_mac"]["parameters"] == {"acc_width": 24, "pipeline": 0, "min_k": 1}


def test_verilog_port_declarations(generated):
    for name, ports in SPEC_PORTS.items():
        text = (generated / f"{name}.v").read_text()
        for port, direction, width in ports:
            decl = f"{direction} [{width - 1}:0] {port};" if width > 1 else f"{direction} {port};"
            assert decl in text, f"{name}: missing `{decl}`"
        assert "(* src" not in text and "/work" not in text  # emit_src=False: no paths


def test_byte_identical_across_runs(tmp_path, pe_config):
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        env = dict(os.environ, PYTHONHASHSEED=seed)
        result = _cli("--config", str(pe_config), "--out", str(out), env=env)
        assert result.returncode == 0, result.stderr
        outputs.append({p.name: p.read_bytes() for p in out.iterdir()})
    assert outputs[0] == outputs[1]


def test_overrides_and_pipelined_variant(tmp_path, pe_config):
    out = tmp_path / "o"
    assert (
        main(
            [
                "--config",
                str(pe_config),
                "--out",
                str(out),
                "--only",
                "int4_mac",
                "--set",
                "int4_mac.acc_width=32",
                "--set",
                "int4_mac.pipeline=1",
            ]
        )
        == 0
    )
    entry = json.loads((out / "manifest.json").read_text())["modules"]["int4_mac"]
    assert entry["latency"] == 2
    assert entry["parameters"]["acc_width"] == 32
    assert entry["max_k_no_overflow"] == 2**31 // 120
    assert sorted(p.name for p in out.iterdir()) == ["int4_mac.v", "manifest.json"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--set", 'int4_mac.kind="int9_mac"'], "unknown unit kind 'int9_mac'"),
        (["--set", "int4_mac.acc_width=0"], "acc_width must be >= 1"),
        (["--set", "log_mac.acc_width=-4"], "acc_width must be >= 1"),
        (["--set", "int4_mac.min_k=100000"], "holds at most 69905 products"),
        (["--set", "fp16_mac.pipeline=-1"], "pipeline must be >= 0"),
        (["--set", 'int4_mac.acc_width="wide"'], "acc_width must be an integer"),
        (["--set", "int4_mac.depth=3"], "unknown parameter(s) depth"),
        (["--set", "nosuch.acc_width=3"], "unknown design 'nosuch'"),
        (["--set", "int4_mac"], "not NAME.PARAM=VALUE"),
        (["--only", "nosuch"], "unknown design(s) nosuch"),
    ],
)
def test_bad_parameters(tmp_path, capsys, pe_config, args, message):
    out = tmp_path / "out"
    assert main(["--config", str(pe_config), "--out", str(out), *args]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rtl_gen: error: ")
    assert message in err
    assert not out.exists() or not any(out.iterdir()), "partial files left behind"


def test_bad_config_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[int4_mac\nacc_width = 1\n")
    assert main(["--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "invalid TOML" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_cli_error_exit_status(tmp_path):
    result = _cli("--set", "int4_mac.acc_width=0", "--out", str(tmp_path / "o"))
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "acc_width" in result.stderr
    assert not (tmp_path / "o").exists()


def test_lint_clean(generated):
    results = lint_directory(generated)
    assert results == {"int4_mac": [], "log_mac": [], "fp16_mac": []}


def test_lint_catches_unwaived_warning(tmp_path):
    bad = tmp_path / "bad.v"
    bad.write_text(
        "module bad(input clk, output reg q);\n  wire spare = ~clk;\n  always @(posedge clk) q = ~q;\nendmodule\n"
    )
    diagnostics = lint_file(bad, "bad")
    assert any("UNUSEDSIGNAL" in line and "'spare'" in line for line in diagnostics)
    assert any("BLKSEQ" in line for line in diagnostics)


# -- limits and --only (issue 13) -------------------------------------------------------------------


@pytest.mark.parametrize("override", ["int4_mac.acc_width=100000", "log_mac.acc_width=129"])
def test_width_above_the_limit_refused_before_elaborating(tmp_path, capsys, pe_config, override):
    out = tmp_path / "out"
    assert main(["--config", str(pe_config), "--out", str(out), "--set", override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rtl_gen: error: ")
    assert "above the limit of 128 bits" in err and "Amaranth" in err
    assert not out.exists()


def test_only_updates_the_manifest_instead_of_replacing_it(tmp_path, pe_config):
    out = tmp_path / "o"
    assert main(["--config", str(pe_config), "--out", str(out)]) == 0
    before = json.loads((out / "manifest.json").read_text())["modules"]
    args = ["--config", str(pe_config), "--out", str(out), "--only", "log_mac", "--set", "log_mac.acc_width=40"]
    assert main(args) == 0
    after = json.loads((out / "manifest.json").read_text())["modules"]
    assert list(after) == ["int4_mac", "log_mac", "fp16_mac"], "--only shrank the manifest"
    assert after["int4_mac"] == before["int4_mac"] and after["fp16_mac"] == before["fp16_mac"]
    assert after["log_mac"]["parameters"]["acc_width"] == 40
    # lint reads what the manifest lists: every module, not just the last one generated
    assert set(lint_directory(out)) == {"int4_mac", "log_mac", "fp16_mac"}


def test_only_refuses_an_unreadable_manifest(tmp_path, capsys, pe_config):
    out = tmp_path / "o"
    out.mkdir()
    (out / "manifest.json").write_text("not json")
    assert main(["--config", str(pe_config), "--out", str(out), "--only", "int4_mac"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read the existing" in err
    assert (out / "manifest.json").read_text() == "not json" and not (out / "int4_mac.v").exists()
