"""`orderhook replay / export / import`: recorded requests re-sent over real sockets."""

from __future__ import annotations

import json
import time

import httpx
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connectors import standard
from hub.cli import cli
from hub.store import Store, sandbox_sql
from sandbox import recordings
from sandbox import replay as replaying
from tests.conftest import DEMO_SECRET, serve_app


def push(
    base: str,
    kind: str = "order.paid",
    order_id: str = "1001",
    secret: str = DEMO_SECRET,
    msg_id: str | None = None,
) -> httpx.Response:
    body = json.dumps({"type": kind, "data": {"order_id": order_id}}).encode()
    headers = standard.sign_headers(secret, msg_id or f"msg_{order_id}_{kind}", body)
    return httpx.post(f"{base}/webhooks/standard/acme", content=body, headers=headers)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_replay_by_id_to_the_hub_is_a_duplicate_and_stores_the_diff(live_hub, write_config):
    url, hub = live_hub
    assert push(url).status_code == 200
    cfg = str(write_config(""))
    code, out = invoke("replay", "1", "--to", url, "--config", cfg, "--json")
    # the same message again: the hub acks it as a duplicate with the same answer
    assert code == 0, out
    summary = json.loads(out[out.index("{") :])
    assert summary["same"] == 1 and summary["results"][0]["status"] == 200
    rows = hub.store.run(lambda c: c.execute("select outcome from requests order by id").fetchall())
    assert [r[0] for r in rows] == ["accepted", "duplicate"]
    stored = hub.store.run(sandbox_sql.run_results, summary["run_id"])
    assert stored[0]["same"] == 1 and stored[0]["request_id"] == 1


def test_replay_dry_run_counts_what_a_filter_selects_and_sends_nothing(live_hub, write_config):
    url, hub = live_hub
    push(url, order_id="1")
    push(url, order_id="2", secret="whsec_" + "c3RhbGUtc2VjcmV0LWZvci10ZXN0cw==")  # rejected
    push(url, order_id="3")
    cfg = str(write_config(""))
    code, out = invoke("replay", "--outcome", "accepted", "--dry-run", "--config", cfg, "--json")
    assert code == 0, out
    assert json.loads(out)["selected"] == 2
    assert hub.store.run(lambda c: c.execute("select count(*) from requests").fetchone()[0]) == 3
    code, out = invoke("replay", "--shop", "nobody", "--config", cfg)
    assert code == 3, out


def test_stale_signature_is_refused_exactly_but_accepted_resigned(live_hub, write_config):
    url, hub = live_hub
    body = json.dumps({"type": "order.paid", "data": {"order_id": "77"}}).encode()
    old = int(time.time()) - 3600  # an hour old: outside the 5 minute tolerance
    headers = standard.sign_headers(DEMO_SECRET, "msg_old", body, timestamp=old)
    assert (
        httpx.post(f"{url}/webhooks/standard/acme", content=body, headers=headers).status_code
        == 401
    )
    cfg = str(write_config(""))
    code, out = invoke("replay", "1", "--to", url, "--config", cfg, "--json")
    # the same refusal as the original (its detail may say one second more)
    assert json.loads(out[out.index("{") :])["results"][0]["status"] == 401, out
    code, out = invoke("replay", "1", "--to", url, "--config", cfg, "--resign")
    assert code == 1, out  # different answer: accepted this time, with a diff shown
    assert "+status 200" in out and "-status 401" in out
    outcomes = hub.store.run(
        lambda c: c.execute("select outcome from requests order by id").fetchall()
    )
    assert [r[0] for r in outcomes] == ["rejected", "rejected", "accepted"]


def test_exact_replay_sends_the_recorded_bytes_and_headers(tmp_path, write_config):
    seen: list[tuple[list[tuple[str, str]], bytes]] = []

    async def sink(request: Request) -> JSONResponse:
        seen.append((list(request.headers.items()), await request.body()))
        return JSONResponse({"ok": True})

    rec = {
        "format": recordings.FORMAT,
        "id": 5,
        "method": "POST",
        "path": "/webhooks/standard/acme",
        "query": "a=1",
        "headers": [
            ["x-trace", "one"],
            ["x-trace", "two"],
            ["content-type", "application/json"],
            ["content-length", "999"],
            ["host", "elsewhere"],
        ],
        "body": '\u8ba2\u5355 {"k": 1}',
        "body_encoding": "utf-8",
        "platform": "standard",
        "shop": "acme",
        "response": {"status": 200, "body": '{"ok": true}', "body_encoding": "utf-8"},
    }
    recordings.dump(rec, tmp_path / "r.json")
    app = Starlette(routes=[Route("/webhooks/standard/acme", sink, methods=["POST"])])
    with serve_app(app) as base:
        code, out = invoke(
            "replay", "-f", str(tmp_path / "r.json"), "--to", base, "--db", str(tmp_path / "x.db")
        )
    assert code == 0, out  # {"ok":true} and {"ok": true} are the same JSON answer
    headers, body = seen[0]
    assert body == '订单 {"k": 1}'.encode()
    assert [v for k, v in headers if k == "x-trace"] == ["one", "two"]
    assert dict(headers)["host"].startswith("127.0.0.1") and dict(headers)["content-length"] == str(
        len(body)
    )
    assert "user-agent" not in dict(headers)  # nothing the recording did not have


