"""The recording format: one JSON document per inbound request (docs/recordings.md).

    {"format": "orderhook.recording/1", "id": 17, "received_at": "...Z",
     "channel": "http", "source": "push", "peer": "127.0.0.1:50312",
     "method": "POST", "path": "/webhooks/standard/demo-shop", "query": "",
     "headers": [["content-type", "application/json"], ...],
     "body": "{...}", "body_encoding": "utf-8",          # or "base64"
     "body_truncated": false,
     "platform": "standard", "shop": "demo-shop",
     "outcome": "accepted", "reason": null, "detail": null, "forensics": null,
     "response": {"status": 200, "body": "{\"ok\":true}", "body_encoding": "utf-8"},
     "handling_ms": 2.4}

Headers keep their order and repeats. A body that is valid UTF-8 is stored as text so a
person can read it; anything else as base64. `body_bytes()` gives back the exact bytes.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

FORMAT = "orderhook.recording/1"


def encode_body(body: bytes | None) -> tuple[str, str]:
    if body is None:
        return "", "utf-8"
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def decode_body(text: str, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.b64decode(text)
    if encoding == "utf-8":
        return text.encode("utf-8")
    raise ValueError(f"unknown body_encoding {encoding!r}")


def from_row(row: dict[str, Any]) -> dict[str, Any]:
    """A `requests` row (as the store returns it) as a recording."""
    body, encoding = encode_body(row["body"])
    response_body, response_encoding = encode_body(row.get("response_body"))
    return {
        "format": FORMAT,
        "id": row["id"],
        "received_at": row["received_at"],
        "channel": row.get("channel", "http"),
        "source": row.get("source", "push"),
        "peer": row.get("peer"),
        "method": row["method"],
        "path": row["path"],
        "query": row.get("query", ""),
        "headers": [list(pair) for pair in row["headers"]],
        "body": body,
        "body_encoding": encoding,
        "body_truncated": bool(row.get("body_truncated")),
        "platform": row.get("platform"),
        "shop": row.get("shop"),
        "outcome": row.get("outcome"),
        "reason": row.get("reason"),
        "detail": row.get("detail"),
        "forensics": row.get("forensics"),
        "response": {
            "status": row.get("response_status"),
            "body": response_body,
            "body_encoding": response_encoding,
        },
        "handling_ms": row.get("handling_ms"),
    }


def body_bytes(recording: dict[str, Any]) -> bytes:
    return decode_body(recording.get("body", ""), recording.get("body_encoding", "utf-8"))


def headers(recording: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in recording.get("headers", [])]


def validate(recording: Any) -> dict[str, Any]:
    """Check the fields replay relies on; raise ValueError with what is wrong."""
    if not isinstance(recording, dict):
        raise ValueError("a recording is a JSON object")
    if recording.get("format") != FORMAT:
        raise ValueError(f"format must be {FORMAT!r}")
    for key in ("method", "path", "headers", "body"):
        if key not in recording:
            raise ValueError(f"missing {key!r}")
    body_bytes(recording)
    return recording


def load(path: Path | str) -> dict[str, Any]:
    try:
        return validate(json.loads(Path(path).read_text(encoding="utf-8")))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def dump(recording: dict[str, Any], path: Path | str) -> None:
    Path(path).write_text(
        json.dumps(recording, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
