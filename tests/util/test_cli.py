"""fourbit.util.cli: checked types with bounds, the up-front output-path check, run_main."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from fourbit.util.cli import (
    INTERRUPTED_STATUS,
    OneLineParser,
    bounded_int,
    check_output_file,
    run_main,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_bounded_int_names_the_limit_and_its_reason():
    side = bounded_int(1, 64, "elaboration takes too long")
    assert side("64") == 64
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected a positive integer, not '0'$"):
        side("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^65 is above the limit of 64: elaboration takes too long$"):
        side("65")


def test_parser_error_is_one_line_exit_2(capsys):
    parser = OneLineParser(prog="fourbit gemm")
    parser.add_argument("--rows", type=bounded_int(1, 4, "why"), required=True)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--rows", "5"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "fourbit gemm: error: argument --rows: 5 is above the limit of 4: why\n"


def test_check_output_file(tmp_path):
    assert check_output_file(tmp_path / "c.npy", "--out") is None
    assert check_output_file(tmp_path, "--out") == f"--out {tmp_path} is a directory, not a file"
    missing = tmp_path / "no" / "c.npy"
    assert check_output_file(missing, "--out") == f"--out {missing}: directory {tmp_path / 'no'} does not exist"
    # tools that create parent directories only need no plain file in the way
    assert check_output_file(missing, "--metrics", make_parents=True) is None
    (tmp_path / "file").write_text("")
    blocked = tmp_path / "file" / "sub" / "m.json"
    assert check_output_file(blocked, "--metrics", make_parents=True) == (
        f"--metrics {blocked}: {tmp_path / 'file'} is not a directory"
    )


def test_run_main_turns_ctrl_c_into_one_line_and_130(capsys):
    def interrupted(argv, prog=None):
        raise KeyboardInterrupt

    assert run_main(interrupted, "verify.gemm", []) == INTERRUPTED_STATUS == 130
    assert capsys.readouterr().err == "verify.gemm: interrupted\n"
    assert run_main(lambda argv, prog=None: 3, "x", [], prog="y") == 3


def test_ctrl_c_inside_exec_of_a_string_still_exits_130():
    # A Ctrl-C that lands in code run by exec() of a string (dataclasses builds its methods
    # that way; torch's lazy torch._dynamo import runs many) sets CPython's "unhandled
    # KeyboardInterrupt" flag, and the interpreter then dies by SIGINT (status -2) whatever
    # status it returns. run_main must clear it. The flag is readable on CPython <= 3.11.
    probe = (
        "import ctypes, sys\n"
        "from fourbit.util.cli import run_main\n"
        "try:\n"
        "    flag = ctypes.c_int.in_dll(ctypes.pythonapi, '_Py_UnhandledKeyboardInterrupt')\n"
        "except (ValueError, AttributeError):\n"
        "    flag = None\n"
        "def main(argv):\n"
        "    exec('raise KeyboardInterrupt')\n"
        "status = run_main(main, 'probe', [])\n"
        "print(status, 'unknown' if flag is None else flag.value)\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.stderr == "probe: interrupted\n"
    status, flag = done.stdout.split()
    if flag == "unknown":
        pytest.skip("this Python does not export _Py_UnhandledKeyboardInterrupt")
    assert (done.returncode, status, flag) == (130, "130", "0")
