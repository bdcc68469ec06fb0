"""A step's folds: its merge done chunk by chunk as the chunks come in (``Analyzer.fold``).

A merge that waits for the last chunk and then runs over the whole track is a serial tail:
the file's result waits for it while the other cores idle. An analyzer whose merge is a
recursion in time order (a Viterbi forward pass) declares ``folds = True``; the plan then
queues one fold unit per chunk, in chunk order, each as soon as its chunk, the chunk's
neighbours (an overlap's crossfade changes a chunk's frames only near them) and the fold
before it are done. What a fold carries goes into the next fold; what it keeps for the merge
(its ``block``) stays here until the merge is queued, in chunk order. The merge waits for
the last fold, and gets :class:`~mirflow.analyzer.Folded` only if every chunk was folded: a
fold that failed or declined stops the folding, and the merge then does its whole work.

A :class:`FoldStream` holds that bookkeeping for one step of one file; it queues nothing
itself (the plan turns what :meth:`FoldStream.next_work` returns into a unit).
"""

from __future__ import annotations

from typing import Any

from ..analyzer import Fold, Folded
from ..audio import ChunkSpan
from .units import Completion, FoldWork


class FoldStream:
    """Which chunk a step folds next, what the last fold carried, and the blocks kept so far."""

    def __init__(self, spans: list[ChunkSpan], duration: float):
        self.spans = tuple(spans)
        self.duration = duration
        self.parts: dict[int, tuple[float, Any]] = {}  # chunk -> (offset, raw outputs), while a fold needs it
        self.next = 0  # the chunk to fold next
        self.out = False  # its fold unit is queued or running
        self.carry: Any = None  # what the last fold carried
        self.blocks: list[Any] = []  # what each fold kept for the merge, in chunk order
        self.stopped = False  # a fold failed or declined: no more folds, the merge does its whole work

    def add(self, chunk: int, offset: float, outputs: Any) -> None:
        """A chunk came in (the fold of it and its neighbours' folds read it)."""
        if not self.stopped:
            self.parts[chunk] = (offset, outputs)

    def window(self, index: int) -> range:
        """The chunks the fold of chunk ``index`` is given: it and its neighbours."""
        return range(max(0, index - 1), min(len(self.spans), index + 2))

    def next_work(self) -> FoldWork | None:
        """The fold to queue now, if one can be: none is out, folding goes on, and the next
        chunk and its neighbours are in."""
        if self.out or self.stopped or self.next >= len(self.spans):
            return None
        window = self.window(self.next)
        if any(chunk not in self.parts for chunk in window):
            return None
        self.out = True
        return FoldWork(index=self.next, offsets=tuple((chunk, self.parts[chunk][0]) for chunk in window),
                        raw=tuple(self.parts[chunk][1] for chunk in window), carry=self.carry,
                        duration=self.duration, spans=self.spans)

    def done(self, completion: Completion) -> None:
        """A fold came back: keep what it returned, or stop folding if it failed or declined
        (the analyzer cannot fold this track: its merge does the whole work)."""
        self.out = False
        fold: Fold | None = completion.value if completion.ok else None
        if fold is None:
            self.stop()
            return
        self.carry = fold.carry
        self.blocks.append(fold.block)
        self.next += 1
        for chunk in [c for c in self.parts if c < self.next - 1]:  # no later fold reads them
            del self.parts[chunk]

    def stop(self) -> None:
        self.stopped = True
        self.parts.clear()
        self.blocks.clear()
        self.carry = None

    def busy(self) -> bool:
        """Whether the merge must still wait: a fold is out, or one is still to come."""
        return self.out or (not self.stopped and self.next < len(self.spans))

    def folded(self) -> Folded | None:
        """What the merge gets: every chunk's fold, or None."""
        if self.stopped or self.next < len(self.spans):
            return None
        return Folded(self.carry, tuple(self.blocks))
