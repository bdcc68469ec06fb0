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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..audio import StoredAudio, audio_key, raw_prefix
from ..caches import numba_cache_dir
from .executors import worker_plugins
from .ray_cluster import cluster_slots, import_ray
from .runner import UnitRunner, run_in_thread
from .slots import Died, Done, Ready, Slot, SlotPool, StartFailed, WorkersCannotStart
from .units import DECODE, EXPORT, Completion, Unit

ACTOR_START_TIMEOUT = 300.0  # seconds an actor may take to come up (a node may have to start a worker)
DRIVER_DECODES = max(1, min(4, os.cpu_count() or 1))  # files decoded at once by the driver


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
        self.runner.start_warming()  # as a process worker does

    def where(self) -> tuple[int, str]:
        """(process id, node id): the unit events name both."""
        import ray

        return os.getpid(), ray.get_runtime_context().get_node_id()

    def run(self, unit: Unit) -> Completion:
        # The driver has the unit; its work (audio references, chunk outputs) stays there.
        return replace(self.runner.run(unit), unit=None)

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


class _DriverLane:
    """One thread of the driver that runs a decode or an export at a time: inputs are read
    where they are, results written where the user asked."""

    def __init__(self, runner: UnitRunner, done: queue.Queue):
        self.runner, self.done = runner, done
        self.stopper: threading.Event | None = None  # ends the decode that runs

    def start(self, slot: Slot, unit: Unit, convert) -> None:
        def finished(completion: Completion):
            audio = completion.value.audio if completion.ok and unit.kind == DECODE else None
            if audio is not None:
                try:
                    completion = replace(completion, value=replace(completion.value, audio=convert(audio)))
                except Exception as err:  # the object store is full, or the cluster went away
                    audio.remove()
                    completion = Completion(unit, False, error=f"cannot put the decoded audio into Ray's object "
                                            f"store ({type(err).__name__}: {err})", seconds=completion.seconds)
            self.done.put(Done(slot, completion))

        self.stopper = run_in_thread(self.runner, unit, finished)

    def stop(self) -> None:
        if self.stopper is not None:
            self.stopper.set()


