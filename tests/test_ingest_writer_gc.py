"""The ingest writer collects garbage between batches only (`settle`, `sweep`): cycles
must still be freed, by the next sweep, and the process's own set-up never is."""

from __future__ import annotations

import gc
import weakref

from hub.store import ingest_process


class Node:
    def __init__(self) -> None:
        self.me = self


def test_a_cycle_made_during_a_batch_is_freed_by_the_next_sweep() -> None:
    ingest_process.settle()
    try:
        assert not gc.isenabled()  # no collection in the middle of a batch
        node = Node()
        gone = weakref.ref(node)
        del node
        assert gone() is not None  # a cycle: reference counting alone cannot free it
        ingest_process.sweep()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.enable()
