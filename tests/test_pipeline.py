"""Pipeline YAML: every error names file, line, column and key path; shipped pipelines validate."""

from __future__ import annotations

import pytest

from mirflow.cli.common import bundled_pipelines
from mirflow.pipeline import PipelineError, load_pipeline
from mirflow.plugin_manager import collect_analyzers, make_plugin_manager


def errors_of(write_pipeline, registry, text):
    with pytest.raises(PipelineError) as caught:
        load_pipeline(write_pipeline(text), registry)
    return [str(issue) for issue in caught.value.issues]


def test_a_valid_pipeline_loads_with_defaults(write_pipeline, registry):
    pipeline = load_pipeline(write_pipeline("""
        name: demo
        steps:
          - analyzer: fake.clicks
            params: {threshold: 0.3}
          - fake.sections
    """), registry)
    assert [s.id for s in pipeline.steps] == ["clicks", "sections"]
    assert pipeline.step("clicks").params == {"threshold": 0.3}
    assert pipeline.step("sections").inputs == {"clicks": ("clicks", "clicks")}
    assert (pipeline.chunking.min_duration, pipeline.chunking.length, pipeline.chunking.overlap) == (60, 120, 10)
    assert pipeline.resources.gpu_batch_size == 8 and pipeline.resources.device == "auto"
    assert pipeline.timeline["chords"] == {"from": ("sections", "chords")}


def test_unknown_analyzer_names_the_line_and_column_and_suggests(write_pipeline, registry):
    assert errors_of(write_pipeline, registry, """
        steps:
          - analyzer: fake.click
    """) == ["pipe.yaml:3:15 steps[0].analyzer: unknown analyzer 'fake.click' (did you mean 'fake.clicks'?)"]


def test_all_errors_are_reported_at_once(write_pipeline, registry):
    errors = errors_of(write_pipeline, registry, """
        stepz: []
        chunking:
          length: 20
          overlap: 15
        resources:
          device: tpu
          gpu: {batch_size: 0}
        steps:
          - analyzer: fake.clicks
            params: {threshold: 2, treshold: 1}
    """)
    assert errors == [
        "pipe.yaml:2:1 stepz: unknown key 'stepz' (did you mean 'steps'?)",
        "pipe.yaml:5:12 chunking.overlap: must be less than half the chunk length (20 s), got 15",
        "pipe.yaml:7:11 resources.device: must be one of auto, cpu, gpu, got 'tpu' (did you mean 'gpu'?)",
        "pipe.yaml:8:21 resources.gpu.batch_size: must be at least 1, got 0",
        "pipe.yaml:11:28 steps[0].params.treshold: unknown parameter 'treshold' for fake.clicks (did you mean 'threshold'?)",
        "pipe.yaml:11:25 steps[0].params.threshold: fake.clicks: parameter 'threshold': 2.0 is above the maximum 1.0",
    ]


def test_yaml_syntax_errors_have_a_line(write_pipeline, registry):
    errors = errors_of(write_pipeline, registry, "steps:\n  - analyzer: [fake.clicks\n")
    assert len(errors) == 1 and errors[0].startswith("pipe.yaml:3:1: invalid YAML")


def test_duplicate_keys_are_errors(write_pipeline, registry):
    errors = errors_of(write_pipeline, registry, "steps: [fake.clicks]\nsteps: [fake.level]\n")
    assert errors == ["pipe.yaml:2:1 steps: duplicate key 'steps'"]


def test_missing_dependency_is_an_error(write_pipeline, registry):
    errors = errors_of(write_pipeline, registry, "steps:\n  - fake.sections\n")
    assert errors == ["pipe.yaml:2:5 steps[0].analyzer: fake.sections needs 'clicks' from another step, and no step gives it"]


def test_dependencies_order_the_steps_and_cycles_are_errors(write_pipeline, registry):
    pipeline = load_pipeline(write_pipeline("steps: [fake.sections, fake.clicks]\n"), registry)
    assert [s.id for s in pipeline.steps] == ["clicks", "sections"]
    ambiguous = errors_of(write_pipeline, registry, """
        steps:
          - {analyzer: fake.clicks, id: a}
          - {analyzer: fake.clicks, id: b}
          - {analyzer: fake.sections, inputs: {clicks: c}}
    """)
    assert ambiguous == ["pipe.yaml:5:48 steps[2].inputs.clicks: no other step with id 'c'"]


def test_cycle_between_steps_is_reported(write_pipeline, add_analyzers):
    import mirflow

    class Loop(mirflow.Analyzer):
        name = "fake.loop"
        outputs = {"clicks": mirflow.EVENTS}
        requires = {"clicks": mirflow.Requirement("clicks")}

    registry = add_analyzers(Loop)
    errors = errors_of(write_pipeline, registry, """
        steps:
          - {analyzer: fake.loop, id: one, inputs: {clicks: two}}
          - {analyzer: fake.loop, id: two, inputs: {clicks: one}}
    """)
    assert errors == ["pipe.yaml:3:44 steps[0].inputs: steps depend on each other in a cycle: one -> two -> one"]


