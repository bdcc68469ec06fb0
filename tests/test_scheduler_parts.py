"""The scheduler's parts on their own: phases and file states move only along their
transitions, the slot pool's retry, deadline and failed-start rules (with a backend made
for the test), the GPU batcher, and ``Scheduler.submit`` as the server feeds it."""

from __future__ import annotations

import threading
import time

import pytest

import mirflow
from mirflow.audio import plan_chunks
from mirflow.pipeline import load_pipeline
from mirflow.scheduler import build_scheduler
from mirflow.scheduler.batcher import GpuBatcher, GpuItem
from mirflow.scheduler.folds import FoldStream
from mirflow.scheduler.plan import FilePlan, FileState, StepPhase, StepState
from mirflow.scheduler.records import Status, StepRecord
from mirflow.scheduler.slots import Died, Done, Ready, Slot, SlotPool, StartFailed, WorkersCannotStart
from mirflow.scheduler.units import (AGGREGATE, ANALYZE, FOLD, AnalyzeWork, Completion, DecodeWork, MergeWork, Unit,
                                     UnitKind, enqueue)


def test_a_step_moves_only_along_its_transitions():
    state = StepState(StepRecord("fake.clicks", "1", {}))
    with pytest.raises(RuntimeError, match="from waiting to merging"):
        state.move(StepPhase.MERGING)
    for phase in (StepPhase.ANALYZING, StepPhase.MERGE_WAITING, StepPhase.MERGING):
        state.move(phase)
    state.settle(Status.OK)
    assert (state.phase, state.record.status) == (StepPhase.SETTLED, Status.OK)
    with pytest.raises(RuntimeError, match="from settled to analyzing"):
        state.move(StepPhase.ANALYZING)


def test_a_file_moves_only_along_its_transitions_and_any_file_can_be_cancelled_once():
    plan = FilePlan("song.wav", "song", pipeline=None, registry=None, emit=lambda *a, **k: None)
    with pytest.raises(RuntimeError, match="song.wav: a file cannot go from decoding to exporting"):
        plan.move(FileState.EXPORTING)
    plan.move(FileState.ANALYZING)
    with pytest.raises(RuntimeError, match="from analyzing to up to date"):
        plan.move(FileState.UP_TO_DATE)
    plan.move(FileState.CANCELLED)
    assert plan.finished()  # nothing out, and cancelled
    with pytest.raises(RuntimeError):
        plan.move(FileState.CANCELLED)


def test_units_are_frozen_and_their_kind_follows_their_work():
    unit = Unit(1, "cpu", DecodeWork(frozenset({(22050, "mono")})), file="a.wav")
    assert unit.kind is UnitKind.DECODE and unit.kind == "decode"
    with pytest.raises(AttributeError):
        unit.file = "b.wav"
    merge = MergeWork(offsets=((0, 0.0),), raw=({},), duration=1.0, spans=())
    queue = __import__("collections").deque([Unit(2, "cpu", AnalyzeWork(None, None, {}))])
    enqueue(queue, Unit(3, "cpu", merge))
    assert [u.kind for u in queue] == [AGGREGATE, ANALYZE]  # a merge goes ahead of chunk work
    fold = FoldStream(plan_chunks(50.0, min_duration=20, length=20, overlap=5), 50.0)
    fold.add(0, 0.0, {})
    fold.add(1, 15.0, {})
    enqueue(queue, Unit(4, "cpu", fold.next_work()))
    assert [u.kind for u in queue] == [AGGREGATE, FOLD, ANALYZE]  # a fold too, behind the merges queued before it


