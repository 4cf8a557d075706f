"""The ``fourbit`` command: subcommand listing, dispatch to each tool with ``prog``, exit statuses, Ctrl-C."""

import os
import signal
import subprocess
import sys
import time

import pytest

from fourbit.cli import BENCHES, COMMANDS, main
from verify.runner import REPO_ROOT

#: Every ``fourbit`` command line that runs a tool, with the prog its lines must show.
TOOLS = [([name], f"fourbit {name}") for name in COMMANDS] + [
    (["bench", name], f"fourbit bench {name}") for name in BENCHES
]


def _python(*args, **kwargs):
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, **kwargs)


def test_help_lists_every_command_without_importing_the_tools():
    script = (
        "import sys; from fourbit.cli import main; status = main(['--help']); "
        "heavy = sorted(m for m in ('torch', 'amaranth', 'numpy', 'cocotb') if m in sys.modules); "
        "print('status', status, 'heavy', heavy)"
    )
    result = _python("-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("status 0 heavy []")
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ") and line.split()}
    assert set(COMMANDS) | {"bench"} <= listed


def test_python_dash_m_fourbit_runs_the_command():
    result = _python("-m", "fourbit", "bench", "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: fourbit bench")
    assert all(name in result.stdout for name in BENCHES)


@pytest.mark.parametrize("argv,message", [([], "a command is required"), (["nope"], "unknown command 'nope'")])
def test_missing_or_unknown_command(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fourbit: error: ") and message in err
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fourbit bench: error: ")


@pytest.mark.parametrize("argv,prog", TOOLS, ids=[" ".join(argv) for argv, _ in TOOLS])
def test_each_tool_shows_fourbit_prog_in_help_and_errors(capsys, argv, prog):
    assert main([*argv, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {prog} ")
    assert main([*argv, "--no-such-option"]) == 2
    err = capsys.readouterr().err
    # golden.bench's speed/accuracy are argparse subcommands: their parent reports unknown options.
    subcommand = argv[:1] == ["bench"] and BENCHES[argv[1]].module == "golden.bench"
    prefixes = (f"{prog}: error: ", "fourbit bench: error: ") if subcommand else (f"{prog}: error: ",)
    assert err.count("\n") == 1 and err.startswith(prefixes), err


def test_subcommand_runs_the_tool_and_returns_its_status(tmp_path, capsys):
    # rtl_gen's --list runs without elaborating anything
    assert main(["rtl", "--list"]) == 0
    assert "int4_mac" in capsys.readouterr().out
    assert main(["rtl", "--set", "int4_mac.acc_width=100000", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("fourbit rtl: error: int4_mac: acc_width = 100000 is above the limit")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", [["-m", "fourbit", "train"], ["-m", "golden.train"]], ids=["fourbit", "module"])
def test_ctrl_c_is_one_line_and_status_130(tmp_path, command):
    metrics = tmp_path / "m.json"
    args = ["--dataset", "digits", "--model", "mlp", "--recipe", "fp32", "--epochs", "1000", "--seed", "0"]
    process = subprocess.Popen(
        [sys.executable, *command, *args, "--metrics", str(metrics), "--progress", "off"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait until it trains (the "training ..." line), then press Ctrl-C.
        first = process.stderr.readline()
        assert first.startswith("training mlp on digits"), first
        time.sleep(0.5)
        os.kill(process.pid, signal.SIGINT)
        _, rest = process.communicate(timeout=60)
    finally:
        process.kill()
    prog = "fourbit train" if "fourbit" in command else "golden.train"
    assert process.returncode == 130, rest
    # The epochs that finished in the half second print their progress lines (a fast machine trains
    # several); the interrupt itself is one line, with no traceback.
    *progress, last = rest.strip().splitlines()
    assert last == f"{prog}: interrupted", rest
    assert all(line.startswith("epoch ") for line in progress), rest
    assert not metrics.exists()
