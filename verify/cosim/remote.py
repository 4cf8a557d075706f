"""The host's handle on a simulated datapath: requests to :mod:`verify.cosim.server` over a local socket."""

import json
import secrets
import threading
from multiprocessing.connection import Listener

from .driver import GemmStats

__all__ = ["RemoteDatapath", "DatapathError"]


class DatapathError(RuntimeError):
    """The simulated datapath refused a request or the simulation ended."""


class RemoteDatapath:
    """Runs the datapath simulation in a background thread and forwards requests to it.

    Parameters
    ----------
    build : verify.cosim.build.DatapathBuild
    workdir : path
        Directory of this simulation run (log, results).

    Use as a context manager; the methods block until the simulator answers.
    """

    def __init__(self, build, workdir):
        self.build, self.workdir = build, workdir
        self.geometry = build.geometry
        self.status = None

    def __enter__(self):
        self.build.ensure()
        key = secrets.token_bytes(16)
        self._listener = Listener(("127.0.0.1", 0), authkey=key)
        host, port = self._listener.address
        env = {
            "FOURBIT_COSIM_ADDR": f"{host}:{port}",
            "FOURBIT_COSIM_KEY": key.hex(),
            "FOURBIT_COSIM_GEOMETRY": json.dumps(vars(self.geometry)),
            "FOURBIT_COSIM_ENCODINGS": json.dumps(self.build.manifest),
            "COCOTB_LOG_LEVEL": "WARNING",
        }

        def simulate():
            self.status = self.build.run("verify.cosim.server", workdir=self.workdir, env=env)
            if not getattr(self, "_conn", None):  # the simulator never connected: unblock accept()
                try:
                    from multiprocessing.connection import Client

                    Client((host, port), authkey=key).close()
                except OSError:
                    pass

        self._thread = threading.Thread(target=simulate, daemon=True)
        self._thread.start()
        conn = self._listener.accept()
        self._conn = conn
        try:
            kind, _ = conn.recv()
        except EOFError:
            kind = None
        if kind != "ready":
            raise DatapathError(f"the datapath simulation did not start; see {self.workdir}/sim.log")
        return self

    def __exit__(self, *exc):
        try:
            self.totals = self._request("close")
        except DatapathError:
            self.totals = None
        self._conn.close()
        self._listener.close()
        self._thread.join()
        return False

    def _request(self, op, **kwargs):
        try:
            self._conn.send((op, kwargs))
            kind, result = self._conn.recv()
        except (EOFError, OSError) as e:
            raise DatapathError(
                f"the datapath simulation ended unexpectedly ({e}); see {self.workdir}/sim.log"
            ) from None
        if kind == "error":
            if result.startswith("ValueError: "):
                raise ValueError(result[len("ValueError: ") :])
            raise DatapathError(result)
        return result

    def gemm(self, name, a, b, **kwargs):
        """:meth:`verify.cosim.driver.DatapathDriver.gemm` on the simulator; returns ``(result, GemmStats)``."""
        out, stats = self._request("gemm", name=name, a=a, b=b, **kwargs)
        return out, GemmStats(**stats)

    def clear_amax(self):
        self._request("clear_amax")

    def load_grad(self, ints):
        self._request("load_grad", ints=ints)

    def encode(self, count):
        return self._request("encode", count=count)
