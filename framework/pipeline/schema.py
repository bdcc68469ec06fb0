"""Pipeline validation, done in full before any audio is touched (the model: model.py).

Every problem is collected (not just the first) and reported with file, line,
column and key path; unknown keys are errors; analyzers, parameters, inputs,
dependency cycles and the choice of which step feeds the timeline are checked
against the installed plugins.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..analyzer import LABEL, ParamError
from ..audio import MAX_DURATION
from .errors import Issue, PipelineError, did_you_mean, format_path
from .yamlpos import Located, check_size, load_located
from .model import (DESCRIPTORS, DEVICES, EXECUTORS, FORMATS, QUALITIES, TOP_KEYS, Chunking,  # noqa: F401
                    Pipeline, Resources, Step, check_workers, worker_limit)


def load_pipeline(path: str | Path, registry) -> Pipeline:
    """Read and validate a pipeline file; raise PipelineError listing every problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise PipelineError([Issue(str(path), None, None, "", f"cannot read pipeline: {err.strerror or err}")]) from None
    check_size(len(raw), path.name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise PipelineError([Issue(path.name, line, column, "",
                                   f"not UTF-8 text (byte 0x{raw[err.start]:02x}); save the file as UTF-8")]) from None
    return parse_pipeline(text, str(path), registry)


def parse_pipeline(text: str, filename: str, registry) -> Pipeline:
    located = load_located(text, Path(filename).name)
    return _Validator(located, Path(filename).name, filename, registry).run()


class _Validator:
    def __init__(self, located: Located, shown_name: str, filename: str, registry):
        self.doc = located
        self.file = shown_name
        self.filename = filename
        self.registry = registry
        self.issues: list[Issue] = []

    # -- reporting --------------------------------------------------------------
    def error(self, path: tuple, message: str, key: bool = False) -> None:
        line, column = self.doc.where(path, key=key) or (None, None)
        self.issues.append(Issue(self.file, line, column, format_path(path), message))

    def mapping(self, value: Any, path: tuple, allowed: tuple[str, ...]) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {_show(value)}")
            return {}
        for key in value:
            if key not in allowed:
                self.error(path + (key,), f"unknown key {key!r}{did_you_mean(key, allowed)}", key=True)
        return value

    def number(self, value: Any, path: tuple, *, minimum: float, maximum: float | None = None, why: str = "",
               integer: bool = False, strict: bool = False):
        kind = "a whole number" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or (integer and not float(value).is_integer()):
            self.error(path, f"expected {kind}, got {_show(value)}")
            return None
        if value < minimum or (strict and value == minimum):
            self.error(path, f"must be {'above' if strict else 'at least'} {minimum}, got {value}")
            return None
        if maximum is not None and value > maximum:
            self.error(path, f"must be at most {maximum}, got {value}" + (f" ({why})" if why else ""))
            return None
        return int(value) if integer else float(value)

    def choice(self, value: Any, path: tuple, choices: tuple[str, ...]):
        if value not in choices:
            self.error(path, f"must be one of {', '.join(choices)}, got {_show(value)}{did_you_mean(value, choices)}")
            return None
        return value

    # -- sections ---------------------------------------------------------------
    def run(self) -> Pipeline:
        top = self.doc.data
        if not isinstance(top, dict):
            self.error((), "a pipeline must be a mapping with at least 'steps'")
            raise PipelineError(self.issues)
        self.mapping(top, (), TOP_KEYS)
        name = top.get("name", Path(self.filename).stem)
        if not isinstance(name, str) or not name:
            self.error(("name",), f"expected a non-empty string, got {_show(name)}")
        pipeline = Pipeline(name=str(name), path=self.filename, description=str(top.get("description", "") or ""))
        pipeline.resample_quality = self.audio(top.get("audio")) or "HQ"
        pipeline.chunking = self.chunking(top.get("chunking", {}))
        pipeline.resources = self.resources(top.get("resources"))
        self.output(top.get("output"), pipeline)
        pipeline.steps = self.steps(top.get("steps"))
        pipeline.timeline = self.timeline(top.get("timeline"), pipeline.steps)
        if self.issues:
            raise PipelineError(self.issues)
        return pipeline

    def audio(self, value: Any) -> str | None:
        section = self.mapping(value, ("audio",), ("resample_quality",))
        if "resample_quality" in section:
            return self.choice(section["resample_quality"], ("audio", "resample_quality"), QUALITIES)
        return None

    def chunking(self, value: Any) -> Chunking:
        path = ("chunking",)
        if value in (False, "off"):  # YAML reads a bare `off` as false
            return Chunking(enabled=False)
        if value in (True, "on"):
            return Chunking()
        section = self.mapping(value, path, ("enabled", "min_duration", "length", "overlap"))
        defaults = Chunking()
        enabled = section.get("enabled", True)
        if not isinstance(enabled, bool):
            self.error(path + ("enabled",), f"expected true or false, got {_show(enabled)}")
            enabled = True
        day = 24 * 3600.0
        min_duration = self.number(section.get("min_duration", defaults.min_duration), path + ("min_duration",),
                                   minimum=0, maximum=day)
        length = self.number(section.get("length", defaults.length), path + ("length",), minimum=1, maximum=day)
        overlap = self.number(section.get("overlap", defaults.overlap), path + ("overlap",), minimum=0, maximum=day)
        if length is not None and overlap is not None and overlap * 2 >= length:
            self.error(path + ("overlap",), f"must be less than half the chunk length ({length:g} s), got {overlap:g}")
        return Chunking(
            enabled=enabled,
            min_duration=defaults.min_duration if min_duration is None else min_duration,
            length=defaults.length if length is None else length,
            overlap=defaults.overlap if overlap is None else overlap,
        )

    def resources(self, value: Any) -> Resources:
        path = ("resources",)
        section = self.mapping(value, path, ("device", "executor", "cpu", "gpu", "files_in_flight", "unit_timeout",
                                             "max_duration"))
        device = self.choice(section.get("device", "auto"), path + ("device",), DEVICES) or "auto"
        executor = self.choice(section.get("executor", "local"), path + ("executor",), EXECUTORS) or "local"
        cpu = self.mapping(section.get("cpu"), path + ("cpu",), ("workers",))
        gpu = self.mapping(section.get("gpu"), path + ("gpu",), ("batch_size",))
        workers = cpu.get("workers")
        if workers is not None:
            most, why = worker_limit()
            workers = self.number(workers, path + ("cpu", "workers"), minimum=1, integer=True, maximum=most, why=why)
        batch = self.number(gpu.get("batch_size", 8), path + ("gpu", "batch_size"), minimum=1, integer=True,
                            maximum=1024) or 8
        files = section.get("files_in_flight")
        if files is not None:
            files = self.number(files, path + ("files_in_flight",), minimum=1, integer=True, maximum=1000,
                                why="each file in flight holds its decoded audio")
        timeout = section.get("unit_timeout", "auto")
        if timeout != "auto":
            timeout = self.number(timeout, path + ("unit_timeout",), minimum=0, strict=True, maximum=7 * 86400,
                                  why="a week; use auto to scale with the audio each unit covers")
        longest = self.number(section.get("max_duration", MAX_DURATION), path + ("max_duration",), minimum=0,
                              strict=True, maximum=7 * 86400, why="a week of audio") or MAX_DURATION
        return Resources(device=device, executor=executor, cpu_workers=workers, gpu_batch_size=batch, files_in_flight=files,
                         unit_timeout=None if timeout == "auto" else timeout, max_duration=longest)

    def output(self, value: Any, pipeline: Pipeline) -> None:
        path = ("output",)
        section = self.mapping(value, path, ("directory", "formats"))
        if "directory" in section:
            if not isinstance(section["directory"], str) or not section["directory"]:
                self.error(path + ("directory",), f"expected a path, got {_show(section['directory'])}")
            else:
                pipeline.output_directory = section["directory"]
        if "formats" in section:
            formats = section["formats"]
            if not isinstance(formats, list) or not formats:
                self.error(path + ("formats",), f"expected a list such as [json, jams], got {_show(formats)}")
            else:
                known = tuple(getattr(self.registry, "exporters", None) or FORMATS)
                chosen = [self.choice(f, path + ("formats", i), known) for i, f in enumerate(formats)]
                pipeline.formats = tuple(dict.fromkeys(f for f in chosen if f))

    # -- steps, inputs, order ------------------------------------------------------
    def steps(self, value: Any) -> list[Step]:
        if not isinstance(value, list) or not value:
            self.error(("steps",), f"expected a non-empty list of steps, got {_show(value)}")
            return []
        raw: list[tuple[int, dict]] = []
        ids: dict[str, int] = {}
        for i, item in enumerate(value):
            path = ("steps", i)
            if isinstance(item, str):
                item = {"analyzer": item}
            section = self.mapping(item, path, ("id", "analyzer", "params", "inputs", "optional"))
            if not section:
                continue
            analyzer = section.get("analyzer")
            if not isinstance(analyzer, str):
                self.error(path + ("analyzer",), f"expected an analyzer name such as 'madmom_fast.beats', got {_show(analyzer)}")
                continue
            if analyzer not in self.registry.analyzers:
                self.error(path + ("analyzer",), f"unknown analyzer {analyzer!r}{did_you_mean(analyzer, self.registry.names())}")
                continue
            step_id = section.get("id", analyzer.split(".", 1)[1])
            if not isinstance(step_id, str) or not step_id.isidentifier():
                self.error(path + ("id",), f"expected a name of letters, digits and underscores, got {_show(step_id)}")
                continue
            if step_id in ids:
                self.error(path + ("id",) if "id" in section else path + ("analyzer",),
                           f"step id {step_id!r} is used twice (steps[{ids[step_id]}] too); give one an 'id'")
                continue
            ids[step_id] = i
            raw.append((i, {**section, "id": step_id}))
        steps = [self.step(i, section, raw) for i, section in raw]
        steps = [step for step in steps if step is not None]
        return self.ordered(steps, {section["id"]: i for i, section in raw})

    def step(self, i: int, section: dict, raw: list[tuple[int, dict]]) -> Step | None:
        path = ("steps", i)
        cls = self.registry.analyzers[section["analyzer"]]
        params = section.get("params") or {}
        if not isinstance(params, dict):
            self.error(path + ("params",), f"expected a mapping, got {_show(params)}")
            params = {}
        for key in params:
            if key not in cls.params:
                self.error(path + ("params", key), f"unknown parameter {key!r} for {cls.name}{did_you_mean(key, cls.params)}", key=True)
        try:
            params = cls.validate_params({k: v for k, v in params.items() if k in cls.params})
        except ParamError as err:
            key = next((k for k in params if repr(k) in str(err)), None)
            self.error(path + ("params",) + ((key,) if key else ()), f"{cls.name}: {err}")
        optional = section.get("optional", False)
        if not isinstance(optional, bool):
            self.error(path + ("optional",), f"expected true or false, got {_show(optional)}")
        inputs = self.inputs(i, section, cls, raw)
        missing = cls.missing_libraries()
        unavailable = (f"needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed: "
                       f"{cls.install_command()}") if missing else cls.unavailable(params)
        if unavailable and optional is not True:
            self.error(path + ("params",) if section.get("params") else path + ("analyzer",),
                       f"{cls.name}: {unavailable} (or mark the step optional: true)")
        return Step(id=section["id"], analyzer=cls.name, params=params, inputs=inputs, optional=bool(optional),
                    unavailable=unavailable if optional is True else None)

    def inputs(self, i: int, section: dict, cls, raw: list[tuple[int, dict]]) -> dict:
        path = ("steps", i, "inputs")
        given = section.get("inputs") or {}
        if not isinstance(given, dict):
            self.error(path, f"expected a mapping of input slot to step id, got {_show(given)}")
            given = {}
        for slot in given:
            if slot not in cls.requires:
                self.error(path + (slot,), f"{cls.name} has no input {slot!r}{did_you_mean(slot, cls.requires)}", key=True)
        providers = {s["id"]: self.registry.analyzers[s["analyzer"]] for _, s in raw}
        bound = {}
        for slot, requirement in cls.requires.items():
            if slot in given:
                target = given[slot]
                step_id, _, output = str(target).partition(".")
                output = output or requirement.output
                if step_id == section["id"]:
                    self.error(path + (slot,), f"a step cannot take its own output ({step_id!r} is this step's id)")
                elif step_id not in providers:
                    self.error(path + (slot,), f"no other step with id {step_id!r}{did_you_mean(step_id, providers)}")
                elif output not in providers[step_id].outputs:
                    self.error(path + (slot,), f"step {step_id!r} has no output {output!r}")
                else:
                    bound[slot] = (step_id, output)
                continue
            offers = [sid for sid, c in providers.items() if requirement.output in c.outputs and sid != section["id"]]
            if len(offers) == 1:
                bound[slot] = (offers[0], requirement.output)
            elif len(offers) > 1:
                self.error(path, f"{cls.name} needs {requirement.output!r} and steps {', '.join(offers)} all give it; choose one with inputs: {{{slot}: STEP_ID}}")
            elif requirement.optional:
                bound[slot] = None
            else:
                self.error(("steps", i, "analyzer"), f"{cls.name} needs {requirement.output!r} from another step, and no step gives it")
        return bound

    def ordered(self, steps: list[Step], index: dict[str, int]) -> list[Step]:
        """Steps sorted so each comes after its inputs; cycles are errors."""
        by_id = {step.id: step for step in steps}
        done: list[Step] = []
        state: dict[str, str] = {}

        def visit(step: Step, trail: list[str]) -> None:
            if state.get(step.id) == "done":
                return
            if state.get(step.id) == "active":
                cycle = trail[trail.index(step.id):] + [step.id]
                self.error(("steps", index[step.id], "inputs"), f"steps depend on each other in a cycle: {' -> '.join(cycle)}")
                return
            state[step.id] = "active"
            for binding in step.inputs.values():
                if binding and binding[0] in by_id:
                    visit(by_id[binding[0]], trail + [step.id])
            state[step.id] = "done"
            done.append(step)

        for step in steps:
            visit(step, [])
        return done

    # -- which step feeds summary and timeline --------------------------------------
    def timeline(self, value: Any, steps: list[Step]) -> dict[str, dict[str, Any]]:
        path = ("timeline",)
        section = self.mapping(value, path, tuple(DESCRIPTORS))
        outputs = {step.id: self.registry.analyzers[step.analyzer].outputs for step in steps}
        chosen: dict[str, dict[str, Any]] = {}
        for descriptor, kind in DESCRIPTORS.items():
            if descriptor in section:
                spec = section[descriptor]
                if isinstance(spec, dict) and set(spec) == {"vote"} and isinstance(spec["vote"], list):
                    if kind != LABEL:
                        self.error(path + (descriptor,), f"only labels can be combined by vote; {descriptor!r} is {kind}")
                        continue
                    sources = [self.source(s, descriptor, kind, outputs, path + (descriptor, "vote", n)) for n, s in enumerate(spec["vote"])]
                    if all(sources) and sources:
                        chosen[descriptor] = {"vote": sources}
                    continue
                source = self.source(spec, descriptor, kind, outputs, path + (descriptor,))
                if source:
                    chosen[descriptor] = {"from": source}
                continue
            offers = [(sid, descriptor) for sid, outs in outputs.items() if outs.get(descriptor) == kind]
            if len(offers) == 1:
                chosen[descriptor] = {"from": offers[0]}
            elif len(offers) > 1:
                names = ", ".join(sid for sid, _ in offers)
                self.error(path, f"steps {names} all give {descriptor!r}; say which feeds the timeline "
                                 f"(timeline: {{{descriptor}: {offers[0][0]}}}) or combine them (timeline: {{{descriptor}: {{vote: [...]}}}})")
        return chosen

    def source(self, spec: Any, descriptor: str, kind: str, outputs: dict, path: tuple):
        if not isinstance(spec, str):
            self.error(path, f"expected a step id (or step.output), got {_show(spec)}")
            return None
        step_id, _, output = spec.partition(".")
        output = output or descriptor
        if step_id not in outputs:
            self.error(path, f"no step with id {step_id!r}{did_you_mean(step_id, outputs)}")
            return None
        if outputs[step_id].get(output) != kind:
            self.error(path, f"step {step_id!r} has no {kind} output {output!r}")
            return None
        return (step_id, output)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 40 else text[:37] + "..."
