"""Times the ingest writer stores: the text of a time in microseconds must be exactly
`iso_utc` of it, whatever order the times come in (its per-second cache is an
optimisation, not a change of format)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hub.model import iso_utc
from hub.store.ingest_sql import EPOCH, iso_from_us, to_us


def test_alternating_and_many_seconds_format_like_iso_utc() -> None:
    rng = random.Random(11)
    start = datetime(2026, 11, 11, 15, 59, 58, tzinfo=UTC)
    moments = []
    for i in range(2000):
        # a receipt time and an earlier event time in turn, across more distinct seconds
        # than the cache keeps, with microseconds at both ends of their range
        moments.append(start + timedelta(seconds=i % 700, microseconds=rng.choice([0, 999_999])))
        moments.append(start - timedelta(days=400, seconds=i, microseconds=rng.randrange(10**6)))
    moments.append(EPOCH)
    for moment in moments:
        assert iso_from_us(to_us(moment)) == iso_utc(moment)
