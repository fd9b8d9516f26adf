"""The shipped Douyin and JD Daojia samples (recordings/) replay through the real app to
the outcome they record, and each makes the canonical event its file name promises."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from hub import settings as settings_mod
from hub.runtime import Hub
from hub.settings import Settings
from hub.store import queries
from sandbox import recordings

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent / "recordings"
SAMPLES = sorted([*ROOT.glob("douyin/*.json"), *ROOT.glob("jddj/*.json")])
# file stem -> canonical kind of the event it carries (None: no event)
KIND = {
    "created": "created",
    "paid": "paid",
    "shipped": "shipped",
    "cancelled": "cancelled",
    "refund_requested": "refund_requested",
    "refunded": "refunded",
    "finished": "other",
    "verification": None,
}
SKIP = {"host", "content-length", "accept-encoding", "connection", "accept", "user-agent"}


@pytest.fixture
def settings(write_config: Callable[[str], Path]) -> Settings:
    return settings_mod.load(write_config((ROOT / "shops.toml").read_text()), env={})


def test_samples_cover_every_kind_for_both_platforms() -> None:
    stems = {(p.parent.name, p.stem) for p in SAMPLES}
    for kind in ("created", "paid", "shipped", "cancelled", "refund_requested", "refunded"):
        assert ("douyin", kind) in stems
    for kind in ("paid", "shipped", "cancelled", "refund_requested"):
        assert ("jddj", kind) in stems


@pytest.mark.parametrize("path", SAMPLES, ids=[f"{p.parent.name}/{p.stem}" for p in SAMPLES])
async def test_sample_replays_to_its_recorded_outcome(
    client: httpx.AsyncClient, hub: Hub, path: Path
) -> None:
    rec = recordings.load(path)
    headers = [(k, v) for k, v in recordings.headers(rec) if k not in SKIP]
    r = await client.post(rec["path"], content=recordings.body_bytes(rec), headers=headers)
    assert r.status_code == rec["response"]["status"], r.text
    assert r.content == recordings.body_bytes(rec["response"])
    [row] = await hub.store.read(lambda c: queries.list_requests(c, limit=1))
    assert row["outcome"] == rec["outcome"]
    counts = await hub.store.read(queries.counts)
    expected = KIND[path.stem]
    assert counts["events"] == (0 if expected is None else 1)
    if expected is not None:
        [event] = await hub.store.read(queries.events_after, 0, 10)
        assert event["kind"] == expected
    # and a tampered copy is refused with the platform's bad_signature
    tampered = recordings.body_bytes(rec) + b" "
    bad = await client.post(rec["path"], content=tampered, headers=headers)
    assert bad.status_code == 401


def test_samples_replay_over_a_real_socket(live_hub: tuple[str, Hub]) -> None:
    """The same bytes through uvicorn on 127.0.0.1: form encoding, the /djsw/ path tail
    and the signed raw bytes survive a real HTTP hop."""
    url, _hub = live_hub
    with httpx.Client(base_url=url, timeout=10) as http:
        for path in (ROOT / "douyin" / "paid.json", ROOT / "jddj" / "paid.json"):
            rec = recordings.load(path)
            headers = [(k, v) for k, v in recordings.headers(rec) if k not in SKIP]
            r = http.post(rec["path"], content=recordings.body_bytes(rec), headers=headers)
            assert r.status_code == 200, r.text
            assert r.content == recordings.body_bytes(rec["response"])