def test_several_steps_giving_one_descriptor_must_be_chosen(write_pipeline, registry):
    errors = errors_of(write_pipeline, registry, """
        steps:
          - {analyzer: fake.level, id: a}
          - {analyzer: fake.level, id: b}
    """)
    assert errors == ["pipe.yaml:2:1 timeline: steps a, b all give 'tempo'; say which feeds the timeline "
                      "(timeline: {tempo: a}) or combine them (timeline: {tempo: {vote: [...]}})"]
    pipeline = load_pipeline(write_pipeline("""
        steps:
          - {analyzer: fake.level, id: a}
          - {analyzer: fake.level, id: b}
        timeline:
          tempo: b
    """), registry)
    assert pipeline.timeline["tempo"] == {"from": ("b", "tempo")}


def test_chunking_off_and_unknown_step_keys(write_pipeline, registry):
    pipeline = load_pipeline(write_pipeline("chunking: off\nsteps: [fake.clicks]\n"), registry)
    assert pipeline.chunking.enabled is False
    errors = errors_of(write_pipeline, registry, "steps:\n  - analyzer: fake.clicks\n    parms: {}\n")
    assert errors == ["pipe.yaml:3:5 steps[0].parms: unknown key 'parms' (did you mean 'params'?)"]


def test_pipeline_hash_changes_with_parameters_not_with_output_directory(write_pipeline, registry):
    a = load_pipeline(write_pipeline("steps: [fake.clicks]\noutput: {directory: x}\n", "a.yaml"), registry)
    b = load_pipeline(write_pipeline("steps: [fake.clicks]\noutput: {directory: y}\n", "b.yaml"), registry)
    c = load_pipeline(write_pipeline("steps: [{analyzer: fake.clicks, params: {threshold: 0.1}}]\n", "c.yaml"), registry)
    assert a.hash == b.hash != c.hash


@pytest.mark.parametrize("name", sorted(bundled_pipelines()))
def test_every_shipped_pipeline_validates(name):
    registry = collect_analyzers(make_plugin_manager())
    pipeline = load_pipeline(bundled_pipelines()[name], registry)
    assert pipeline.steps
    assert "default" in bundled_pipelines()


def test_billion_laughs_fails_fast_with_a_line(write_pipeline, registry):
    import time
    import tracemalloc

    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]
    text = "\n".join(levels) + "\nsteps: [fake.clicks]\n"
    tracemalloc.start()
    began = time.monotonic()
    (error,) = errors_of(write_pipeline, registry, text)
    seconds, peak = time.monotonic() - began, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 5 and peak < 100 * 2**20
    assert error.startswith("pipe.yaml:") and "more than 20,000 values (aliases expand to too many)" in error


def test_an_alias_that_contains_itself_is_an_error_not_a_recursion(write_pipeline, registry):
    (error,) = errors_of(write_pipeline, registry, "name: &n [*n]\nsteps: [fake.clicks]\n")
    assert error == "pipe.yaml:1:7 name[0]: an alias that contains itself"


def test_a_file_that_is_not_utf8_names_the_line_and_byte(tmp_path, registry):
    path = tmp_path / "latin.yaml"
    path.write_bytes("# pipeline\nname: caf\xe9\nsteps: [fake.clicks]\n".encode("latin-1"))
    with pytest.raises(PipelineError) as caught:
        load_pipeline(path, registry)
    assert str(caught.value) == "latin.yaml:2:10: not UTF-8 text (byte 0xe9); save the file as UTF-8"


def test_a_huge_file_is_refused_before_parsing(tmp_path, registry):
    path = tmp_path / "huge.yaml"
    path.write_text("steps:\n" + "  - fake.clicks\n" * 100_000)
    with pytest.raises(PipelineError) as caught:
        load_pipeline(path, registry)
    assert "1,600,007 bytes; a pipeline may have 1,000,000 at most" in str(caught.value)


def test_numbers_must_be_finite_and_within_sane_ranges(write_pipeline, registry):
    errors = errors_of(write_pipeline, registry, """
        chunking: {length: .nan, overlap: .inf, min_duration: 1.0e+9}
        resources: {cpu: {workers: 100000}, unit_timeout: 0, max_duration: .inf}
        steps: [fake.clicks]
        """)
    assert any("resources.unit_timeout: must be above 0" in e for e in errors)
    assert any("resources.max_duration: expected a number, got inf" in e for e in errors)
    assert any("chunking.length: expected a number, got nan" in e for e in errors)
    assert any("chunking.overlap: expected a number, got inf" in e for e in errors)
    assert any("chunking.min_duration: must be at most 86400.0" in e for e in errors)
    assert any("resources.cpu.workers: must be at most" in e and "each worker is a process" in e for e in errors)
