"""The GPU lane's batcher: chunks prepared in the CPU lane, gathered across files.

A ``gpu`` step's chunks are prepared (features) on the CPU lane and wait here until a batch
of ``batch_size`` is full, or until no file in flight can add to it any more: a folder of
short clips then fills batches as one long song does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class GpuItem:
    """A chunk prepared in the CPU lane, waiting for a batch of its gpu step."""

    file: str
    chunk: int
    offset: float  # track time of the chunk's first sample
    features: Any  # what the analyzer's prepare() returned
    inputs: dict


class GpuBatcher:
    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.items: dict[str, list[GpuItem]] = {}  # gpu step -> prepared chunks waiting for a batch

    def add(self, step_id: str, item: GpuItem) -> None:
        self.items.setdefault(step_id, []).append(item)

    def drop(self, file: str) -> None:
        """Forget the prepared chunks of a cancelled file."""
        for items in self.items.values():
            items[:] = [item for item in items if item.file != file]

    def clear(self) -> None:
        self.items.clear()

    def ready(self, could_add: Callable[[str], bool]) -> list[tuple[str, list[GpuItem]]]:
        """The batches to send now, as (step, items): full ones, and a partial one when
        ``could_add(step)`` says no file in flight can still add a chunk to it."""
        batches = []
        for step_id, items in self.items.items():
            more = could_add(step_id)
            while len(items) >= self.batch_size or (items and not more):
                batch, items[:] = items[:self.batch_size], items[self.batch_size:]
                batches.append((step_id, batch))
        return batches
