"""The board builds as ``dask.distributed`` tasks: a local cluster or an existing scheduler.

:func:`connect` gives a :class:`distributed.Client`: on a ``LocalCluster``
sized to this machine by default (one single-threaded worker process per
CPU, each running one build at a time), or on the scheduler at ``--scheduler
tcp://HOST:PORT`` (else ``DASK_SCHEDULER_ADDRESS``). A task is
:func:`boards.synth.execute` on a :class:`boards.synth.BuildJob`: the job
carries the elaborated design (Amaranth's build plan: RTLIL, constraints,
script), not a path, so a worker on another machine needs only the project's
Python environment (``make setup``: fourbit and the YoWASP tools), and the
outcome carries the logs, nextpnr's report and the bitstream back, which the
client writes under its build directory (:func:`boards.synth.finish`).
"""

import contextlib
import logging
import os
import signal
import threading

__all__ = [
    "ClusterError",
    "connect",
    "check_scheduler",
    "scheduler_address",
    "add_cluster_options",
    "CONNECT_TIMEOUT_S",
]

#: How long to wait for an existing scheduler before giving up.
CONNECT_TIMEOUT_S = 10


class ClusterError(RuntimeError):
    """No cluster to run on: a bad or unreachable scheduler address (one line)."""


def scheduler_address(option=None):
    """The scheduler to use: ``option``, else ``DASK_SCHEDULER_ADDRESS``, else None (a local cluster)."""
    return option or os.environ.get("DASK_SCHEDULER_ADDRESS") or None


def add_cluster_options(parser):
    """``--scheduler`` and ``--workers`` on an argparse parser."""
    from fourbit.util.cli import positive_int

    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="tcp://HOST:PORT",
        help="run the builds on this dask scheduler (default: $DASK_SCHEDULER_ADDRESS, else a local cluster)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="worker processes of the local cluster (default: one per CPU)",
    )


def check_scheduler(scheduler=None, *, workers=None):
    """Refuse a malformed scheduler address, or ``workers`` with a scheduler, before any work.

    Raises :class:`ClusterError`.
    """
    address = scheduler_address(scheduler)
    if address is not None:
        if workers is not None:
            raise ClusterError("--workers sizes a local cluster; an existing scheduler has its own workers")
        _check_address(address)


@contextlib.contextmanager
def connect(scheduler=None, *, workers=None, timeout_s=None):
    """A :class:`distributed.Client` for the builds, closed (and a local cluster shut down) on exit.

    Parameters
    ----------
    scheduler : str, optional
        Address of an existing scheduler (``tcp://HOST:PORT``); default
        :func:`scheduler_address`, else a ``LocalCluster``.
    workers : int, optional
        Worker processes of the local cluster (default ``os.cpu_count()``);
        refused with a scheduler (its workers are its own).
    timeout_s : float, optional
        How long to wait for the scheduler (default :data:`CONNECT_TIMEOUT_S`).

    Raises
    ------
    ClusterError
        The address is malformed or no scheduler answers there.
    """
    from distributed import Client, LocalCluster

    address = scheduler_address(scheduler)
    check_scheduler(address, workers=workers)
    if address is not None:
        try:
            timeout = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
            client = Client(address, timeout=f"{timeout}s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ClusterError(f"no dask scheduler at {address} ({reason})") from None
        try:
            yield client
        finally:
            client.close()
        return
    count = workers or os.cpu_count() or 1
    # Processes, one thread each: a build is one tool at a time, and the
    # tools run in subprocesses; a task holds its worker for the whole build.
    # No memory limit: the tools' memory is not the worker's, and nextpnr on
    # a large ECP5 array needs gigabytes. The scheduler's HTTP server (no
    # dashboard: bokeh is not a dependency) on a free local port, not 8787,
    # so that two sweeps on one machine do not collide.
    with _workers_ignore_ctrl_c():
        cluster = LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            memory_limit=0,
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        )
    with cluster, Client(cluster, set_as_default=False) as client:
        yield client


@contextlib.contextmanager
def _workers_ignore_ctrl_c():
    """Start the local workers with SIGINT ignored (they inherit it; Python leaves an ignored SIGINT alone).

    Ctrl-C in the terminal goes to the whole foreground process group: the
    workers would each die with a traceback, their builds left behind. So
    only the client takes it (KeyboardInterrupt): closing the cluster
    closes the workers, and a closing worker stops its build's tools
    (:func:`boards.synth.execute` watches for it).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _check_address(address):
    from distributed.comm import parse_address
    from distributed.comm.registry import backends

    try:
        protocol, location = parse_address(address)
    except (ValueError, TypeError) as error:
        raise ClusterError(f"bad dask scheduler address {address!r} ({error})") from None
    if protocol not in backends:
        raise ClusterError(f"bad dask scheduler address {address!r}: unknown protocol {protocol!r}")
    host, _, port = location.rpartition(":")
    if protocol in ("tcp", "tls") and (not host or not port.isdigit() or not 0 < int(port) < 65536):
        raise ClusterError(f"bad dask scheduler address {address!r}: expected {protocol}://HOST:PORT")
