"""Pre-signed Standard Webhooks pushes, rendered as raw HTTP/1.1 requests before a run.

Signing happens here, ahead of time, with the official `standardwebhooks` package (the
sender's side, not our verifier), so the load generator only copies bytes. Every push
has a unique message id and order id and a fresh timestamp (the hub refuses ones more
than 5 minutes old), so a run must be generated shortly before it is sent.

A mixed run adds the mistakes real senders make: redeliveries of an earlier push (same
id, same bytes: the hub answers 200 and records a duplicate) and pushes signed with the
wrong secret (401 bad_signature).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook

SHOP = "bench"
PATH = f"/webhooks/standard/{SHOP}"
BENCH_SECRET = "whsec_YmVuY2gtc2hvcC1zZWNyZXQtZm9yLW9yZGVyaG9vaw=="
WRONG_SECRET = "whsec_bm90LXRoZS1zaG9wcy1zZWNyZXQtYXQtYWxsLWF0LWFsbA=="


@dataclass(frozen=True, slots=True)
class Push:
    msg_id: str
    order_id: str
    kind: str  # new | duplicate | bad_signature
    raw: bytes  # the whole HTTP/1.1 request


@dataclass(frozen=True, slots=True)
class Mix:
    duplicates: float = 0.0
    bad_signatures: float = 0.0


CLEAN = Mix()
MIXED = Mix(duplicates=0.10, bad_signatures=0.05)


def order_body(
    order_id: str, now: datetime, rng: random.Random, kind: str = "order.created"
) -> bytes:
    """An order push of a realistic size (~600 bytes): items, buyer, address."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    items: list[dict[str, Any]] = [
        {
            "sku": f"SKU-{rng.randrange(10**6):06d}",
            "title": "Thermal mug 450 ml, stainless steel",
            "qty": rng.randint(1, 3),
            "price": f"{rng.randrange(990, 19900) / 100:.2f}",
        }
        for _ in range(rng.randint(1, 3))
    ]
    envelope = {
        "type": kind,
        "timestamp": stamp,
        "data": {
            "order_id": order_id,
            "amount": f"{sum(float(i['price']) * i['qty'] for i in items):.2f}",
            "currency": "CNY",
            "occurred_at": stamp,
            "buyer": {"nick": f"buyer{rng.randrange(10**5)}", "phone": "138****0000"},
            "address": {"province": "Zhejiang", "city": "Hangzhou", "district": "Xihu"},
            "items": items,
        },
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def render(signer: Webhook, msg_id: str, timestamp: datetime, body: bytes) -> bytes:
    head = (
        f"POST {PATH} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        "Content-Type: application/json\r\n"
        f"Webhook-Id: {msg_id}\r\n"
        f"Webhook-Timestamp: {int(timestamp.timestamp())}\r\n"
        f"Webhook-Signature: {signer.sign(msg_id, timestamp, body.decode())}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def split(raw: bytes) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """(method, target, header pairs in order, body) of a rendered push."""
    head, body = raw.split(b"\r\n\r\n", 1)
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ")
    pairs = [line.partition(":") for line in lines]
    return method, target, [(name.strip(), value.strip()) for name, _, value in pairs], body


def make(
    n: int, prefix: str, mix: Mix = CLEAN, seed: int = 1, kind: str = "order.created"
) -> list[Push]:
    """`n` pushes; ids start with `prefix` so runs never collide in one database."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    good = Webhook(BENCH_SECRET)
    wrong = Webhook(WRONG_SECRET)
    pushes: list[Push] = []
    originals: list[Push] = []
    for i in range(n):
        roll = rng.random()
        if roll < mix.duplicates and originals:
            twin = rng.choice(originals)
            pushes.append(Push(twin.msg_id, twin.order_id, "duplicate", twin.raw))
            continue
        order_id = f"{prefix}-{i}"
        msg_id = f"msg_{prefix}_{i}"
        body = order_body(order_id, now, rng, kind)
        bad = roll > 1.0 - mix.bad_signatures
        raw = render(wrong if bad else good, msg_id, now, body)
        push = Push(msg_id, order_id, "bad_signature" if bad else "new", raw)
        pushes.append(push)
        if not bad:
            originals.append(push)
    return pushes


def kinds(pushes: list[Push]) -> dict[str, int]:
    return dict(Counter(p.kind for p in pushes))


def write_for_wrk(pushes: list[Push], prefix: Path, threads: int) -> None:
    """One file per wrk thread (`prefix.0`, `prefix.1`, ...): `<length>\\n<request>` each,
    dealt round-robin so the threads never send the same push."""
    for t in range(threads):
        mine = pushes[t::threads]
        Path(f"{prefix}.{t}").write_bytes(b"".join(b"%d\n%s" % (len(p.raw), p.raw) for p in mine))
