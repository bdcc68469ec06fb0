"""Where units run. The coordinator only submits units and waits for completions, so an
executor can be swapped; every executor has ``submit``, ``pending``, ``drop`` (a file's
queued units), ``wait`` (completions), ``release`` (a finished file's decoded audio),
``close``, and the ``busy`` seconds per lane.

- :class:`InlineExecutor` runs every unit in this process, one at a time.
- :class:`ProcessExecutor` has two lanes: a pool of CPU worker processes and one
  long-lived GPU worker that keeps its models loaded. Workers are spawned, ignore
  Ctrl-C (the coordinator stops them), and a worker that dies is replaced; the unit it
  held is retried once, then reported failed.
- :class:`mirflow.scheduler.ray_executor.RayExecutor` runs the same lanes as Ray actors.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time
import types
from collections import deque
from multiprocessing.connection import wait as wait_for
from pathlib import Path

from ..audio import remove_raw
from .units import DECODE, Completion, Unit, UnitRunner, UnitTimeout, enqueue

MAX_ATTEMPTS = 2  # a unit whose worker died is tried once more


class InlineExecutor:
    """Runs units in the calling process (``--jobs 1``, and the library's default)."""

    def __init__(self, runner: UnitRunner, on_start):
        self.runner = runner
        self.on_start = on_start
        self.queue: deque[Unit] = deque()
        self.busy = {"cpu": 0.0, "gpu": 0.0}

    def submit(self, unit: Unit) -> None:
        self.queue.append(unit)

    def pending(self) -> int:
        return len(self.queue)

    def drop(self, file: str) -> int:
        """Forget the queued units of ``file``; how many there were."""
        kept = deque(unit for unit in self.queue if unit.file != file)
        dropped, self.queue = len(self.queue) - len(kept), kept
        return dropped

    def wait(self, timeout: float | None = None) -> list[Completion]:
        if not self.queue:
            return []
        unit = self.queue.popleft()
        self.on_start(unit, os.getpid())
        with _alarm(unit.timeout):
            completion = self.runner.run(unit)
        completion.worker = os.getpid()
        self.busy[unit.lane] += completion.seconds
        return [completion]

    def release(self, audio) -> None:
        audio.remove()

    def close(self) -> None:
        self.queue.clear()


class _alarm:
    """Interrupt the unit with UnitTimeout after ``seconds`` (SIGALRM: main thread, POSIX only;
    code inside a C extension is interrupted only when it returns to Python)."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds if seconds and hasattr(signal, "setitimer") else None
        if threading.current_thread() is not threading.main_thread():
            self.seconds = None

    def __enter__(self):
        if self.seconds:
            def ring(signum, frame):
                raise UnitTimeout(f"timed out after {self.seconds:g} s (resources.unit_timeout)")

            self.previous = signal.signal(signal.SIGALRM, ring)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        if self.seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)


def plugin_handoff(pm) -> list:
    """The analysis plugins registered in ``pm`` by hand (not from entry points), in a
    form a spawned worker can register too: modules by name, objects pickled."""
    handoff = []
    for name, plugin in pm.list_name_plugin():
        if name in getattr(pm, "mirflow_entry_points", set()):
            continue
        if not any(hasattr(plugin, hook) for hook in ("register_analyzers", "aggregate", "register_exporters")):
            continue  # progress listeners stay here; events are forwarded to them
        if isinstance(plugin, types.ModuleType):
            handoff.append((name, "module", plugin.__name__))
        else:
            handoff.append((name, "object", pickle.dumps(plugin)))
    return handoff


def worker_plugins(disabled: tuple, handoff: list):
    """The plugin manager and registry of a worker: installed plugins plus the handed-off ones."""
    import importlib

    from ..plugin_manager import collect_analyzers, make_plugin_manager

    pm = make_plugin_manager(disabled=disabled)
    for name, kind, value in handoff:
        pm.register(importlib.import_module(value) if kind == "module" else pickle.loads(value), name=name)
    return pm, collect_analyzers(pm)


def _worker_main(conn, lane: str, pipeline, disabled: tuple, handoff: list, device: str, temp_dir: str):
    """A worker process: load plugins once, then run units until told to stop. It gets the
    validated pipeline object (not its file: one built in Python, or edited during the run,
    is run as the coordinator has it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides when we stop
    pm, registry = worker_plugins(disabled, handoff)
    runner = UnitRunner(pipeline, registry, pm, device=device, temp_dir=temp_dir)
    conn.send(("ready", os.getpid()))
    while True:
        unit = conn.recv()
        if unit is None:
            break
        completion = runner.run(unit)
        try:
            conn.send(("done", completion))
        except Exception as err:  # an analyzer's output that cannot be pickled fails its unit, not the worker
            conn.send(("done", Completion(unit, False, error=f"the unit's result cannot be sent back to the "
                                          f"coordinator ({type(err).__name__}: {err})", seconds=completion.seconds)))


MAX_FAILED_STARTS = 3


class WorkersCannotStart(RuntimeError):
    """Worker processes die before they are ready, again and again (the run stops)."""


def numba_cache_root() -> Path:
    """Where worker slots keep numba's compiled code: the user's cache folder."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mirflow" / "numba"


def numba_cache_dir(slot: str) -> Path:
    """One worker slot's numba cache (a folder per slot: see _start)."""
    return numba_cache_root() / slot


def numba_shared_cache() -> Path:
    """Code that every slot loads from one folder, compiled under a file lock by whichever
    worker needs it first (madmom_fast's Viterbi kernel): not a slot's cache."""
    return numba_cache_root() / "shared"


def numba_cache_is_cold() -> bool:
    """True when no worker slot has compiled anything on this machine yet (a first run after
    an install: numba compiles librosa's functions as the workers import it, ~40 s on 2
    cores), and the workers would use mirflow's caches (NUMBA_CACHE_DIR not set by the user).
    The shared folder does not count: a pipeline without librosa fills only that one."""
    if "NUMBA_CACHE_DIR" in os.environ:
        return False
    root, shared = numba_cache_root(), numba_shared_cache()
    slots = [folder for folder in root.iterdir() if folder.is_dir() and folder != shared] if root.is_dir() else []
    return not any(any(slot.iterdir()) for slot in slots)


class _Worker:
    def __init__(self, context, lane: str, slot: int, args: tuple):
        self.lane = lane
        self.slot = slot  # its place in the lane (and its numba cache)
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, lane, *args), daemon=True,
                                       name=f"mirflow-{lane}")
        self.process.start()
        child.close()
        self.unit: Unit | None = None
        self.ready = False
        self.started_at = 0.0


