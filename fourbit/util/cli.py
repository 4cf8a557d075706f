"""argparse pieces shared by fourbit's command-line tools (``verify.gemm``,
``verify.cosim``, ``boards.synth``, ``boards.host``): one-line errors with exit
status 2, and checked integer and flag arguments."""

import argparse

__all__ = ["OneLineParser", "positive_int", "non_negative_int", "bit_flag"]


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
