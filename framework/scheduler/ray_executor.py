"""Units on a Ray cluster: the local executor's lanes as Ray actors (``--executor ray``).

The coordinator, the unit plan and the merge rules are the same as on one machine; only
where units run changes:

- CPU lane: one actor per CPU slot (``num_cpus=1``, spread over the nodes; a server with
  several pipelines gives each pipeline's actors a share of a slot). Each keeps its
  analyzers set up, as a local worker process does: madmom's networks load once per actor,
  not once per unit.
- GPU lane: one actor per GPU of the cluster (``num_gpus=1``); on a cluster without a GPU
  one actor on a CPU, whose results say ``cpu`` (the analyzer reports the device it got).
- No shared disk: the driver (this process) reads and decodes each input once, puts each
  wanted rate into the object store, and units carry object references; actors map them
  without copies. The driver also writes every result. Features that two analyzers share
  (mirflow.features) are kept per node in a scratch folder of the run.
- Faults as in the local lanes: an actor that dies is replaced and its unit retried once,
  then recorded as an error for that file and step; a unit past its timeout has its actor
  killed and fails alone.

Ray is imported only here, and this module only when the executor is chosen.
"""

from __future__ import annotations

import os
import queue
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import StoredAudio, audio_key, raw_prefix
from .executors import MAX_ATTEMPTS, MAX_FAILED_STARTS, WorkersCannotStart, numba_cache_dir, worker_plugins
from .units import DECODE, EXPORT, Completion, Unit, UnitRunner, enqueue

ACTOR_START_TIMEOUT = 300.0
DRIVER_DECODES = max(1, min(4, os.cpu_count() or 1))  # files decoded at once by the driver  # seconds an actor may take to come up (a node may have to start a worker)


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


@dataclass(frozen=True)
class AudioInStore(StoredAudio):
    """A decoded file in Ray's object store: ``arrays`` maps "rate/layout" to (object
    reference, frames, channels). Actors read it without copies (read-only arrays)."""

    run: str = ""  # the run's name: shared features go to a node-local folder of that name

    def samples(self, sample_rate: int | None, layout: str) -> np.ndarray:
        ray = import_ray()
        ref, frames, channels = self.arrays[audio_key(sample_rate or self.sample_rate, layout)]
        data = ray.get(ref)
        return data[:, 0] if layout == "mono" else data.T

    def cache_prefix(self, sample_rate: int, layout: str) -> str:
        folder = node_scratch(self.run)
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / f"{self.token}-{sample_rate}-{layout}")

    @property
    def token(self) -> str:
        return raw_prefix(self.path)

    def remove(self) -> None:
        """Nothing on disk here: the object store frees the arrays once no one holds them."""


def node_scratch(run: str) -> Path:
    return Path(tempfile.gettempdir()) / f"mirflow-ray-{run}"


def to_object_store(audio: StoredAudio, run: str) -> AudioInStore:
    """Put each raw array of a decoded file into the object store and delete the raw file."""
    ray = import_ray()
    arrays = {}
    for key, (raw, frames, channels) in audio.arrays.items():
        data = (np.memmap(raw, dtype=np.float32, mode="r", shape=(frames, channels)) if frames
                else np.zeros((0, channels), dtype=np.float32))
        arrays[key] = (ray.put(np.asarray(data)), frames, channels)
        del data
    audio.remove()
    return AudioInStore(path=audio.path, duration=audio.duration, sample_rate=audio.sample_rate,
                        channels=audio.channels, arrays=arrays, rms_db=audio.rms_db, run=run)


