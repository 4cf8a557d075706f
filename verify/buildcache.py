"""A simulator build cached in a directory, keyed by a stamp, safe across processes.

``verify.gemm`` and ``verify.cosim`` compile Verilator/Icarus models that
parallel test workers share: the directory's lock serializes builders, and the
stamp (a fingerprint of everything the build derives from) is written only
after a build completes, so a half-built tree is never taken for a cached one.
"""

import contextlib
import fcntl
import pathlib

__all__ = ["cached_build"]


@contextlib.contextmanager
def cached_build(directory, stamp):
    """Hold ``directory``'s lock; yield True when the build must be made.

    Yields False on a cache hit (the stored stamp equals ``stamp``). On a
    miss the old stamp is removed first and ``stamp`` is recorded when the
    block completes without an exception.

    Parameters
    ----------
    directory : path-like
        Build directory (created if missing).
    stamp : str
        Fingerprint of the build's inputs.
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp_file = directory / "stamp"
        if stamp_file.exists() and stamp_file.read_text() == stamp:
            yield False
            return
        stamp_file.unlink(missing_ok=True)
        yield True
        stamp_file.write_text(stamp)
