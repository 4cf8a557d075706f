"""Atomic file output for every command-line tool of the project.

A tool writes each output to a temporary name beside it and renames it into
place, so an interrupted or failed run never leaves a half-written file.
:func:`write_files_atomically` does the same for a set of files that belong
together (Verilog and its manifest): every temporary is written before the
first rename, so a failure while writing leaves all the old files. It lives in
:mod:`fourbit.util`, the bottom layer, so that every package may use it.
"""

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomically", "write_text_atomically", "write_files_atomically"]


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


def write_files_atomically(directory, files, *, make_parents=False):
    """Write ``{name: text}`` under ``directory`` as one: every temporary first, then the renames.

    Parameters
    ----------
    directory : str or os.PathLike
        Where the files go.
    files : dict of str to str
        File name (relative to ``directory``) to its text (UTF-8, ``\\n`` line ends).
    make_parents : bool
        Create ``directory`` (and its parents) first.

    Returns
    -------
    list of pathlib.Path
        The files written, in the order of ``files``.

    Every file ends up mode 0644. An error (``KeyboardInterrupt`` included)
    while writing the temporaries leaves every old file as it was and no
    temporary; the renames that follow are quick and need no space.
    """
    directory = Path(directory)
    if make_parents:
        directory.mkdir(parents=True, exist_ok=True)
    temporaries = []
    try:
        for name, text in files.items():
            final = directory / name
            fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
            temporaries.append((tmp, final))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            os.chmod(tmp, 0o644)
        for tmp, final in temporaries:
            os.replace(tmp, final)
    finally:
        for tmp, _ in temporaries:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return [final for _, final in temporaries]
