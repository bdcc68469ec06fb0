"""The analyzer contract: what a plugin implements and what mirflow relies on.

An analyzer is a small class with declarations (name, version, resource, audio it
wants, parameters, outputs, requirements) and two methods: ``setup`` loads models
once per worker process, ``analyze`` turns one chunk into outputs. Everything heavy
(tensorflow, essentia, madmom, librosa) is imported inside those methods, never at
module top, so that listing plugins and ``mirflow --help`` stay instant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

# Which lane runs an analyzer: the CPU workers, the GPU lane, or "auto": the GPU lane where the
# run may use a GPU and the analyzer says one is usable here (``gpu_problem``), else the CPU lane.
RESOURCES = ("cpu", "gpu", "auto")
CHANNEL_LAYOUTS = ("mono", "all")

# Output kinds, each with a default merge rule in mirflow.aggregate.
SCALAR = "scalar"  # number, or {"value": x, "confidence": c}
LABEL = "label"  # {"label": str, "confidence": c} (or a plain str)
EVENTS = "events"  # [{"time": t, ...}] (or plain times)
SEGMENTS = "segments"  # [{"start": s, "end": e, "label": str, "confidence": c}]
CURVE = "curve"  # {"times": [...], "values": [...]}
OUTPUT_KINDS = (SCALAR, LABEL, EVENTS, SEGMENTS, CURVE)


def threads_per_worker() -> int:
    """How many threads an analyzer may use: the scheduler runs one worker per core and sets
    MIRFLOW_THREADS so that numerical libraries inside a worker do not oversubscribe."""
    import os

    return max(1, int(os.environ.get("MIRFLOW_THREADS") or os.cpu_count() or 1))


class ParamError(ValueError):
    """A parameter value that an analyzer does not accept."""


@dataclass(frozen=True)
class Param:
    """One declared parameter: default, type and the range or choices it accepts."""

    default: Any
    type: type = float
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    help: str = ""

    def validate(self, value: Any) -> Any:
        """Return ``value`` converted to the declared type, or raise ParamError."""
        if self.type is bool:
            if not isinstance(value, bool):
                raise ParamError(f"expected true or false, got {value!r}")
            return value
        if self.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParamError(f"expected a number, got {value!r}")
            if self.type is int and float(value) != int(value):
                raise ParamError(f"expected a whole number, got {value!r}")
            value = self.type(value)
            if isinstance(value, float) and not math.isfinite(value):
                raise ParamError(f"expected a finite number, got {value!r}")
            if self.min is not None and value < self.min:
                raise ParamError(f"{value!r} is below the minimum {self.min!r}")
            if self.max is not None and value > self.max:
                raise ParamError(f"{value!r} is above the maximum {self.max!r}")
        elif self.type is list:
            if not isinstance(value, list):
                raise ParamError(f"expected a list, got {value!r}")
            value = list(value)
        elif not isinstance(value, self.type):
            raise ParamError(f"expected {self.type.__name__}, got {value!r}")
        if self.choices is not None:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if item not in self.choices:
                    allowed = ", ".join(map(str, self.choices))
                    raise ParamError(f"{item!r} is not one of: {allowed}")
        return value


@dataclass(frozen=True)
class Requirement:
    """An input an analyzer needs from another step's output (e.g. ``beats``).

    The pipeline binds it to a step (``inputs: {slot: step_id}``), or mirflow picks
    the only step that provides an output of that name.

    ``at_merge``: the input is needed only when the chunks are merged (the ``aggregate``
    hook finds it in ``track.inputs``), so the chunks run in parallel with the step that
    gives it; chords snap to beats this way without waiting for the beat tracker.
    """

    output: str
    optional: bool = False
    at_merge: bool = False


@dataclass(frozen=True)
class Fold:
    """What one :meth:`Analyzer.fold` returns: ``carry``, what the next fold starts from (keep
    it small: it travels to the coordinator and out again with every fold), and ``block``, what
    the merge needs of the stretch this fold covered (kept by the coordinator, in chunk order,
    and handed to the merge once)."""

    carry: Any
    block: Any = None


@dataclass(frozen=True)
class Folded:
    """What the merge finds in ``track.folded`` when every chunk was folded: the last fold's
    ``carry`` and every fold's ``block``, in chunk order."""

    carry: Any
    blocks: tuple