class RayExecutor(SlotPool):
    """The CPU and GPU lanes as Ray actors, decodes and exports in threads of the driver."""

    def __init__(self, *, cpu_workers: int, gpu_lane: bool, pipeline, registry, pm, disabled: tuple,
                 handoff: list, device: str, temp_dir: str, on_start, actor_cpus: float = 1.0):
        super().__init__(on_start, noun="Ray actor")
        self.ray = import_ray()
        self.actor_cpus = actor_cpus
        self.run_name = uuid.uuid4().hex[:12]
        self.args = (pipeline, tuple(disabled), handoff, device, list(sys.path), self.run_name)
        self.created = time.perf_counter()
        self.setups: dict[str, dict[str, int]] = {}  # actor (lane-index) -> "step/role" -> set-ups, at close
        self.done: queue.Queue = queue.Queue()  # Done events of the driver's threads
        self.driver_node = self.ray.get_runtime_context().get_node_id()
        _, gpus = cluster_slots()
        self.gpu_options = {"num_gpus": 1, "num_cpus": 0} if gpus else {"num_cpus": 0}
        for index in range(cpu_workers):
            self.add_slot(Slot("cpu", index))
        if gpu_lane:
            for index in range(max(1, gpus)):
                self.add_slot(Slot("gpu", index))
        # Decodes in a few threads (reading and resampling release the GIL): one would feed a
        # large cluster too slowly; exports in one (a plot is not thread-safe to draw twice at once).
        local = UnitRunner(pipeline, registry, pm, device=device, temp_dir=temp_dir)
        for lane, count in ((DECODE, DRIVER_DECODES), (EXPORT, 1)):
            for index in range(count):
                self.add_slot(Slot(lane, index, killable=False, counted=False, handle=_DriverLane(local, self.done)))

    @staticmethod
    def on_driver(slot: Slot) -> bool:
        return slot.lane in (DECODE, EXPORT)

    def queue_of(self, unit: Unit) -> str:
        return unit.kind.value if unit.kind in (DECODE, EXPORT) else unit.lane

    # -- what the slot pool asks of a backend -------------------------------------------
    def _start(self, slot: Slot) -> None:
        if self.on_driver(slot):
            slot.ready, slot.pid, slot.node = True, os.getpid(), self.driver_node
            return
        options = {"num_cpus": self.actor_cpus} if slot.lane == "cpu" else dict(self.gpu_options)
        actor_class = _actor_class().options(max_restarts=0, max_concurrency=1, scheduling_strategy="SPREAD",
                                             **options)
        slot.handle = actor_class.remote(slot.lane, slot.index, *self.args)
        slot.token = slot.handle.where.remote()  # answers once the actor is up
        slot.started_at = time.perf_counter()

    def _send(self, slot: Slot, unit: Unit) -> None:
        if self.on_driver(slot):
            slot.handle.start(slot, unit, lambda audio: to_object_store(audio, self.run_name))
        else:
            slot.token = slot.handle.run.remote(unit)

    def _kill(self, slot: Slot, unit: Unit | None) -> None:
        self.ray.kill(slot.handle, no_restart=True)

    def _interrupt(self, slot: Slot) -> int:
        """A decode runs in the driver: it is told to stop, and completes at its next block
        as a failure the coordinator ignores."""
        if not self.on_driver(slot):
            return super()._interrupt(slot)
        slot.handle.stop()
        return 0

    def _cannot_start(self, detail) -> str:
        return (f"Ray actors die while starting ({self.failed_starts} in a row): {detail}; every plugin must be "
                "installed on every node")

    def _poll(self, timeout: float | None) -> list:
        """What happened within ``timeout``: an actor's unit, a driver unit, an actor coming up."""
        self._check_started()
        deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
        happened: list = []
        while True:
            happened += self._driver_events()
            refs = {s.token: s for s in self.slots if s.token is not None}
            driving = any(s.unit is not None for s in self.slots if self.on_driver(s))
            left = deadline - time.monotonic()
            if happened or left <= 0:
                return happened
            step = min(left, 0.05) if driving else left
            if refs:
                ready, _ = self.ray.wait(list(refs), num_returns=1, timeout=step)
                if ready:
                    ready, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=0)
                happened += [self._arrived(refs[ref]) for ref in ready]
            elif driving:
                try:
                    self.done.put(self.done.get(timeout=step))
                except queue.Empty:
                    pass
            else:
                return happened

    def _driver_events(self) -> list:
        happened = []
        while True:
            try:
                happened.append(self.done.get_nowait())
            except queue.Empty:
                return happened

    def _arrived(self, slot: Slot):
        ref, slot.token = slot.token, None
        RayActorError = self.ray.exceptions.RayActorError
        if not slot.ready:
            try:
                pid, node = self.ray.get(ref)
            except RayActorError as err:
                return StartFailed(slot, _first_line(err))
            return Ready(slot, pid, node)
        try:
            return Done(slot, self.ray.get(ref))
        except RayActorError as err:
            return Died(slot, f"Ray actor died running this unit, twice ({_first_line(err)})")
        except Exception as err:  # the value could not come back (e.g. it cannot be pickled)
            return Done(slot, Completion(slot.unit, False, error=f"the unit's result cannot be sent back to the "
                                         f"coordinator ({_first_line(err)})",
                                         seconds=time.perf_counter() - slot.started_at))

    def _check_started(self) -> None:
        """Units wait for actors, but not for ever: a cluster too small for them (or without
        mirflow on its nodes) is an error, not a hang."""
        actors = [s for s in self.slots if not self.on_driver(s)]
        waiting = sum(map(len, self.queues.values())) and not any(s.ready for s in actors)
        if waiting and time.perf_counter() - self.created > ACTOR_START_TIMEOUT:
            cpus, gpus = cluster_slots()
            raise WorkersCannotStart(f"no Ray actor came up in {ACTOR_START_TIMEOUT:g} s ({len(actors)} asked for; "
                                     f"the cluster has {cpus} CPU slots and {gpus} GPUs)")

    def release(self, audio) -> None:
        """A file is done: its arrays leave the object store with the last reference (the
        coordinator's); the nodes delete the features they kept for it."""
        audio.remove()
        if isinstance(audio, AudioInStore):
            for slot in self.slots:
                if slot.ready and not self.on_driver(slot):
                    slot.handle.forget.remote(audio.token)

    def close(self) -> None:
        """Stop running decodes, ask idle actors what they set up, clean the nodes' scratch
        folders and end the actors."""
        super().close()
        actors = [s for s in self.slots if not self.on_driver(s)]
        for slot in self.slots:
            if self.on_driver(slot):
                slot.handle.stop()
        idle = [s for s in actors if s.ready and s.unit is None]
        try:
            counts = self.ray.get([s.handle.setups.remote() for s in idle], timeout=10)
            self.setups = {f"{s.lane}-{s.index}": c for s, c in zip(idle, counts)}
            self.ray.get([s.handle.clean.remote() for s in idle], timeout=10)
        except Exception:  # noqa: BLE001 - closing must not fail on a cluster that went away
            pass
        for slot in actors:
            try:
                self.ray.kill(slot.handle, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        shutil.rmtree(node_scratch(self.run_name), ignore_errors=True)


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
