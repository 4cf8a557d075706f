"""fourbit.util.files: the atomic writer every command-line tool uses."""

import stat

import numpy as np
import pytest

from fourbit.util.files import write_atomically, write_text_atomically


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_text_lands_whole_and_readable_by_all(tmp_path):
    target = tmp_path / "report.json"
    write_text_atomically(target, "{}\n")
    assert target.read_bytes() == b"{}\n"
    assert _mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_failed_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def half_then_fail(tmp):
        with open(tmp, "w") as handle:
            handle.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, half_then_fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_numpy_writer_keeps_its_extension_on_the_temporary(tmp_path):
    target = tmp_path / "c.npy"
    matrix = np.arange(6, dtype=np.int64).reshape(2, 3)
    write_atomically(target, lambda tmp: np.save(tmp, matrix), suffix=".tmp.npy")
    assert np.array_equal(np.load(target), matrix)
    assert [p.name for p in tmp_path.iterdir()] == ["c.npy"]


def test_parents_are_made_only_when_asked(tmp_path):
    nested = tmp_path / "a" / "b" / "m.json"
    with pytest.raises(FileNotFoundError):
        write_text_atomically(nested, "x")
    write_text_atomically(nested, "x", make_parents=True)
    assert nested.read_text() == "x"