def limit_threads() -> None:
    """One thread per numerical library in this actor (one CPU slot), as local workers get
    through their environment. Ray sets only OMP_NUM_THREADS and has imported NumPy before
    the actor starts, so OpenBLAS/MKL are limited through threadpoolctl; onnxruntime
    (MIRFLOW_THREADS) and numba read theirs later. (A runtime_env with the variables did the
    same but made each actor start ~2 s later.)"""
    os.environ["MIRFLOW_THREADS"] = "1"
    os.environ["NUMBA_NUM_THREADS"] = "1"
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn (librosa's) brings it; without it BLAS keeps its default
        return
    threadpool_limits(limits=1)


class UnitActor:
    """A Ray actor that runs units of one lane with its analyzers kept set up (the body of
    a local worker process). Made remote by :func:`_actor_class`."""

    def __init__(self, lane: str, slot: int, pipeline, disabled: tuple, handoff: list, device: str,
                 driver_path: list[str], run: str):
        # The driver's import path, where it exists here: plugins registered by hand (tests,
        # notebooks) import on a node of the same machine; elsewhere they must be installed.
        sys.path.extend(p for p in driver_path if p not in sys.path and os.path.isdir(p))
        os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir(f"{lane}-{slot}")))  # this node's home
        limit_threads()
        pm, registry = worker_plugins(disabled, handoff)
        self.run_name = run
        self.runner = UnitRunner(pipeline, registry, pm, device=device, temp_dir=str(node_scratch(run)))

    def where(self) -> tuple[int, str]:
        """(process id, node id): the unit events name both."""
        import ray

        return os.getpid(), ray.get_runtime_context().get_node_id()

    def run(self, unit: Unit) -> Completion:
        completion = self.runner.run(unit)
        completion.unit = None  # the driver has it; its payload (audio references, chunk outputs) stays there
        return completion

    def setups(self) -> dict:
        return {f"{step}/{role}": count for (step, role), count in self.runner.setups.items()}

    def forget(self, token: str) -> None:
        """Delete the shared features of a finished file (if this node has any)."""
        for feature in node_scratch(self.run_name).glob(f"{token}-*"):
            feature.unlink(missing_ok=True)

    def clean(self) -> None:
        shutil.rmtree(node_scratch(self.run_name), ignore_errors=True)


_REMOTE = None


def _actor_class():
    global _REMOTE
    if _REMOTE is None:
        _REMOTE = import_ray().remote(UnitActor)
    return _REMOTE


class _Slot:
    """One actor of a lane and the unit it runs (at most one: the coordinator keeps the queue)."""

    def __init__(self, lane: str, index: int):
        self.lane, self.index = lane, index
        self.actor = None
        self.ready_ref = None  # where() of an actor still starting
        self.pid: int | None = None
        self.node: str | None = None
        self.unit: Unit | None = None
        self.ref = None
        self.started_at = 0.0


class _DriverLane:
    """One thread of the driver that runs a decode or an export at a time: inputs are read
    where they are, results written where the user asked."""

    def __init__(self, runner: UnitRunner, done: queue.Queue):
        self.runner, self.done = runner, done
        self.unit: Unit | None = None
        self.started_at = 0.0

    def start(self, unit: Unit, convert) -> None:
        self.unit, self.started_at = unit, time.perf_counter()
        if unit.kind == DECODE:
            unit.payload["stop"] = threading.Event()

        def work():
            completion = self.runner.run(unit)
            if completion.ok and unit.kind == DECODE and completion.value.get("audio") is not None:
                try:
                    completion.value["audio"] = convert(completion.value["audio"])
                except Exception as err:  # the object store is full, or the cluster went away
                    completion.value["audio"].remove()
                    completion = Completion(unit, False, error=f"cannot put the decoded audio into Ray's object "
                                            f"store ({type(err).__name__}: {err})", seconds=completion.seconds)
            unit.payload.pop("stop", None)
            self.done.put((self, completion))

        threading.Thread(target=work, name=f"mirflow-ray-{unit.kind}", daemon=True).start()

    def stop(self) -> None:
        if self.unit is not None and "stop" in self.unit.payload:
            self.unit.payload["stop"].set()


