"""The layer contract (pyproject.toml, import-linter) holds, and it would catch a new cycle."""

import pathlib
import subprocess
import sys
import tomllib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
LINT_IMPORTS = pathlib.Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd, config=None):
    command = [str(LINT_IMPORTS), "--no-cache"] + (["--config", str(config)] if config else [])
    env = {"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(cwd)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_the_layer_contract():
    result = _lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_contract_catches_an_upward_import(tmp_path):
    """The same contract on a miniature tree in which golden imports hw: broken."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    for package in config["root_packages"]:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "fourbit" / "util").mkdir()
    (tmp_path / "fourbit" / "util" / "__init__.py").write_text("")
    (tmp_path / "fourbit" / "cli.py").write_text("import boards\n")
    (tmp_path / "hw" / "array.py").write_text("import golden\n")
    (tmp_path / "golden" / "train.py").write_text("import hw.array\n")  # the cycle
    contract = config["contracts"][0]
    layers = ", ".join(f'"{layer}"' for layer in contract["layers"])
    packages = ", ".join(f'"{p}"' for p in config["root_packages"])
    (tmp_path / "lint.toml").write_text(
        f"[tool.importlinter]\nroot_packages = [{packages}]\n\n"
        f'[[tool.importlinter.contracts]]\nname = "layers"\ntype = "layers"\nlayers = [{layers}]\n'
    )
    result = _lint_imports(tmp_path, tmp_path / "lint.toml")
    assert result.returncode != 0
    assert "golden.train -> hw.array" in result.stdout
