"""`orderhook browse`: Datasette on the hub's database, every table described, stored
queries that answer, bodies readable as text. Driven by Datasette's own test client."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from connectors import standard
from hub.cli import cli
from hub.runtime import Hub
from hub.store import Store
from sandbox import browse
from tests.conftest import DEMO_SECRET

pytestmark = pytest.mark.anyio

METADATA = yaml.safe_load(browse.METADATA.read_text(encoding="utf-8"))["databases"]["orderhook"]


def test_every_table_and_column_of_the_schema_is_described(tmp_path: Path) -> None:
    store = Store(tmp_path / "all.db")
    store.migrate()
    conn = sqlite3.connect(store.path)
    tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
    described = METADATA["tables"]
    missing = []
    for table in tables:
        if table.startswith("sqlite_"):
            continue
        meta = described.get(table)
        if not meta or not meta.get("description") or not meta.get("title"):
            missing.append(table)
            continue
        columns = [r[1] for r in conn.execute(f"pragma table_info({table})")]
        missing += [f"{table}.{c}" for c in columns if not meta.get("columns", {}).get(c)]
    assert not missing, f"describe these in sandbox/datasette.yaml: {missing}"


async def push(client: httpx.AsyncClient, order_id: str, secret: str = DEMO_SECRET) -> None:
    body = json.dumps({"type": "order.weird", "data": {"order_id": order_id}}).encode()
    headers = standard.sign_headers(secret, f"msg_{order_id}", body)
    await client.post("/webhooks/standard/acme", content=body, headers=headers)


async def test_stored_queries_answer_and_bodies_read_as_text(hub: Hub, client: httpx.AsyncClient):
    await push(client, "1")
    await push(client, "1")  # a redelivery: duplicate
    await push(client, "2", secret="whsec_" + "bm90LXRoZS1zaG9wcy1zZWNyZXQtYXQtYWxs")  # rejected
    hub.store.run(
        lambda c: c.execute(
            "insert into requests (received_at, method, path, headers, "
            "body, outcome, response_status) values ('2026-01-01T00:00:00Z',"
            " 'POST', '/x', '[]', x'ff00fe', 'error', 500)"
        )
    )
    ds = browse.build(hub.settings.db)
    db = hub.settings.db.stem
    for name in METADATA["queries"]:
        r = await ds.client.get(f"/{db}/{name}.json?_shape=array")
        assert r.status_code == 200, (name, r.text)
    failed = (await ds.client.get(f"/{db}/failed_verifications.json?_shape=array")).json()
    assert failed[0]["reason"] == "bad_signature" and failed[0]["requests"] == 1
    dups = (await ds.client.get(f"/{db}/duplicates.json?_shape=array")).json()
    assert len(dups) == 1 and '"order_id": "1"' in dups[0]["body_text"]
    unknown = (await ds.client.get(f"/{db}/unknown_event_types.json?_shape=array")).json()
    assert unknown == [
        {
            "platform": "standard",
            "platform_type": "order.weird",
            "events": 1,
            "last_seen": unknown[0]["last_seen"],
            "latest_request": 1,
        }
    ]
    page = await ds.client.get(f"/{db}/requests/1")
    assert '<pre class="orderhook-body">{&#34;type&#34;: &#34;order.weird&#34;' in page.text
    binary = await ds.client.get(f"/{db}/requests/4")  # not UTF-8: left as a download link
    assert 'type-bytes"><a class="blob-download"' in binary.text
    assert "&lt;Binary:&nbsp;3&nbsp;bytes&gt;" in binary.text
    hub.store.run(
        lambda c: c.execute(
            "insert into subscriptions (name, url, secret, from_event_id, created_at, "
            "updated_at) values ('erp', 'http://erp', 'whsec_c2VjcmV0LW9mLXRoZS1lcnA=', 0, "
            "'2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
        )
    )
    subs = await ds.client.get(f"/{db}/subscriptions")
    assert "c2VjcmV0LW9mLXRoZS1lcnA" not in subs.text and "(secret hidden)" in subs.text
    table = await ds.client.get(f"/{db}/requests")
    assert "Every request to /webhooks" in table.text  # the table's description is shown


def test_browse_get_is_a_one_shot_for_scripts(write_config) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config("")
    result = CliRunner().invoke(
        cli, ["browse", "--config", str(cfg), "--get", "/hub/backlog.json?_shape=array"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == []
    result = CliRunner().invoke(cli, ["browse", "--config", str(cfg), "--get", "/hub/nope"])
    assert result.exit_code == 1
