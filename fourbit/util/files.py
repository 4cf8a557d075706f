"""Atomic file output for every command-line tool of the project.

A tool writes each output to a temporary name beside it and renames it into
place, so an interrupted or failed run never leaves a half-written file. It
lives in :mod:`fourbit.util`, the bottom layer, so that every package may use it.
"""

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomically", "write_text_atomically"]


def write_atomically(path, write, *, suffix=".tmp", make_parents=False):
    """Produce ``path`` by calling ``write(temporary_path)``, then renaming the temporary into place.

    Parameters
    ----------
    path : str or os.PathLike
        The file to produce.
    write : callable
        Called with the temporary path (a ``str``) to write the content there.
    suffix : str
        Ending of the temporary name; writers that append their own extension
        (``numpy.save``, ``numpy.savez``) need theirs here (``".tmp.npy"``).
    make_parents : bool
        Create missing parent directories first.

    The file ends up readable by all (mode 0644, as ``open`` would make it);
    on any error, including ``KeyboardInterrupt``, the temporary is removed.
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomically(path, text, *, make_parents=False):
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` with :func:`write_atomically`."""
    write_atomically(
        path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline="\n"), make_parents=make_parents
    )
