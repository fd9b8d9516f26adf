"""Whose turn it is to write: the ingest writer process, the hub's own writer thread, the
stage runner, or a command run beside the hub (`Store.run`).

SQLite lets one connection write at a time and makes the others poll (its busy handler
sleeps 1, 2, 5, 10 ... 100 ms between tries). With the ingest writer committing batch
after batch during a burst, the hub's writer thread would poll into gaps of a few
microseconds and starve, and its writes (task claims, dispatch, the outbox) would wait
seconds or fail with "database is locked". So both take a lock around each transaction,
and the ingest writer steps aside between batches when the thread is waiting: neither
waits longer than one transaction of the other.

The locks are flock(2)s on two files beside the database (as SQLite keeps -wal and
-shm there): the kernel releases them when a holder dies, so a crashed writer never
leaves the other one waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


class Turn:
    def __init__(self, db: Path | str) -> None:
        self._turn = open(f"{db}-turn", "ab")  # noqa: SIM115 (held open for the locks)
        self._line = open(f"{db}-turn-line", "ab")  # noqa: SIM115

    def close(self) -> None:
        self._turn.close()
        self._line.close()

    @contextlib.contextmanager
    def thread(self) -> Iterator[None]:
        """The hub's writer thread (and the stage runner, a command): waits at most for
        the transaction in progress."""
        fcntl.flock(self._line, fcntl.LOCK_EX)  # in line: the ingest writer waits behind us
        try:
            fcntl.flock(self._turn, fcntl.LOCK_EX)
        finally:
            fcntl.flock(self._line, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self._turn, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def ingest(self) -> Iterator[None]:
        """The ingest writer process: lets a thread that is in line go first."""
        fcntl.flock(self._line, fcntl.LOCK_EX)
        fcntl.flock(self._line, fcntl.LOCK_UN)
        fcntl.flock(self._turn, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._turn, fcntl.LOCK_UN)