def test_an_unreachable_target_fails_then_the_run_resumes(tmp_path, write_config, live_hub):
    url, hub = live_hub
    push(url, order_id="1")
    push(url, order_id="2")
    cfg = str(write_config(""))
    from tests.conftest import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    code, out = invoke("replay", "1", "2", "--to", closed, "--config", cfg, "--json")
    assert code == 1
    summary = json.loads(out[out.index("{") :])
    assert summary["failed"] == 2
    run_id = summary["run_id"]
    # point the stored run at the live hub (as if the endpoint came back) and resume it
    hub.store.run(lambda c: c.execute("update replay_runs set target = ?", (url,)))
    code, out = invoke("replay", "--resume", str(run_id), "--config", cfg, "--json")
    assert code == 0, out
    assert json.loads(out[out.index("{") :])["sent"] == 2
    code, out = invoke("replay", "--resume", str(run_id), "--config", cfg)
    assert code == 3  # everything answered: nothing left to resume


def test_export_then_import_round_trips_a_request(tmp_path, live_hub, write_config):
    url, hub = live_hub
    push(url, order_id="9")
    cfg = str(write_config(""))
    code, out = invoke("export", "1", "--out", str(tmp_path / "rec"), "--config", cfg)
    assert code == 0, out
    [path] = list((tmp_path / "rec").glob("*.json"))
    assert path.name == "000001-standard-accepted.json"
    other = tmp_path / "other.db"
    code, out = invoke("import", str(path), "--db", str(other), "--json")
    assert code == 0, out
    new_id = json.loads(out)["imported"][str(path)]
    original = hub.store.run(lambda c: c.execute("select body, headers from requests").fetchone())
    copied = Store(other).run(
        lambda c: c.execute(
            "select body, headers, source from requests where id = ?", (new_id,)
        ).fetchone()
    )
    assert copied[:2] == original and copied[2] == "import"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    code, out = invoke("import", str(bad), "--db", str(other))
    assert code == 2 and "format" in out


def test_ctrl_c_marks_the_run_interrupted_and_resume_finishes_it(
    live_hub, write_config, monkeypatch
):
    url, hub = live_hub
    for n in range(4):
        push(url, order_id=str(n))
    cfg = str(write_config(""))
    real = replaying.send_one
    calls = {"n": 0}

    async def interrupted_at_third(client, item, plan):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # what Ctrl-C does to the running loop
        return await real(client, item, plan)

    monkeypatch.setattr(replaying, "send_one", interrupted_at_third)
    code, out = invoke("replay", "--to", url, "--concurrency", "1", "--config", cfg)
    assert code == 130, out
    assert "resume with: orderhook replay --resume 1" in out
    run = hub.store.run(sandbox_sql.get_run, 1)
    assert run["state"] == "interrupted" and run["total"] == 4
    assert len(hub.store.run(sandbox_sql.answered_items, 1)) == 2
    monkeypatch.setattr(replaying, "send_one", real)
    code, out = invoke("replay", "--resume", "1", "--config", cfg, "--json")
    assert code == 0, out
    summary = json.loads(out[out.index("{") :])
    assert summary["sent"] == 2  # only the two that never got an answer
    assert hub.store.run(sandbox_sql.get_run, 1)["state"] == "done"
    assert len(hub.store.run(sandbox_sql.run_results, 1)) == 4


def test_a_selection_larger_than_sqlites_parameter_limit(tmp_path):
    store = Store(tmp_path / "big.db")

    def fill(conn):  # type: ignore[no-untyped-def]
        conn.executemany(
            "insert into requests (received_at, method, path, headers, body, outcome, "
            "response_status) values ('2026-01-01T00:00:00Z', 'POST', '/x', '[]', x'', "
            "'accepted', 200)",
            [()] * 25000,
        )

    store.run(fill)
    ids = tuple(range(1, 25001, 1))
    rows = store.run(sandbox_sql.select_requests, sandbox_sql.RequestFilter(ids=ids))
    assert [r["id"] for r in rows] == list(ids)


def test_a_secret_that_cannot_sign_is_a_clear_error_not_a_crash(live_hub, write_config):
    url, _hub = live_hub
    assert push(url, order_id="5").status_code == 200
    cfg = str(write_config(""))
    code, out = invoke("replay", "1", "--to", url, "--config", cfg, "--secret", "whsec_%%%")
    assert code != 0
    assert "cannot re-sign this standard recording" in out and "base64" in out, out
