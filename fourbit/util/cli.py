"""argparse pieces shared by every fourbit command-line tool and by the ``fourbit`` command.

- :class:`OneLineParser`: usage errors are one line, ``<prog>: error: ...``, exit status 2;
- :func:`positive_int`, :func:`non_negative_int`, :func:`bit_flag`, :func:`bounded_int`:
  checked argument types (a bound comes with its reason, shown in the error);
- :func:`check_output_file`: the up-front check of an output path (``--out``,
  ``--metrics``, ``--capture``, ``--report``), made before any long work;
- :func:`run_main`: the wrapper of every ``if __name__ == "__main__"`` block:
  Ctrl-C becomes one line, ``<prog>: interrupted``, and exit status 130.

No domain code lives here: this module imports nothing from the project.
"""

import argparse
import os
import pathlib
import signal
import sys
import threading

__all__ = [
    "OneLineParser",
    "positive_int",
    "non_negative_int",
    "bit_flag",
    "bounded_int",
    "check_output_file",
    "run_main",
    "INTERRUPTED_STATUS",
]

#: Exit status after Ctrl-C: 128 + SIGINT, what shells report for a process killed by it.
INTERRUPTED_STATUS = 130


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, ``<prefix>: error: ...``, exit 2.

    Parameters
    ----------
    error_prefix : str, optional
        Prefix of error lines (default: ``prog``).
    """

    def __init__(self, *args, error_prefix=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.error_prefix = error_prefix or self.prog

    def error(self, message):
        self.exit(2, f"{self.error_prefix}: error: {message}\n")


def _integer(text, minimum, what):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}")
    return value


def positive_int(text):
    """argparse type: an integer >= 1."""
    return _integer(text, 1, "a positive integer")


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    return _integer(text, 0, "a non-negative integer")


def bit_flag(text):
    """argparse type: ``0`` or ``1``, as a bool."""
    if text not in ("0", "1"):
        raise argparse.ArgumentTypeError(f"expected 0 or 1, not {text!r}")
    return text == "1"


def bounded_int(minimum, maximum, reason):
    """argparse type factory: an integer in ``minimum..maximum``.

    Parameters
    ----------
    minimum, maximum : int
        The accepted range, both included.
    reason : str
        Why ``maximum`` is the limit; part of the error message.

    Returns
    -------
    callable
        The argparse ``type``.
    """

    def parse(text):
        what = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
        value = _integer(text, minimum, what)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is above the limit of {maximum}: {reason}")
        return value

    parse.__name__ = f"integer {minimum}..{maximum}"
    return parse


def check_output_file(path, option, *, make_parents=False):
    """Refuse an output file path that cannot be written, before any long work.

    Parameters
    ----------
    path : str or os.PathLike
        The file the tool will write.
    option : str
        The option that named it (``"--out"``), for the message.
    make_parents : bool
        The tool creates missing parent directories itself: then a missing
        parent is fine, as long as no existing ancestor is a plain file.

    Returns
    -------
    str or None
        The one-line reason the path is refused, or None when it is fine.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        return f"{option} {path} is a directory, not a file"
    parent = path.parent
    if make_parents:
        ancestor = parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if ancestor.exists() and not ancestor.is_dir():
            return f"{option} {path}: {ancestor} is not a directory"
        if ancestor.is_dir() and not os.access(ancestor, os.W_OK):
            return f"{option} {path}: directory {ancestor} is not writable"
        return None
    if not parent.is_dir():
        return f"{option} {path}: directory {parent} does not exist"
    if not os.access(parent, os.W_OK):
        return f"{option} {path}: directory {parent} is not writable"
    return None


def run_main(main, name, argv=None, **kwargs):
    """Run a tool's ``main(argv, **kwargs)`` and return its exit status, Ctrl-C included.

    Parameters
    ----------
    main : callable
        The tool's entry point; returns its exit status.
    name : str
        Prefix of the line printed on Ctrl-C (``verify.gemm``, ``fourbit gemm``).
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``, as ``main`` reads them).
    **kwargs
        Passed on to ``main``.

    Returns
    -------
    int
        ``main``'s status; 130 after ``KeyboardInterrupt``, with one line,
        ``<name>: interrupted``, on stderr instead of a traceback.
    """
    # Ctrl-C must reach the tool as KeyboardInterrupt, whatever handler the
    # process inherited or a library installed before this point.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return main(argv, **kwargs)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr, flush=True)
        _forget_unhandled_interrupt()
        return INTERRUPTED_STATUS


def _forget_unhandled_interrupt():
    """Clear CPython's record of an uncaught Ctrl-C, so that the exit status stays :data:`INTERRUPTED_STATUS`.

    When a ``KeyboardInterrupt`` leaves code that runs through ``exec`` of a
    string (``dataclasses`` builds every ``__init__``/``__eq__`` that way, so a
    Ctrl-C during a lazy import such as torch's first ``torch._dynamo`` import
    lands there), CPython sets its "unhandled KeyboardInterrupt" flag even though
    the exception is caught further out, and at exit the interpreter kills
    itself with SIGINT (status -2) instead of exiting with the status returned.
    Every ``exec`` of a string clears the flag before it runs its code, so an
    empty one clears it portably.
    """
    exec("")
