"""The writer's batch: dedupe decided from one lookup plus the batch's own keys, rows
written many per INSERT before the commit. Whatever ends up sharing a transaction, each
request must get the outcome it would get alone."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from connectors.base import Reply
from hub.model import OrderEvent, message_key
from hub.store import IngestJob, Store, queries
from tests.test_store import event, record

pytestmark = pytest.mark.anyio

OK = Reply(200, b'{"ok":true}')


def pushed(msg_id: str, order_id: str, amount: str = "1.00") -> OrderEvent:
    """An event as a push with a message id brings it (deduped on that id)."""
    return dataclasses.replace(
        event(order_id, payload={"order_id": order_id, "amount": amount}),
        message_id=msg_id,
        dedupe_key=message_key("standard", "acme", msg_id),
    )


def conflict(rejection):  # type: ignore[no-untyped-def]
    return Reply(rejection.status, rejection.reason.encode())


async def test_outcomes_inside_one_batch_match_outcomes_alone(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    await store.start()
    try:
        first = await store.ingest(IngestJob(record(), [pushed("m0", "o0")], OK, conflict))
        jobs = [  # queued together, so they share transactions as the writer sees fit
            IngestJob(record(), [pushed("m1", "o1")], OK, conflict),
            IngestJob(record(), [pushed("m1", "o1")], OK, conflict),  # redelivery
            IngestJob(record(), [pushed("m1", "o1", "9.99")], OK, conflict),  # id reused
            IngestJob(record(), [pushed("m0", "o0")], OK, conflict),  # stored before
            IngestJob(record(), [pushed("m0", "o0", "5.00")], OK, conflict),
            # one request whose second event reuses an id: none of its events are kept
            IngestJob(record(), [pushed("m2", "o2"), pushed("m1", "o1", "2.00")], OK, conflict),
            IngestJob(record(), [pushed("m2", "o2")], OK, conflict),  # m2 was not kept
        ]
        results = await asyncio.gather(*(store.ingest(job) for job in jobs))
    finally:
        await store.stop()
    assert first.outcome == "accepted"
    assert [(r.outcome, r.reason) for r in results] == [
        ("accepted", None),
        ("duplicate", "duplicate"),
        ("rejected", "message_id_reused"),
        ("duplicate", "duplicate"),
        ("rejected", "message_id_reused"),
        ("rejected", "message_id_reused"),
        ("accepted", None),
    ]
    assert results[2].reply.status == 409
    counts = store.run(queries.counts)
    assert counts == {"requests": 8, "events": 3, "orders": counts["orders"]}
    ids = [first.new_event_ids[0], results[0].new_event_ids[0], results[6].new_event_ids[0]]
    assert ids == sorted(ids) and len(set(ids)) == 3
    for result, order_id in ((results[0], "o1"), (results[6], "o2")):
        (stored,) = store.run(queries.events_for_order, "standard", "acme", order_id)
        assert stored["id"] == result.new_event_ids[0]
        assert stored["request_id"] == result.request_id
    rows = {r["id"]: r for r in store.run(lambda conn: queries.list_requests(conn, limit=20))}
    assert rows[results[2].request_id]["detail"].startswith("message id 'm1' was already")
    # the answer stored is the one sent: shaped by the connector after the commit
    conflicted = store.run(queries.get_request, results[2].request_id)
    assert (conflicted["response_status"], conflicted["response_body"]) == (
        409,
        b"message_id_reused",
    )
    assert rows[results[5].request_id]["events_total"] == 2
    assert rows[results[5].request_id]["events_new"] == 0
    assert all(r["handling_ms"] is not None for r in rows.values())