def test_a_fold_stream_folds_one_chunk_at_a_time_once_its_neighbours_are_in():
    stream = FoldStream(plan_chunks(50.0, min_duration=20, length=20, overlap=5), 50.0)
    stream.add(0, 0.0, {"n": 0})
    assert stream.next_work() is None  # chunk 1 (its crossfade neighbour) is not in
    stream.add(2, 30.0, {"n": 2})
    stream.add(1, 15.0, {"n": 1})
    first = stream.next_work()
    assert (first.index, first.offsets, first.carry) == (0, ((0, 0.0), (1, 15.0)), None)
    assert first.raw == ({"n": 0}, {"n": 1})
    assert stream.next_work() is None and stream.busy()  # one fold out at a time
    stream.done(Completion(Unit(1, "cpu", first, chunk=0), True, mirflow.Fold("after 0", "block 0")))
    second = stream.next_work()
    assert (second.index, [i for i, _ in second.offsets], second.carry) == (1, [0, 1, 2], "after 0")
    assert stream.folded() is None  # chunks 1 and 2 not folded yet
    stream.done(Completion(Unit(2, "cpu", second, chunk=1), True, mirflow.Fold("after 1", "block 1")))
    assert sorted(stream.parts) == [1, 2]  # chunk 0 is no later fold's neighbour
    third = stream.next_work()
    stream.done(Completion(Unit(3, "cpu", third, chunk=2), True, mirflow.Fold("after 2", "block 2")))
    assert not stream.busy() and stream.folded() == mirflow.Folded("after 2", ("block 0", "block 1", "block 2"))


def test_a_fold_stream_stops_for_good_when_a_fold_fails_or_declines():
    for value, ok in ((None, True), (None, False)):
        stream = FoldStream(plan_chunks(50.0, min_duration=20, length=20, overlap=5), 50.0)
        for chunk in range(3):
            stream.add(chunk, 15.0 * chunk, {})
        work = stream.next_work()
        stream.done(Completion(Unit(1, "cpu", work, chunk=0), ok, value, error=None if ok else "boom"))
        assert stream.next_work() is None and not stream.busy() and stream.folded() is None
        assert stream.parts == {}  # nothing kept for folds that will not come


class ScriptedPool(SlotPool):
    """A backend whose slots do what ``script`` says, one entry per unit sent: "ok", "die"
    (the worker dies running it), "hang" (it never answers), or per start: "fail"."""

    def __init__(self, script, starts=()):
        self.script, self.starts, self.sent = list(script), list(starts), []
        self.pending_events = []
        super().__init__(lambda unit, pid, node: None, noun="test worker")
        self.add_slot(Slot("cpu", 0))

    def _start(self, slot):
        outcome = self.starts.pop(0) if self.starts else "ok"
        slot.pid = 100 + self.replaced
        self.pending_events.append(StartFailed(slot, "no luck") if outcome == "fail" else Ready(slot, slot.pid))

    def _send(self, slot, unit):
        self.sent.append(unit.id)
        outcome = self.script.pop(0)
        if outcome == "ok":
            self.pending_events.append(Done(slot, Completion(None, True, value="fine", seconds=0.5)))
        elif outcome == "die":
            self.pending_events.append(Died(slot, "test worker died running this unit, twice"))

    def _poll(self, timeout):
        happened, self.pending_events = self.pending_events, []
        if not happened and timeout:
            time.sleep(min(timeout, 0.05))
        return happened

    def _kill(self, slot, unit):
        pass


def drain(pool, seconds=5.0):
    completions, deadline = [], time.monotonic() + seconds
    while pool.pending() and time.monotonic() < deadline:
        completions += pool.wait(timeout=0.1)
    return completions


def test_a_slot_freed_by_a_completion_takes_what_that_completion_made_ready_before_queued_chunk_work():
    """A chunk finishes and makes its file's merge ready: the slot it freed runs the merge, not
    the next chunk of another step that was queued already (dispatched at once, the merge that
    the file's result waits for queued behind it)."""
    pool = ScriptedPool(["ok", "ok", "ok"])
    pool.submit(Unit(1, "cpu", AnalyzeWork(None, None, {}), file="a.wav"))
    pool.wait(0)  # the slot comes up and takes unit 1
    pool.submit(Unit(2, "cpu", AnalyzeWork(None, None, {}), file="a.wav"))  # queued: the slot is busy
    (done,) = pool.wait(0)
    assert done.unit.id == 1 and pool.slots[0].unit is None  # freed, and waiting for what follows
    pool.submit(Unit(3, "cpu", MergeWork(offsets=((0, 0.0),), raw=({},), duration=1.0, spans=()), file="a.wav"))
    drain(pool)
    assert pool.sent == [1, 3, 2]


