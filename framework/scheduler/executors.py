"""The local executors: every unit in this process, or in worker processes on this machine.

Both are a :class:`~.slots.SlotPool` (queues, deadlines, retries, busy seconds: see
``slots.py``) and supply only how a slot starts, how a unit is sent, how they learn what
happened and how a slot is killed.

- :class:`InlineExecutor` runs every unit in this process, one at a time.
- :class:`ProcessExecutor` has two lanes: a pool of CPU worker processes and one
  long-lived GPU worker that keeps its models loaded. Workers are spawned, ignore
  Ctrl-C (the coordinator stops them), and a worker that dies is replaced; the unit it
  held is retried once, then reported failed. Files are decoded in threads of this
  process, so the first decode runs while the workers start.
- :class:`mirflow.scheduler.ray_executor.RayExecutor` runs the same lanes as Ray actors.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import socket
import threading
import time
import types
from dataclasses import replace
from multiprocessing.connection import wait as wait_for

from ..caches import numba_cache_dir
from .runner import UnitRunner, run_in_thread
from .slots import MAX_ATTEMPTS, MAX_FAILED_STARTS, Died, Done, Ready, Slot, SlotPool, StartFailed, WorkersCannotStart
from .units import DECODE, Completion, Unit, UnitTimeout

DECODE_THREADS = 2  # files a ProcessExecutor decodes at once (reading and resampling release the GIL)

__all__ = ["InlineExecutor", "MAX_ATTEMPTS", "MAX_FAILED_STARTS", "ProcessExecutor", "WorkersCannotStart",
           "plugin_handoff", "worker_plugins"]


class InlineExecutor(SlotPool):
    """Runs units in the calling process (``--jobs 1``, and the library's default): one slot,
    one queue for both lanes in arrival order, each unit run inside ``wait``."""

    def __init__(self, runner: UnitRunner, on_start):
        super().__init__(on_start, eager=False, merges_first=False)
        self.runner = runner
        self.add_slot(Slot("inline", 0, killable=False))  # a unit past its timeout gets SIGALRM instead

    def queue_of(self, unit: Unit) -> str:
        return "inline"

    def _start(self, slot: Slot) -> None:
        slot.ready, slot.pid = True, os.getpid()

    def _send(self, slot: Slot, unit: Unit) -> None:
        """Nothing to send: ``_poll`` runs it."""

    def _poll(self, timeout: float | None) -> list:
        slot = self.slots[0]
        if slot.unit is None:
            return []
        with _alarm(slot.unit.timeout):
            completion = self.runner.run(slot.unit)
        return [Done(slot, completion)]

    def _kill(self, slot: Slot, unit: Unit | None) -> None:
        """Never called: the slot is not killable."""

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
        if pm.get_plugin(name) is not None:
            continue  # an installed plugin the parent registered by hand: the worker loaded it already
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
    runner.start_warming()  # the steps' libraries imported while the coordinator decodes the first file
    while True:
        unit = conn.recv()
        if unit is None:
            _leave()
        completion = replace(runner.run(unit), unit=None)  # the coordinator has the unit
        try:
            conn.send(("done", completion))
        except Exception as err:  # an analyzer's output that cannot be pickled fails its unit, not the worker
            conn.send(("done", Completion(None, False, error=f"the unit's result cannot be sent back to the "
                                          f"coordinator ({type(err).__name__}: {err})", seconds=completion.seconds)))


def _leave() -> None:
    """End the worker now: exit handlers run and output is flushed, but the interpreter's
    teardown is skipped. Tearing down a worker's modules (onnxruntime's sessions, numba's
    compiled code, madmom's models) took ~0.5 s per worker after the last result was in, which
    the coordinator waited for at close (measured on a 5-minute song: 0.58 s from the last
    export to the workers' exit; 0.05 s without the teardown). Nothing a worker holds needs it:
    results went back through the pipe, scratch files belong to the coordinator and the kernel
    drops the worker's file locks. Threads that are not daemons are waited for, as at a normal
    exit (a compile that writes a shared cache finishes first)."""
    import atexit
    import sys

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # what a plugin registered still runs
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)


class _Worker:
    """A spawned worker process and the pipe the coordinator talks to it through."""

    def __init__(self, context, lane: str, args: tuple):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, lane, *args), daemon=True,
                                       name=f"mirflow-{lane}")
        self.process.start()
        child.close()


class ProcessExecutor(SlotPool):
    """A CPU lane of ``cpu_workers`` processes, if asked one GPU-lane process, and
    DECODE_THREADS decode threads in this process.

    Decoding here rather than in a worker: the first file's decode runs while the workers
    start (Python, numpy and mirflow take each ~0.4 s), instead of after, and the workers
    keep their cores for analysis (the 5-minute song's first beats chunk started at 1.02 s
    instead of 1.29 s)."""

    def __init__(self, *, cpu_workers: int, gpu_lane: bool, pipeline, registry, pm, disabled: tuple,
                 handoff: list, device: str, temp_dir: str, on_start):
        super().__init__(on_start, noun="worker")
        self.decoder = UnitRunner(pipeline, registry, pm, device=device, temp_dir=temp_dir)
        self.decoded: queue.Queue = queue.Queue()  # (the decode's stop event, its completion)
        self.wake_up, self.wake = socket.socketpair()  # a decode thread's end wakes _poll
        self.wake_up.setblocking(False)
        self.context = multiprocessing.get_context("spawn")  # never fork: CUDA/TF in a forked child deadlock
        self.args = (pipeline, tuple(disabled), handoff, device, temp_dir)
        self.temp_dir = temp_dir
        # One worker per core: each worker's numerical libraries get cores / workers threads.
        threads = str(max(1, (os.cpu_count() or 1) // cpu_workers))
        self.environment = {name: threads for name in ("MIRFLOW_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                       "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
        for index in range(cpu_workers):
            self.add_slot(Slot("cpu", index))
        if gpu_lane:
            self.add_slot(Slot("gpu", 0))
        for index in range(DECODE_THREADS):
            self.add_slot(Slot(DECODE, index, counted=False))

    def queue_of(self, unit: Unit) -> str:
        return DECODE if unit.kind == DECODE else unit.lane

    def _start(self, slot: Slot) -> None:
        """A worker started with the thread limits in its environment (read at import time) and
        a numba cache of its own slot. librosa compiles with ``cache=True``; two workers of a
        first run after an install compiled into one cache and left it so that every later run
        segfaulted in librosa's compiled pitch code until the cache was deleted (seen once, not
        reproduced on demand: numba's index and code files are written separately, so two
        writers can interleave them). A slot's cache lasts between runs: only a new install
        compiles."""
        if slot.lane == DECODE:
            slot.ready, slot.pid, slot.handle = True, os.getpid(), None
            return
        environment = dict(self.environment)
        if "NUMBA_CACHE_DIR" not in os.environ:
            environment["NUMBA_CACHE_DIR"] = str(numba_cache_dir(f"{slot.lane}-{slot.index}"))
        saved = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        try:
            slot.handle = _Worker(self.context, slot.lane, self.args)
            slot.pid = slot.handle.process.pid
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def _send(self, slot: Slot, unit: Unit) -> None:
        if slot.lane == DECODE:  # the slot holds the decode's stop event: it tells its completion from a stale one
            slot.handle = stopper = threading.Event()
            run_in_thread(self.decoder, unit, lambda completion: self._decoded(stopper, completion), stopper)
        else:
            slot.handle.conn.send(unit)

    def _decoded(self, stopper: threading.Event, completion: Completion) -> None:
        """In the decode's thread: hand its completion over and wake ``_poll``."""
        self.decoded.put((stopper, completion))
        self.wake.send(b"\0")

    def _interrupt(self, slot: Slot) -> int:
        """A cancelled file's decode is told to stop: it ends at its next block, removes what
        it wrote, and completes as a failure the coordinator ignores."""
        if slot.lane != DECODE:
            return super()._interrupt(slot)
        slot.handle.set()
        return 0

    def _kill(self, slot: Slot, unit: Unit | None) -> None:
        """Kill the worker. A decode thread past its timeout is told to stop and forgotten:
        it removes what it wrote when it stops, and what it returns is stale."""
        if slot.lane == DECODE:
            if slot.handle is not None:
                slot.handle.set()
            return
        slot.handle.process.kill()
        slot.handle.process.join(5.0)

    def _poll(self, timeout: float | None) -> list:
        watched = {}
        for slot in self.slots:
            if slot.lane != DECODE:
                watched[slot.handle.conn] = watched[slot.handle.process.sentinel] = slot
        happened = []
        for ready in wait_for([*watched, self.wake_up], 0 if not self.decoded.empty() else timeout):
            if ready is self.wake_up:
                continue  # the decodes are read below
            slot = watched[ready]
            worker = slot.handle
            if ready is worker.conn:
                try:
                    message, value = worker.conn.recv()
                except (EOFError, OSError):
                    continue  # it died; its sentinel says so
                happened.append(Ready(slot, value) if message == "ready" else Done(slot, value))
            elif not worker.process.is_alive():
                code = worker.process.exitcode
                if not slot.ready:
                    happened.append(StartFailed(slot, code))
                else:
                    reason = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                    happened.append(Died(slot, f"worker process died ({reason}) running this unit, twice"))
        return happened + self._decodes_done()

    def _decodes_done(self) -> list:
        try:
            while self.wake_up.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        happened = []
        while not self.decoded.empty():
            stopper, completion = self.decoded.get_nowait()
            slot = next((s for s in self.slots if s.lane == DECODE and s.handle is stopper), None)
            if slot is not None:  # else a decode stopped for its timeout: stale
                slot.handle = None
                happened.append(Done(slot, completion))
        return happened

    def _cannot_start(self, code) -> str:
        return (f"worker processes die while starting ({self.failed_starts} in a row, the last with exit code "
                f"{code}): a script that runs mirflow must call it under `if __name__ == \"__main__\":` "
                "(workers are spawned and import the script), and every plugin must import in a fresh process")

    def close(self) -> None:
        super().close()
        for slot in self.slots:
            if slot.lane == DECODE:
                if slot.handle is not None:
                    slot.handle.set()
                continue
            try:
                if slot.handle.process.is_alive() and slot.unit is None and slot.ready:
                    slot.handle.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        deadline = time.monotonic() + 2.0
        for slot in (slot for slot in self.slots if slot.lane != DECODE):
            process = slot.handle.process
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(1.0)