class Analyzer:
    """Base class for every analyzer. Subclasses set the class attributes below.

    Outputs returned by ``analyze`` use times in seconds from the start of the
    chunk's audio; mirflow shifts them to track time before merging.
    """

    name: ClassVar[str] = ""  # dotted "plugin.analyzer"
    version: ClassVar[str] = "1"  # part of every result (and of any cache key)
    resource: ClassVar[str] = "cpu"  # "cpu", "gpu" or "auto" (either; see gpu_problem): which lane runs it
    sample_rate: ClassVar[int | None] = 44100  # None: the file's own rate
    channels: ClassVar[str] = "mono"  # "mono" (mixed down) or "all" (channels, samples)
    chunked: ClassVar[bool] = True  # False: always sees the whole track as one chunk
    params: ClassVar[dict[str, Param]] = {}
    outputs: ClassVar[dict[str, str]] = {}  # output name -> kind
    requires: ClassVar[dict[str, Requirement]] = {}  # input slot -> requirement
    libraries: ClassVar[tuple[str, ...]] = ()  # import names it needs (checked when a pipeline is loaded)
    extra: ClassVar[str | None] = None  # the mirflow extra that installs them (None: the core install)
    install_hint: ClassVar[str] = ""  # how to install them when they are not an extra of mirflow's
    code_licence: ClassVar[str] = ""  # licence of the code that analyzes (the libraries it runs)
    model_licence: ClassVar[str | None] = None  # licence of the trained model it runs; None: no model
    chunk_outputs: ClassVar[dict[str, str]] = {}  # what analyze() returns when the merge turns it into outputs
    # True: the chunk's samples are scaled so that the whole track's RMS is -18 dBFS (one factor
    # per track). For models whose input is not gain-invariant (madmom's log(1 + x) spectrograms):
    # a song 12 dB quieter must give the same beats and chords.
    level_normalized: ClassVar[bool] = False
    # True: the merge can be folded chunk by chunk as the chunks come in (see ``fold``), so that
    # little of it is left once the last chunk is analyzed.
    folds: ClassVar[bool] = False

    def __init__(self, **config: Any) -> None:
        self.config = self.validate_params(config)
        self.device = "cpu"

    @classmethod
    def validate_params(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in and every value checked; raises ParamError naming the key."""
        unknown = sorted(set(config) - set(cls.params))
        if unknown:
            raise ParamError(f"unknown parameter {unknown[0]!r}")
        values = {}
        for key, spec in cls.params.items():
            try:
                values[key] = spec.validate(config.get(key, spec.default))
            except ParamError as err:
                raise ParamError(f"parameter {key!r}: {err}") from None
        cls.check_params(values)
        return values

    @classmethod
    def check_params(cls, values: dict[str, Any]) -> None:
        """Cross-parameter checks (e.g. min_bpm < max_bpm); raise ParamError."""

    @classmethod
    def unavailable(cls, params: dict[str, Any]) -> str | None:
        """Why a step with these parameters cannot run on this machine (a model file that
        is not installed, say), with the command that fixes it; None when it can. Checked
        when the pipeline is loaded: an error, or for an ``optional`` step a skip that the
        result records."""
        return None

    @classmethod
    def gpu_problem(cls) -> str | None:
        """For ``resource = "auto"`` analyzers: why this one cannot use a GPU on this machine
        (no GPU build of its library, no driver), or None when it can.

        Asked once per run, in the coordinator, when the run's device is ``auto``: None puts the
        step in the GPU lane (``prepare`` on CPU workers, ``analyze_batch`` in the GPU process),
        anything else leaves it in the CPU lane (``analyze``), exactly as a ``cpu`` analyzer, so
        that a machine without a GPU pays nothing for the analyzer's GPU path. Keep it cheap
        (look for files; import nothing heavy). ``setup("gpu")`` still checks for real and
        raises when the GPU does not work after all."""
        return None

    @classmethod
    def warm(cls) -> None:
        """Import what :meth:`setup` will import, before it is needed: each worker calls this
        for its pipeline's steps in a thread as soon as it has started, while the coordinator
        is still decoding the first file, so that its first chunk does not begin with the
        library's import (madmom's: ~0.4 s). Imports only: no models, no state, nothing that
        costs a worker that never runs this step more than the import. The worker's first unit
        waits for every step's warm to end (two threads importing one package at once can
        deadlock in Python's import system), so a warm that blocks delays that unit, up to two
        minutes. A failure is ignored here: the step's set-up reports it. Default: nothing."""

    def compiles_on_first_run(self) -> bool:
        """Whether set-up compiles code once per machine (numba, when importing librosa: ~40 s
        on 2 cores, cached afterwards). ``mirflow run`` tells the user before such a first run
        instead of looking stuck."""
        return False

    def setup(self, device: str) -> None:
        """Load models once per worker process; set ``self.device`` to what really runs.

        ``device`` is the pipeline's request (``auto``, ``cpu`` or ``gpu``). A ``gpu``
        analyzer asked for ``gpu`` with no usable GPU must raise, saying why. An ``auto``
        analyzer gets ``cpu`` in the CPU lane and the request in the GPU lane.
        """
        self.device = "cpu"

    def analyze(self, chunk, inputs: dict[str, Any]) -> dict[str, Any]:
        """Return ``{output_name: value}`` for one chunk (a :class:`mirflow.audio.Chunk`).

        ``inputs`` maps each requirement slot to the track-level output of the step
        bound to it (or None for a missing optional input).
        """
        raise NotImplementedError

    def setup_features(self) -> None:
        """For ``gpu`` analyzers: load what ``prepare`` needs, once per CPU worker."""

    def prepare(self, chunk, inputs: dict[str, Any]) -> Any:
        """For ``gpu`` analyzers: the CPU-lane half (mel patches and the like).

        Runs in the CPU lane so that the device never waits behind feature extraction;
        what it returns (picklable) is what ``analyze_batch`` receives. Default: a
        copy of the chunk itself.
        """
        from dataclasses import replace

        import numpy as np

        return replace(chunk, samples=np.array(chunk.samples))

    def analyze_batch(self, items: list, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Analyze many prepared chunks (from any files) in one call; ``gpu`` analyzers
        override it to run their model once per batch. Default: ``analyze`` each."""
        return [self.analyze(item, item_inputs) for item, item_inputs in zip(items, inputs)]

    def merge(self, parts: list, track) -> dict[str, Any] | None:
        """Merge this analyzer's per-chunk ``parts`` (:class:`mirflow.aggregate.Part`, times
        already in track time) into its track-level outputs; ``track`` is a
        :class:`mirflow.aggregate.Track` (duration, chunk plan, ``at_merge`` inputs).

        The analyzer owns its merge (one decode over stitched activations, segments joined
        and snapped to beats...). Default: None, mirflow's rule per output kind
        (mirflow.aggregate). Another plugin can still take a merge over through the
        ``aggregate`` hook, which is asked first.

        ``track.folded`` holds what the analyzer's folds left (see ``fold``), or None.
        """
        return None

    def fold(self, carry: Any, index: int, parts: list, track) -> Fold | None:
        """Fold chunk ``index`` into the merge ahead of it (analyzers with ``folds = True``).

        A merge that is a recursion over the track in time order (a Viterbi forward pass) need
        not wait for the last chunk: mirflow calls ``fold`` once per chunk, in chunk order, as
        soon as chunk ``index`` and its neighbours are analyzed and the fold of chunk
        ``index - 1`` is back. ``parts`` are the chunks
        ``index - 1``, ``index`` and ``index + 1`` (those that exist; :class:`Part`, as
        ``merge`` gets them): whatever of chunk ``index`` an overlap's crossfade changes is
        known once its neighbours are. ``carry`` is what the fold before returned (None for
        chunk 0); ``track`` has no at-merge inputs yet. Return a :class:`Fold`, or None when
        this track cannot be folded (the merge then gets no fold state).

        A fold is a unit like any other (it runs in a worker, on any executor), so it must be
        a pure function of its arguments. When every chunk was folded, ``merge`` finds
        :class:`Folded` in ``track.folded`` (else None: a fold failed or declined, or the track
        is one chunk) and must give exactly what it gives without it.
        """
        return None

    @classmethod
    def install_command(cls) -> str:
        """The command that installs this analyzer's libraries."""
        if cls.extra:
            return f"pip install 'mirflow[{cls.extra}]'"
        return cls.install_hint or "pip install " + " ".join(cls.libraries)

    @classmethod
    def missing_libraries(cls) -> list[str]:
        """The declared libraries that are not installed (found without importing them: a
        listing must not load TensorFlow)."""
        from importlib.util import find_spec

        missing = []
        for library in cls.libraries:
            try:
                found = find_spec(library) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(library)
        return missing

    @classmethod
    def describe(cls) -> str:
        """First line of the docstring, for listings."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


def check_analyzer_class(cls: type) -> None:
    """Reject a malformed analyzer at registration, not in the middle of a run."""
    where = f"{cls.__module__}.{cls.__qualname__}"
    if not (isinstance(cls, type) and issubclass(cls, Analyzer)):
        raise TypeError(f"{where} is not a subclass of mirflow.Analyzer")
    if not cls.name or cls.name.count(".") != 1:
        raise TypeError(f"{where}.name must be 'plugin.analyzer', got {cls.name!r}")
    if cls.resource not in RESOURCES:
        raise TypeError(f"{where}.resource must be one of {RESOURCES}, got {cls.resource!r}")
    if cls.resource == "auto" and cls.gpu_problem.__func__ is Analyzer.gpu_problem.__func__:
        raise TypeError(f"{where}.resource is 'auto' but it does not define gpu_problem() (when may it use a GPU?)")
    if cls.channels not in CHANNEL_LAYOUTS:
        raise TypeError(f"{where}.channels must be one of {CHANNEL_LAYOUTS}, got {cls.channels!r}")
    for output, kind in cls.outputs.items():
        if kind not in OUTPUT_KINDS:
            raise TypeError(f"{where}.outputs[{output!r}] has unknown kind {kind!r}")
    if cls.folds and cls.fold is Analyzer.fold:
        raise TypeError(f"{where}.folds is True but it does not define fold(carry, index, parts, track)")
    try:
        cls.validate_params({})
    except ParamError as err:
        raise TypeError(f"{where}: defaults do not validate: {err}") from None