def test_the_slot_pool_retries_a_unit_whose_worker_died_once_then_fails_it():
    pool = ScriptedPool(["die", "ok", "die", "die"])
    first, second = (Unit(n, "cpu", AnalyzeWork(None, None, {}), file="a.wav") for n in (1, 2))
    pool.submit(first)
    pool.submit(second)
    completions = drain(pool)
    by_id = {c.unit.id: c for c in completions}
    assert by_id[1].ok and by_id[1].value == "fine" and by_id[1].worker == 100  # the slot that ran it
    assert not by_id[2].ok and by_id[2].error == "test worker died running this unit, twice"
    assert pool.sent == [1, 1, 2, 2] and pool.replaced == 3
    assert pool.busy["cpu"] == pytest.approx(0.5)  # a completion's seconds; deaths count none


def test_the_slot_pool_kills_a_unit_past_its_deadline_and_does_not_retry_it():
    pool = ScriptedPool(["hang"])
    pool.submit(Unit(1, "cpu", AnalyzeWork(None, None, {}), file="a.wav", timeout=0.2))
    (completion,) = drain(pool)
    assert completion.error == "timed out after 0.2 s (resources.unit_timeout); its test worker was stopped"
    assert completion.seconds >= 0.2 and pool.replaced == 1 and pool.sent == [1]
    assert pool.busy["cpu"] >= 0.2


def test_workers_that_keep_dying_before_they_are_ready_stop_the_run():
    pool = ScriptedPool([], starts=["fail", "fail", "fail"])
    pool.submit(Unit(1, "cpu", AnalyzeWork(None, None, {})))
    with pytest.raises(WorkersCannotStart, match=r"3 in a row\): no luck"):
        drain(pool)


def test_dropping_a_file_forgets_its_queued_units_only():
    pool = ScriptedPool(["hang"])
    for n, name in enumerate(["a.wav", "a.wav", "b.wav"]):
        pool.submit(Unit(n, "cpu", AnalyzeWork(None, None, {}), file=name))
        pool.wait(0)  # the slot comes up and takes unit 0
    assert pool.slots[0].unit.id == 0
    assert pool.drop("a.wav") == 1  # unit 0 runs (an analysis unit finishes), unit 1 was queued
    assert [u.file for u in pool.queues["cpu"]] == ["b.wav"]


def test_the_gpu_batcher_sends_full_batches_and_a_partial_one_only_when_no_file_can_add():
    batcher = GpuBatcher(batch_size=2)
    for chunk in range(3):
        batcher.add("gpu", GpuItem("a.wav", chunk, float(chunk), None, {}))
    batches = batcher.ready(lambda step: True)
    assert [[item.chunk for item in batch] for _, batch in batches] == [[0, 1]]
    assert batcher.ready(lambda step: True) == []
    assert [[item.chunk for item in batch] for _, batch in batcher.ready(lambda step: False)] == [[2]]


def test_submit_feeds_a_serving_scheduler_as_the_server_does(pm, registry, write_pipeline, write_clicks):
    path, clicks = write_clicks(8.0)
    pipeline = load_pipeline(write_pipeline("steps: [fake.clicks]\n"), registry)
    scheduler = build_scheduler(pipeline, registry, pm, inline=True, output_dir=None, force=True)
    assert scheduler.cpu_workers == 1
    outcomes = []
    thread = threading.Thread(target=scheduler.serve, kwargs={"on_outcome": outcomes.append})
    thread.start()
    scheduler.submit(path, "song")
    scheduler.end_of_input()
    thread.join(60)
    assert not thread.is_alive()
    (outcome,) = outcomes
    assert outcome.ok and outcome.written == [] and outcome.result["steps"]["clicks"]["status"] == "ok"
    assert not scheduler.active
