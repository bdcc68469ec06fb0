"""Small analyzers for framework tests: deterministic, fast, answers known exactly."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

import mirflow


class Clicks(mirflow.Analyzer):
    """Every sample above 0.5 is an event; the count per second is a scalar."""

    name = "fake.clicks"
    version = "3"
    sample_rate = 22050
    params = {"threshold": mirflow.Param(0.5, float, min=0.0, max=1.0)}
    outputs = {"clicks": mirflow.EVENTS, "rate": mirflow.SCALAR}

    def analyze(self, chunk, inputs):
        hits = np.flatnonzero(np.abs(chunk.samples) > self.config["threshold"]) / chunk.sample_rate
        return {"clicks": [{"time": float(t)} for t in hits], "rate": len(hits) / chunk.duration}


class Level(mirflow.Analyzer):
    """A label per chunk, 'loud' or 'quiet', and the level curve at 10 frames/s."""

    name = "fake.level"
    sample_rate = 22050
    outputs = {"level": mirflow.LABEL, "envelope": mirflow.CURVE, "tempo": mirflow.SCALAR}

    def analyze(self, chunk, inputs):
        hop = chunk.sample_rate // 10
        frames = len(chunk.samples) // hop
        envelope = np.abs(chunk.samples[: frames * hop]).reshape(frames, hop).max(axis=1)
        label = "loud" if envelope.max(initial=0) > 0.5 else "quiet"
        return {"level": {"label": label, "confidence": 0.8},
                "envelope": {"times": np.arange(frames) / 10, "values": envelope},
                "tempo": {"value": 120.0, "confidence": 0.5}}


class Sections(mirflow.Analyzer):
    """Segments of fixed 4 s sections in track time, labelled A/B alternately; needs clicks."""

    name = "fake.sections"
    sample_rate = 22050
    outputs = {"chords": mirflow.SEGMENTS}
    requires = {"clicks": mirflow.Requirement("clicks")}

    def analyze(self, chunk, inputs):
        assert inputs["clicks"] is not None and len(inputs["clicks"]) > 0
        first = int(chunk.start // 4)
        segments = []
        for n in range(first, int((chunk.start + chunk.duration) // 4) + 1):
            start, end = max(n * 4.0, chunk.start), min((n + 1) * 4.0, chunk.start + chunk.duration)
            if end > start:
                segments.append({"start": start - chunk.start, "end": end - chunk.start, "label": "C:maj" if n % 2 else "A:min"})
        return {"chords": segments}


class Tonic(mirflow.Analyzer):
    """A key per chunk: 'A minor' for the first 20 s of the track, 'C major' after."""

    name = "fake.tonic"
    sample_rate = 22050
    outputs = {"key": mirflow.LABEL}

    def analyze(self, chunk, inputs):
        middle = (chunk.core_start + chunk.core_end) / 2
        return {"key": {"label": "A minor" if middle < 20 else "C major", "confidence": 0.9}}


class Broken(mirflow.Analyzer):
    """Fails on files whose name contains 'bad', or always when asked."""

    name = "fake.broken"
    sample_rate = None
    params = {"always": mirflow.Param(False, bool)}
    outputs = {"value": mirflow.SCALAR}

    def analyze(self, chunk, inputs):
        if self.config["always"] or "bad" in os.path.basename(chunk.path):
            raise RuntimeError("this analyzer fails on purpose")
        return {"value": 1.0}


class NeedsMissingLibrary(mirflow.Analyzer):
    """Declares a library that is not installed (a pipeline with it does not load)."""

    name = "fake.missing"
    outputs = {"value": mirflow.SCALAR}
    libraries = ("no_such_library_xyz",)
    extra = "xyz"

    def setup(self, device):
        import no_such_library_xyz  # noqa: F401

    def analyze(self, chunk, inputs):
        return {"value": 1.0}


class ImportsMissingLibrary(NeedsMissingLibrary):
    """Imports a library it did not declare: found out only when a worker sets it up."""

    name = "fake.undeclared"
    libraries = ()
    extra = None
    install_hint = "pip install no-such-library-xyz"


class GpuCounter(mirflow.Analyzer):
    """A gpu-lane analyzer that counts setups and batch sizes (runs on the CPU here).

    ``loads`` is how many times this process set the model up; ``max_batch`` makes it
    fail like a GPU out of memory above that size; ``sleep`` is seconds per batch."""

    name = "fake.gpu"
    resource = "gpu"
    sample_rate = 22050
    params = {"max_batch": mirflow.Param(0, int, min=0), "sleep": mirflow.Param(0.0, float, min=0)}
    outputs = {"peak": mirflow.SCALAR, "loads": mirflow.SCALAR, "pid": mirflow.SCALAR}
    setups = 0
    batches: list[int] = []

    def setup(self, device):
        type(self).setups += 1
        if device == "gpu":
            raise RuntimeError("no GPU is visible to this fake backend")
        self.device = "cpu"

    def analyze_batch(self, chunks, inputs):
        if self.config["max_batch"] and len(chunks) > self.config["max_batch"]:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        type(self).batches.append(len(chunks))
        time.sleep(self.config["sleep"])
        return [{"peak": float(np.abs(chunk.samples).max(initial=0)), "loads": type(self).setups, "pid": os.getpid()}
                for chunk in chunks]


class EitherLane(mirflow.Analyzer):
    """An ``auto`` analyzer: the GPU lane where ``gpu_problem`` (the class's ``problem``, set by
    a test) is None, else the CPU lane. Its output says which half ran and what device its
    setup was asked for."""

    name = "fake.either"
    resource = "auto"
    sample_rate = 22050
    outputs = {"half": mirflow.LABEL, "asked": mirflow.LABEL}
    problem: str | None = "no GPU for this fake"

    @classmethod
    def gpu_problem(cls):
        return cls.problem

    def setup(self, device):
        self.asked = device
        self.device = "cpu"

    def analyze(self, chunk, inputs):
        return {"half": "analyze", "asked": self.asked}

    def analyze_batch(self, items, inputs):
        return [{"half": "analyze_batch", "asked": self.asked} for _ in items]


class Slow(mirflow.Analyzer):
    """Sleeps per chunk (to see lanes overlap), then keeps a core busy for ``spin`` seconds of
    CPU; kills its own process on files named *crash*, never returns on files named *hang*."""

    name = "fake.slow"
    sample_rate = 22050
    params = {"sleep": mirflow.Param(0.2, float, min=0), "spin": mirflow.Param(0.0, float, min=0)}
    outputs = {"slept": mirflow.SCALAR}

    def analyze(self, chunk, inputs):
        if "crash" in os.path.basename(chunk.path):
            os.kill(os.getpid(), signal.SIGKILL)  # like a segfault or the OOM killer
        if "hang" in os.path.basename(chunk.path):
            time.sleep(3600)
        time.sleep(self.config["sleep"])
        until = time.process_time() + self.config["spin"]
        while time.process_time() < until:
            pass
        return {"slept": self.config["sleep"]}


class Warmed(mirflow.Analyzer):
    """Its ``warm`` leaves a mark named by the process that called it (in the folder
    ``MIRFLOW_TEST_WARM`` names); each chunk says which process analyzed it."""

    name = "fake.warmed"
    sample_rate = 22050
    outputs = {"pid": mirflow.SCALAR}

    @classmethod
    def warm(cls):
        folder = os.environ.get("MIRFLOW_TEST_WARM")
        if folder:
            open(os.path.join(folder, f"warmed-{os.getpid()}"), "w").close()

    def analyze(self, chunk, inputs):
        return {"pid": float(os.getpid())}


class WarmFails(Warmed):
    """A ``warm`` that raises (a library that will not import): its set-up is what reports."""

    name = "fake.warm_fails"

    @classmethod
    def warm(cls):
        raise ImportError("no module named 'missing_for_warm'")


class WarmImportsACycle(mirflow.Analyzer):
    """Its ``warm`` imports one of two modules that import each other (in the folder
    ``MIRFLOW_TEST_CYCLE`` names, each sleeping before it imports the other), its set-up the
    other: the two imports at once deadlock in Python's import system, as ``madmom``'s did."""

    name = "fake.warm_cycle"
    sample_rate = 22050
    outputs = {"imported": mirflow.SCALAR}

    @classmethod
    def warm(cls):
        import importlib
        import sys

        sys.path.insert(0, os.environ["MIRFLOW_TEST_CYCLE"])
        importlib.import_module("cycle_first")

    def setup(self, device):
        import importlib
        import sys

        sys.path.insert(0, os.environ["MIRFLOW_TEST_CYCLE"])
        importlib.import_module("cycle_second")
        self.device = "cpu"

    def analyze(self, chunk, inputs):
        return {"imported": 1.0}


class CrashOnce(mirflow.Analyzer):
    """Kills its own process the first time it sees a file named *once* (a mark beside the
    file remembers it), then works: a worker lost once, whose unit must be retried."""

    name = "fake.crash_once"
    sample_rate = 22050
    outputs = {"survived": mirflow.SCALAR}

    def analyze(self, chunk, inputs):
        mark = f"{chunk.path}.crashed"
        if "once" in os.path.basename(chunk.path) and not os.path.exists(mark):
            open(mark, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return {"survived": 1.0}


class CountAtMerge(mirflow.Analyzer):
    """Counts the clicks it is given at merge time (an at-merge input: its chunks need no clicks)."""

    name = "fake.count_at_merge"
    sample_rate = 22050
    outputs = {"counted": mirflow.SCALAR}
    requires = {"clicks": mirflow.Requirement("clicks", optional=True, at_merge=True)}

    def analyze(self, chunk, inputs):
        assert "clicks" not in inputs  # not given to chunks
        return {"counted": 0}


class Folding(mirflow.Analyzer):
    """Folds its merge chunk by chunk: each fold carries the chunks folded so far and keeps, as
    its block, which chunks it was given; the merge says what its folds left ('none': nothing).
    ``fail_at`` / ``decline_at`` / ``junk_at``: the fold of that chunk raises / returns None /
    returns what the contract does not allow (a dict)."""

    name = "fake.folding"
    sample_rate = 22050
    folds = True
    params = {"fail_at": mirflow.Param(-1, int), "decline_at": mirflow.Param(-1, int), "junk_at": mirflow.Param(-1, int)}
    outputs = {"folds": mirflow.LABEL, "chunks": mirflow.SCALAR}
    chunk_outputs = {"chunk": mirflow.SCALAR}

    def analyze(self, chunk, inputs):
        return {"chunk": float(chunk.index)}

    def fold(self, carry, index, parts, track):
        if index == self.config["fail_at"]:
            raise RuntimeError("this fold fails")
        if index == self.config["decline_at"]:
            return None
        if index == self.config["junk_at"]:
            return {"carry": carry}
        given = "+".join(str(int(part.outputs["chunk"]["value"])) for part in parts)
        return mirflow.Fold(carry=(carry or ()) + (index,), block=f"{index}:{given}")

    def merge(self, parts, track):
        folded = track.folded
        label = "none" if folded is None else " ".join(folded.blocks) + " | " + ",".join(map(str, folded.carry))
        return {"folds": {"label": label, "confidence": 1.0}, "chunks": float(len(parts))}


ALL = (Clicks, Level, Sections, Tonic, Broken, NeedsMissingLibrary, ImportsMissingLibrary, GpuCounter, EitherLane, Slow,
       CrashOnce, CountAtMerge, Folding, Warmed, WarmFails,
       WarmImportsACycle)


class FakePlugin:
    """Registers ``analyzers`` (all of the above by default)."""

    def __init__(self, analyzers=ALL):
        self.analyzers = analyzers

    @mirflow.hookimpl
    def register_analyzers(self, register):
        for cls in self.analyzers:
            register(cls)

    @mirflow.hookimpl
    def aggregate(self, analyzer, parts, track):
        if isinstance(analyzer, CountAtMerge):
            clicks = track.inputs["clicks"]
            return {"counted": {"value": None if clicks is None else len(clicks), "confidence": 1.0}}
        return None