class ProcessExecutor:
    """A CPU lane of ``cpu_workers`` processes and, if asked, one GPU-lane process."""

    def __init__(self, *, cpu_workers: int, gpu_lane: bool, pipeline, disabled: tuple,
                 handoff: list, device: str, temp_dir: str, on_start):
        self.context = multiprocessing.get_context("spawn")  # never fork: CUDA/TF in a forked child deadlock
        self.args = (pipeline, tuple(disabled), handoff, device, temp_dir)
        self.temp_dir = temp_dir
        self.on_start = on_start
        self.queues = {"cpu": deque(), "gpu": deque()}
        # One worker per core: each worker's numerical libraries get cores / workers threads.
        threads = str(max(1, (os.cpu_count() or 1) // cpu_workers))
        self.environment = {name: threads for name in ("MIRFLOW_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                       "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
        self.workers = [self._start("cpu", slot) for slot in range(cpu_workers)]
        if gpu_lane:
            self.workers.append(self._start("gpu", 0))
        self.busy = {"cpu": 0.0, "gpu": 0.0}
        self.replaced = 0
        self.failed_starts = 0  # workers in a row that died before they were ready

    def _start(self, lane: str, slot: int) -> _Worker:
        """A worker started with the thread limits in its environment (read at import time) and
        a numba cache of its own slot. librosa compiles with ``cache=True``; two workers of a
        first run after an install compiled into one cache and left it so that every later run
        segfaulted in librosa's compiled pitch code until the cache was deleted (seen once, not
        reproduced on demand: numba's index and code files are written separately, so two
        writers can interleave them). A slot's cache lasts between runs: only a new install
        compiles."""
        environment = dict(self.environment)
        if "NUMBA_CACHE_DIR" not in os.environ:
            environment["NUMBA_CACHE_DIR"] = str(numba_cache_dir(f"{lane}-{slot}"))
        saved = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        try:
            return _Worker(self.context, lane, slot, self.args)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def submit(self, unit: Unit) -> None:
        enqueue(self.queues[unit.lane], unit)
        self._dispatch()

    def pending(self) -> int:
        return sum(map(len, self.queues.values())) + sum(w.unit is not None for w in self.workers)

    def drop(self, file: str) -> int:
        """Forget the queued units of ``file`` and stop its decode if one is running (a long
        decode must not go on writing after a cancel); analysis units that are running finish.
        How many units will not complete."""
        dropped = 0
        for lane, queue in self.queues.items():
            kept = deque(unit for unit in queue if unit.file != file)
            dropped += len(queue) - len(kept)
            self.queues[lane] = kept
        for worker in list(self.workers):
            if worker.unit is not None and worker.unit.file == file and worker.unit.kind == DECODE:
                self._stop(worker)
                dropped += 1
        return dropped

    def _stop(self, worker: _Worker) -> Unit:
        """Kill ``worker`` and start a fresh one in its place; the unit it held (whose raw
        audio, for a decode, is removed: of no use, and it may be large)."""
        unit, worker.unit = worker.unit, None
        worker.process.kill()
        worker.process.join(5.0)
        if unit.kind == DECODE:
            remove_raw(unit.file, self.temp_dir)
        self.workers[self.workers.index(worker)] = self._start(worker.lane, worker.slot)
        self.replaced += 1
        return unit

    def _dispatch(self) -> None:
        for worker in self.workers:
            queue = self.queues[worker.lane]
            if worker.ready and worker.unit is None and queue:
                worker.unit = queue.popleft()
                worker.unit.attempts += 1
                worker.started_at = time.perf_counter()
                worker.conn.send(worker.unit)
                self.on_start(worker.unit, worker.process.pid)

    def wait(self, timeout: float | None = None) -> list[Completion]:
        """Block until something finishes (or ``timeout``); replace dead workers and kill those
        whose unit ran past its timeout."""
        if not self.pending():
            return []
        completions = self._kill_overdue()
        watched = {w.conn: w for w in self.workers}
        watched.update({w.process.sentinel: w for w in self.workers})
        now = time.perf_counter()
        deadlines = [w.started_at + w.unit.timeout - now for w in self.workers if w.unit is not None and w.unit.timeout]
        if deadlines:
            timeout = max(0.0, min([timeout if timeout is not None else float("inf"), *deadlines]))
        for ready in wait_for(list(watched), timeout):
            worker = watched[ready]
            if ready is worker.conn:
                try:
                    message, value = worker.conn.recv()
                except (EOFError, OSError):
                    continue  # it died; its sentinel says so
                if message == "ready":
                    worker.ready = True
                    self.failed_starts = 0
                    continue
                value.worker = worker.process.pid
                self.busy[worker.lane] += value.seconds
                completions.append(value)
                worker.unit = None
            elif not worker.process.is_alive() and worker in self.workers:
                completions.extend(self._replace(worker))
        self._dispatch()
        return completions

    def _kill_overdue(self) -> list[Completion]:
        """Kill and replace each worker whose unit ran past its timeout; that unit fails (no retry:
        it would hang again)."""
        completions = []
        now = time.perf_counter()
        for worker in list(self.workers):
            unit = worker.unit
            if unit is None or not unit.timeout or now - worker.started_at < unit.timeout:
                continue
            self._stop(worker)
            self.busy[worker.lane] += now - worker.started_at
            completions.append(Completion(unit, False, error=f"timed out after {unit.timeout:g} s "
                                          "(resources.unit_timeout); its worker was stopped",
                                          seconds=now - worker.started_at, worker=worker.process.pid))
        return completions

    def _replace(self, worker: _Worker) -> list[Completion]:
        """Start a fresh worker in place of a dead one; retry or fail what it held. Workers that
        keep dying before they are ready stop the run: replacing them would loop for ever."""
        if not worker.ready:
            self.failed_starts += 1
            if self.failed_starts >= MAX_FAILED_STARTS:
                code = worker.process.exitcode
                raise WorkersCannotStart(
                    f"worker processes die while starting ({self.failed_starts} in a row, the last with exit code "
                    f"{code}): a script that runs mirflow must call it under `if __name__ == \"__main__\":` "
                    "(workers are spawned and import the script), and every plugin must import in a fresh process")
        self.workers[self.workers.index(worker)] = self._start(worker.lane, worker.slot)
        self.replaced += 1
        unit, worker.unit = worker.unit, None
        if unit is None:
            return []
        if unit.attempts < MAX_ATTEMPTS:
            self.queues[unit.lane].appendleft(unit)
            return []
        code = worker.process.exitcode
        reason = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return [Completion(unit, False, error=f"worker process died ({reason}) running this unit, twice",
                           seconds=time.perf_counter() - worker.started_at, worker=worker.process.pid)]

    def release(self, audio) -> None:
        audio.remove()

    def close(self) -> None:
        for worker in self.workers:
            try:
                if worker.process.is_alive() and worker.unit is None and worker.ready:
                    worker.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        deadline = time.monotonic() + 2.0
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(1.0)
