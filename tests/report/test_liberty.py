"""Liberty reading, cell models of Liberty functions, the dont_use working copy, bad input."""

import gzip
import itertools
import re

import numpy as np
import pytest

from report.gatesim import simulate
from report.liberty import LibertyError, Library

from .conftest import need

SMALL_LIB = """library (tiny) {
  time_unit : "1ns";
  leakage_power_unit : "1nW";
  capacitive_load_unit(1, "ff");
  nom_voltage : 1.2;
  cell ("tiny__nand2_1") {
    area : 4.5;
    cell_leakage_power : 2.0;
    pin ("A") { direction : "input"; capacitance : 1.5; }
    pin ("B") { direction : "input"; capacitance : 2.5; }
    pin ("Y") { direction : "output"; function : "!(A B)";
      internal_power () { related_pin : "A";
        rise_power (scalar) { values ("3.0"); }
        fall_power (scalar) { values ("1.0"); } } }
  }
  cell ("tiny__sdf_1") {
    area : 9.0;
    pin ("D") { direction : "input"; capacitance : 1.0; }
  }
}
"""


FUNCTIONS = [
    ("(A&B) | (!C)", lambda A, B, C: (A and B) or not C),
    ("A B + C'", lambda A, B, C: (A and B) or not C),
    ("!(A*B) ^ C", lambda A, B, C: (not (A and B)) != C),
    ("(A&!B&!C) | (!A&B&!C) | (!A&!B&C) | (A&B&C)", lambda A, B, C: (A + B + C) % 2 == 1),
    ("(A&!C) | (B&C)", lambda A, B, C: B if C else A),
]


def test_cell_models_follow_liberty_functions(tmp_path):
    """Yosys's read_liberty models, simulated by Icarus, compute the Liberty ``function`` of each output."""
    need("iverilog")
    cells = "".join(
        f'  cell ("tiny__f{k}") {{ area : 1.0;\n'
        + "".join(f'    pin ("{p}") {{ direction : "input"; capacitance : 1.0; }}\n' for p in "ABC")
        + f'    pin ("Y") {{ direction : "output"; function : "{expr}"; }}\n  }}\n'
        for k, (expr, _) in enumerate(FUNCTIONS)
    )
    path = tmp_path / "functions.lib"
    path.write_text(SMALL_LIB.rstrip()[:-1] + cells + "}\n")
    lib = Library(path)
    ports = {p: {"direction": "input", "bits": [2 + i]} for i, p in enumerate("abc")}
    ports.update({f"y{k}": {"direction": "output", "bits": [10 + k]} for k in range(len(FUNCTIONS))})
    net = {
        "ports": ports,
        "cells": {
            f"u{k}": {"type": f"tiny__f{k}", "connections": {"A": [2], "B": [3], "C": [4], "Y": [10 + k]}}
            for k in range(len(FUNCTIONS))
        },
    }
    rows = np.array(list(itertools.product((0, 1), repeat=3)) * 2)
    t = simulate(net, "functions", lib, [("a", 1), ("b", 1), ("c", 1)], rows, warmup=2)
    for k, (expr, truth) in enumerate(FUNCTIONS):
        # the sample before row i + 1 shows row i's value
        assert t.outputs[f"y{k}"][1:] == [int(truth(*map(bool, r))) for r in rows[:-1]], expr


def test_unparsable_cell_is_a_liberty_error(tmp_path):
    path = tmp_path / "bad_cell.lib"
    path.write_text(SMALL_LIB.replace("area : 4.5;", "area : 4.5 : 3 (;"))
    lib = Library(path)
    with pytest.raises(LibertyError, match="cannot parse cell tiny__nand2_1"):
        lib.cell("tiny__nand2_1")


def test_small_library_units_and_cells(tmp_path):
    path = tmp_path / "tiny.lib.gz"
    path.write_bytes(gzip.compress(SMALL_LIB.encode()))
    lib = Library(path)
    assert (lib.name, lib.voltage, lib.cap_unit_pf, lib.time_unit_ns) == ("tiny", 1.2, 1e-3, 1.0)
    nand = lib.cell("tiny__nand2_1")
    assert nand.area == 4.5 and nand.leakage == 2.0 and not nand.is_sequential
    assert nand.pins["B"].capacitance == pytest.approx(2.5e-3)  # fF -> pF
    arc = nand.pins["Y"].power[0]
    # energies are in cap unit * V^2: fF * V^2 = 1e-3 pJ
    assert arc.rise.lookup(transition=0.1, load=0.01) == pytest.approx(3e-3)
    assert arc.fall.lookup() == pytest.approx(1e-3)
    assert lib.wire_cap(3) == 0.0  # no wire-load model
    with pytest.raises(KeyError):
        lib.cell("tiny__nor2_1")


def test_working_copy_marks_excluded_cells(tmp_path, sky130):
    tiny = tmp_path / "tiny.lib"
    tiny.write_text(SMALL_LIB)
    work = tmp_path / "work.lib"
    assert Library(tiny).write_working_copy(str(work)) == ["tiny__sdf_1"]
    relib = Library(work)
    assert relib.cell("tiny__sdf_1").dont_use and not relib.cell("tiny__nand2_1").dont_use
    marked = sky130.write_working_copy(str(tmp_path / "sky.lib"))
    assert marked and all(re.search(r"__(lpflow_|probe_|dly|clkdly|sdf)", n) for n in marked)
    assert "sky130_fd_sc_hd__dfxtp_1" not in marked and "sky130_fd_sc_hd__inv_1" not in marked


def test_missing_and_unreadable_liberty(tmp_path):
    with pytest.raises(LibertyError, match="not found"):
        Library(tmp_path / "nope.lib")
    bad_gz = tmp_path / "bad.lib.gz"
    bad_gz.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(LibertyError, match="cannot read"):
        Library(bad_gz)
    text = tmp_path / "notlib.lib"
    text.write_text("module x; endmodule\n")
    with pytest.raises(LibertyError, match="not a Liberty"):
        Library(text)
    directory = tmp_path / "dir.lib"
    directory.mkdir()
    with pytest.raises(LibertyError):
        Library(directory)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_liberty_is_refused(tmp_path, compress):
    """Half a library (an interrupted copy) is refused up front instead of sending Yosys out of memory."""
    half = SMALL_LIB[: len(SMALL_LIB) // 2]
    path = tmp_path / ("half.lib.gz" if compress else "half.lib")
    path.write_bytes(gzip.compress(half.encode()) if compress else half.encode())
    with pytest.raises(LibertyError, match="incomplete"):
        Library(path)
    # Closing every cell but not the library is still incomplete.
    unclosed = tmp_path / "unclosed.lib"
    unclosed.write_text(SMALL_LIB.rstrip()[:-1])
    with pytest.raises(LibertyError, match="incomplete"):
        Library(unclosed)


def test_braces_in_strings_and_comments_do_not_count(tmp_path):
    path = tmp_path / "quoted.lib"
    path.write_text(SMALL_LIB.replace("nom_voltage : 1.2;", 'nom_voltage : 1.2; /* { */ comment : "}}";'))
    assert Library(path).name == "tiny"
