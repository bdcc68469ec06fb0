"""Joining a Ray cluster (``--executor ray``): connect once per process, fail fast on an
address nothing answers, and count the cluster's slots. Ray is imported only here and in
``ray_executor.py``, and only when that executor is chosen.
"""

from __future__ import annotations

import os
import threading


class RayNotInstalled(RuntimeError):
    """``--executor ray`` without Ray installed."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayNotInstalled("the ray executor needs Ray: pip install 'mirflow[ray]'") from None
    return ray


def connect(address: str | None, cpus: int) -> None:
    """Connect to the cluster at ``address`` (``auto``, ``HOST:PORT``, ``ray://HOST:10001``;
    None: the RAY_ADDRESS environment variable, else a new local instance with ``cpus`` CPU
    slots), unless this process is connected already. The connection lasts until the process
    exits (Ray shuts a local instance down then): later runs in the process reuse it."""
    ray = import_ray()
    if ray.is_initialized():
        return
    local = address is None and not os.environ.get("RAY_ADDRESS")
    if not local:
        reachable(address or os.environ["RAY_ADDRESS"])
    # A local instance of our own skips the dashboard (seconds of start-up and ~100 MB); start one
    # with `ray start --head` and pass --ray-address auto to watch a run in it.
    # "local": a new instance even when one started by `ray start` runs here (that one is used
    # only when asked for, with auto or its address).
    options = {"address": "local", "num_cpus": cpus, "include_dashboard": False} if local else {"address": address}
    ray.init(log_to_driver=False, configure_logging=False, **options)
    import atexit

    atexit.register(shutdown_at_exit, ray)  # runs before Ray's own hook (last registered, first run)


def shutdown_at_exit(ray) -> None:
    """Shut Ray down as the process exits, a Ctrl-C meaning "stop now": exit 130 at once, not
    Ray's hook interrupted with an "Exception ignored in atexit" traceback and exit status 0."""
    import signal

    def stop_now(signum, frame):
        os.write(2, b"mirflow: interrupted\n")
        os._exit(130)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, stop_now)
    ray.shutdown()


def reachable(address: str, seconds: float = 10.0) -> None:
    """Fail fast on a HOST:PORT (or ray://HOST:PORT) that nothing answers: ray.init retries
    such an address for many minutes (seen: over ten) before it gives up."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return  # "auto" is looked up by Ray itself, which fails at once when nothing runs
    import socket

    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as err:
        raise ConnectionError(f"nothing answers at {host}:{port} ({err.strerror or err})") from None


def cluster_slots() -> tuple[int, int]:
    """(CPU slots, GPUs) of the connected cluster."""
    resources = import_ray().cluster_resources()
    return int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