class RayExecutor:
    """The CPU and GPU lanes as Ray actors, decodes and exports in the driver; the same
    interface as :class:`~mirflow.scheduler.executors.ProcessExecutor`."""

    def __init__(self, *, cpu_workers: int, gpu_lane: bool, pipeline, registry, pm, disabled: tuple,
                 handoff: list, device: str, temp_dir: str, on_start, actor_cpus: float = 1.0):
        self.ray = import_ray()
        self.on_start = on_start
        self.actor_cpus = actor_cpus
        self.run_name = uuid.uuid4().hex[:12]
        self.args = (pipeline, tuple(disabled), handoff, device, list(sys.path), self.run_name)
        self.queues = {"cpu": deque(), "gpu": deque(), DECODE: deque(), EXPORT: deque()}
        self.busy = {"cpu": 0.0, "gpu": 0.0}
        self.replaced = 0
        self.failed_starts = 0
        self.created = time.perf_counter()
        self.setups: dict[str, dict[str, int]] = {}  # actor (lane-index) -> "step/role" -> set-ups, at close
        self.done: queue.Queue = queue.Queue()
        local = UnitRunner(pipeline, registry, pm, device=device, temp_dir=temp_dir)
        # Decodes in a few threads (reading and resampling release the GIL): one would feed a
        # large cluster too slowly; exports in one (a plot is not thread-safe to draw twice at once).
        self.driver = [(DECODE, _DriverLane(local, self.done)) for _ in range(DRIVER_DECODES)]
        self.driver.append((EXPORT, _DriverLane(local, self.done)))
        self.driver_node = self.ray.get_runtime_context().get_node_id()
        _, gpus = cluster_slots()
        self.gpu_options = {"num_gpus": 1, "num_cpus": 0} if gpus else {"num_cpus": 0}
        self.slots = [_Slot("cpu", n) for n in range(cpu_workers)]
        if gpu_lane:
            self.slots += [_Slot("gpu", n) for n in range(max(1, gpus))]
        for slot in self.slots:
            self._start(slot)

    # -- actors -------------------------------------------------------------------
    def _start(self, slot: _Slot) -> None:
        options = {"num_cpus": self.actor_cpus} if slot.lane == "cpu" else dict(self.gpu_options)
        actor_class = _actor_class().options(max_restarts=0, max_concurrency=1, scheduling_strategy="SPREAD",
                                             **options)
        slot.actor = actor_class.remote(slot.lane, slot.index, *self.args)
        slot.ready_ref = slot.actor.where.remote()
        slot.pid = slot.node = None
        slot.started_at = time.perf_counter()

    def _replace(self, slot: _Slot) -> None:
        self.ray.kill(slot.actor, no_restart=True)
        self._start(slot)
        self.replaced += 1

    # -- the executor interface ---------------------------------------------------------
    def submit(self, unit: Unit) -> None:
        enqueue(self.queues[self._queue_of(unit)], unit)
        self._dispatch()

    @staticmethod
    def _queue_of(unit: Unit) -> str:
        return unit.kind if unit.kind in (DECODE, EXPORT) else unit.lane

    def pending(self) -> int:
        return (sum(map(len, self.queues.values())) + sum(s.unit is not None for s in self.slots)
                + sum(lane.unit is not None for _, lane in self.driver))

    def drop(self, file: str) -> int:
        """Forget the queued units of ``file``; a decode of it that runs is told to stop (it
        completes at its next block, as a failure the coordinator ignores). Units running on
        actors finish. How many units will not complete."""
        dropped = 0
        for name, units in self.queues.items():
            kept = deque(unit for unit in units if unit.file != file)
            dropped += len(units) - len(kept)
            self.queues[name] = kept
        for kind, lane in self.driver:
            if kind == DECODE and lane.unit is not None and lane.unit.file == file:
                lane.stop()
        return dropped

    def _dispatch(self) -> None:
        for slot in self.slots:
            units = self.queues[slot.lane]
            if slot.pid is not None and slot.unit is None and units:
                slot.unit = units.popleft()
                slot.unit.attempts += 1
                slot.started_at = time.perf_counter()
                slot.ref = slot.actor.run.remote(slot.unit)
                self.on_start(slot.unit, slot.pid, slot.node)
        for name, lane in self.driver:
            if lane.unit is None and self.queues[name]:
                unit = self.queues[name].popleft()
                unit.attempts += 1
                lane.start(unit, lambda audio: to_object_store(audio, self.run_name))
                self.on_start(unit, os.getpid(), self.driver_node)

    def wait(self, timeout: float | None = None) -> list[Completion]:
        """Block until something finishes (or ``timeout``): an actor's unit, a driver unit, an
        actor coming up; replace dead actors and stop those whose unit ran past its timeout."""
        if not self.pending():
            return []
        self._check_started()
        completions = self._kill_overdue()
        deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
        for slot in self.slots:  # the nearest unit timeout bounds the wait
            if slot.unit is not None and slot.unit.timeout:
                deadline = min(deadline, time.monotonic() + slot.started_at + slot.unit.timeout - time.perf_counter())
        while not completions:
            completions += self._collect_driver()
            refs = {s.ref: s for s in self.slots if s.unit is not None}
            refs.update({s.ready_ref: s for s in self.slots if s.ready_ref is not None})
            driving = any(lane.unit is not None for _, lane in self.driver)
            left = deadline - time.monotonic()
            if completions or left <= 0:
                break
            step = min(left, 0.05) if driving else left
            if refs:
                ready, _ = self.ray.wait(list(refs), num_returns=1, timeout=step)
                if ready:
                    ready, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=0)
                for ref in ready:
                    completions += self._arrived(refs[ref], ref)
            elif driving:
                try:
                    self.done.put(self.done.get(timeout=step))
                except queue.Empty:
                    pass
            else:
                break
        self._dispatch()
        return completions

    def _check_started(self) -> None:
        """Units wait for actors, but not for ever: a cluster too small for them (or without
        mirflow on its nodes) is an error, not a hang."""
        waiting = sum(map(len, self.queues.values())) and not any(s.pid is not None for s in self.slots)
        if waiting and time.perf_counter() - self.created > ACTOR_START_TIMEOUT:
            cpus, gpus = cluster_slots()
            raise WorkersCannotStart(f"no Ray actor came up in {ACTOR_START_TIMEOUT:g} s ({len(self.slots)} asked for; "
                                     f"the cluster has {cpus} CPU slots and {gpus} GPUs)")

    def _collect_driver(self) -> list[Completion]:
        completions = []
        while True:
            try:
                lane, completion = self.done.get_nowait()
            except queue.Empty:
                return completions
            lane.unit = None
            completion.worker, completion.node = os.getpid(), self.driver_node
            completions.append(completion)

    def _arrived(self, slot: _Slot, ref) -> list[Completion]:
        RayActorError = self.ray.exceptions.RayActorError
        if ref is slot.ready_ref:
            slot.ready_ref = None
            try:
                slot.pid, slot.node = self.ray.get(ref)
                self.failed_starts = 0
            except RayActorError as err:
                self.failed_starts += 1
                if self.failed_starts >= MAX_FAILED_STARTS:
                    raise WorkersCannotStart(f"Ray actors die while starting ({self.failed_starts} in a row): "
                                             f"{_first_line(err)}; every plugin must be installed on every node") from None
                self._replace(slot)
            return []
        unit, slot.unit, slot.ref = slot.unit, None, None
        try:
            completion = self.ray.get(ref)
            completion.unit = unit
        except RayActorError as err:
            self._replace(slot)
            if unit.attempts < MAX_ATTEMPTS:
                self.queues[slot.lane].appendleft(unit)
                return []
            completion = Completion(unit, False, error=f"Ray actor died running this unit, twice ({_first_line(err)})",
                                    seconds=time.perf_counter() - slot.started_at)
        except Exception as err:  # the value could not come back (e.g. it cannot be pickled)
            completion = Completion(unit, False, error=f"the unit's result cannot be sent back to the coordinator "
                                    f"({_first_line(err)})", seconds=time.perf_counter() - slot.started_at)
        completion.worker, completion.node = slot.pid, slot.node
        self.busy[slot.lane] += completion.seconds
        return [completion]

    def _kill_overdue(self) -> list[Completion]:
        """Stop each actor whose unit ran past its timeout; that unit fails (no retry)."""
        completions = []
        now = time.perf_counter()
        for slot in self.slots:
            unit = slot.unit
            if unit is None or not unit.timeout or now - slot.started_at < unit.timeout:
                continue
            pid, node = slot.pid, slot.node
            slot.unit, slot.ref = None, None
            self._replace(slot)
            self.busy[slot.lane] += now - slot.started_at
            completions.append(Completion(unit, False, error=f"timed out after {unit.timeout:g} s "
                                          "(resources.unit_timeout); its Ray actor was stopped",
                                          seconds=now - slot.started_at, worker=pid, node=node))
        return completions

    def release(self, audio) -> None:
        """A file is done: its arrays leave the object store with the last reference (the
        coordinator's); the nodes delete the features they kept for it."""
        audio.remove()
        if isinstance(audio, AudioInStore):
            for slot in self.slots:
                if slot.pid is not None:
                    slot.actor.forget.remote(audio.token)

    def close(self) -> None:
        """Stop running decodes, ask idle actors what they set up, clean the nodes' scratch
        folders and end the actors."""
        for _, lane in self.driver:
            lane.stop()
        idle = [s for s in self.slots if s.pid is not None and s.unit is None]
        try:
            counts = self.ray.get([s.actor.setups.remote() for s in idle], timeout=10)
            self.setups = {f"{s.lane}-{s.index}": c for s, c in zip(idle, counts)}
            self.ray.get([s.actor.clean.remote() for s in idle], timeout=10)
        except Exception:  # noqa: BLE001 - closing must not fail on a cluster that went away
            pass
        for slot in self.slots:
            try:
                self.ray.kill(slot.actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        shutil.rmtree(node_scratch(self.run_name), ignore_errors=True)


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
