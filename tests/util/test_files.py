"""fourbit.util.files: the atomic writers every command-line tool uses."""

import os
import stat

import numpy as np
import pytest

from fourbit.util.files import write_atomically, write_files_atomically, write_text_atomically


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


def test_files_land_together_readable_by_all(tmp_path):
    (tmp_path / "manifest.json").write_text("old")
    written = write_files_atomically(tmp_path, {"a.v": "module a;\n", "manifest.json": "{}\n"})
    assert written == [tmp_path / "a.v", tmp_path / "manifest.json"]
    assert (tmp_path / "a.v").read_bytes() == b"module a;\n"
    assert (tmp_path / "manifest.json").read_bytes() == b"{}\n"
    assert all(_mode(path) == 0o644 for path in written)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.v", "manifest.json"]


def test_failure_among_files_leaves_every_old_file_and_no_temporary(tmp_path, monkeypatch):
    (tmp_path / "a.v").write_text("old a")
    (tmp_path / "manifest.json").write_text("old manifest")
    real_fdopen, calls = os.fdopen, []

    def interrupted_on_second(fd, *args, **kwargs):
        """Ctrl-C as the second temporary is opened, the first one written."""
        calls.append(fd)
        if len(calls) == 2:
            os.close(fd)
            raise KeyboardInterrupt
        return real_fdopen(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", interrupted_on_second)
    with pytest.raises(KeyboardInterrupt):
        write_files_atomically(tmp_path, {"a.v": "new a", "manifest.json": "new manifest"})
    monkeypatch.undo()
    assert (tmp_path / "a.v").read_text() == "old a"
    assert (tmp_path / "manifest.json").read_text() == "old manifest"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.v", "manifest.json"]


def test_files_make_their_directory_only_when_asked(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_files_atomically(tmp_path / "rtl", {"a.v": ""})
    write_files_atomically(tmp_path / "rtl", {"a.v": ""}, make_parents=True)
    assert (tmp_path / "rtl" / "a.v").read_text() == ""
