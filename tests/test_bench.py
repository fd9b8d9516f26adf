"""The benchmark harness, kept working by a tiny smoke run (no figure is asserted: speed
is the benchmark's job; here only what it counts and checks must be right)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from standardwebhooks import Webhook, WebhookVerificationError

from bench import loadgen, profile, pushes, soak, stage, wrk
from bench.__main__ import main
from bench.servers import Server
from tests.conftest import serve_app


def smoke(tmp_path: Path, generator: str) -> tuple[dict, str]:
    out = tmp_path / "results.json"
    result = CliRunner().invoke(
        main,
        ["--smoke", "--generator", generator, "--work", str(tmp_path / "work"), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), result.output


@pytest.mark.slow
def test_smoke_run_counts_every_ack_in_the_database(tmp_path: Path) -> None:
    results, output = smoke(tmp_path, "python")
    ingest = results["ingest"]
    durability = ingest["durability"]
    assert durability["ok"], durability
    assert durability["acked_200"] > 0
    assert durability["acked_200"] <= durability["recorded_200"]
    # the mixed run's bad signatures were refused and recorded as such
    mixed = next(r for r in ingest["runs"] if r["scenario"] == "mixed")
    assert mixed["statuses"].get("401", 0) > 0
    # the hub's CPU per push is told per process, and the parts make the whole
    for run in ingest["runs"]:
        parts = run["server_cpu_us_per_request_by_process"]
        expected = {"event loop process"}
        if run["server"] == "hub":
            expected |= {"ingest writer", "stage runner"}
        assert set(parts) == expected, parts
        if run["server"] == "hub":  # it verified and recorded every push there
            assert parts["ingest writer"] > 0
    assert "hub CPU per push, clean: event loop process" in output
    assert durability["statuses_recorded"]["401"] >= mixed["statuses"]["401"]
    # every push the open-loop generator saw acked reached the orders table and was
    # assigned to an operator
    for rate in results["latency"]["rates"]:
        assert rate["acked"] == rate["pushes"]
        assert rate["acked_without_order"] == 0
        assert rate["acked_not_assigned"] == 0
        assert rate["ack_ms"]["p50"] <= rate["ack_ms"]["p99"] <= rate["ack_ms"]["max"]
        # applied and assigned after the push was due (one clock: this machine's)
        assert rate["to_order_ms"]["p50"] > 0 and rate["to_assignment_ms"]["p50"] > 0
    # the soak acked every push and its first and last windows are in the table
    assert results["soak"]["acked"] == results["soak"]["pushes"] > 0
    assert "Soak: 50 paid orders/s" in output and "first -> last window" in output
    # every read of the month-old database found what it was timed for
    aged = results["aged"]
    assert min(aged["rows"].values()) >= 2000
    assert {name: x["found"] > 0 for name, x in aged["reads"].items()} == {
        name: True for name in aged["reads"]
    }
    assert "Aged database (" in output and "an ERP's shipment by order id" in output
    # `orderhook replay` itself sent the recordings, and stored each answer with its run
    replayed = results["replay"]["runs"][0]
    assert replayed["requests"] > 0 and replayed["statuses"] == {"200": replayed["requests"]}
    assert replayed["command_seconds"] >= replayed["sending_seconds"] >= 0
    # the writer's own benchmark ran both scenarios and every outcome was the expected one
    for scenario in results["writer"]["scenarios"]:
        assert sum(scenario["outcomes"].values()) == scenario["pushes"] > 0
        assert scenario["outcomes"]["accepted:"] == scenario["sent"]["new"]
    storage = results["storage"]
    names = {t["name"] for t in storage["btrees"]}
    assert {"requests", "events", "requests_received", "events_order"} <= names
    assert storage["bytes_per_request"] > 0
    assert "Ingest, closed loop (python" in output and "durability:" in output
    assert "OK" in output and "goal hub/bare >= 0.8: " in output
    # the ceiling ran every rung against bare in the same round, and the ones that record
    # hold every push they acked
    ceiling = results["ceiling"]
    assert {name: x["ratios"] != [] for name, x in ceiling["rungs"].items()} == {
        name: True for name in ("bare", "raw", "durable", "lean", "lean-split", "hub")
    }
    assert all(d["ok"] and d["acked_200"] > 0 for d in ceiling["durability"].values())
    assert "Ceiling: servers that do less" in output and "lean-split" in output


@pytest.mark.slow
@pytest.mark.skipif(not wrk.available(), reason="wrk is not installed (make bench installs it)")
def test_smoke_run_with_wrk(tmp_path: Path) -> None:
    results, _ = smoke(tmp_path, "wrk")
    assert results["ingest"]["options"]["generator"] == "wrk"
    assert results["ingest"]["durability"]["ok"], results["ingest"]["durability"]
    assert all(r["responses"] > 0 for r in results["ingest"]["runs"])


def run_tool(
    main: Callable[[], None], args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """A bench tool run as `python -m bench.X ARGS --out FILE`: the JSON it wrote."""
    out = tmp_path / "out.json"
    monkeypatch.setattr(sys, "argv", ["bench", *args, "--out", str(out)])
    main()
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def test_stage_bench_routes_every_order_and_reports_its_cost_over_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_tool(stage.main, ["--events", "300", "--batch", "30", "--repeat", "1"], tmp_path, monkeypatch)  # fmt: skip
    assert result["applied"] == result["routed"] == result["assigned"] == 300
    # a statement or two per event, as the stage sends them (triggers are not counted)
    assert 1 <= result["statements_per_event"] < 3
    assert result["cpu_us_per_event_first_tenth"] > 0 and result["cpu_us_per_event_last_tenth"] > 0


def test_soak_acks_every_push_and_reports_each_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_tool(soak.main, ["--rate", "50", "--seconds", "2", "--window", "0.5"], tmp_path, monkeypatch)  # fmt: skip
    assert result["acked"] == result["pushes"] == 100
    assert len(result["windows"]) >= 3
    assert sum(w["pushes"] for w in result["windows"]) <= 100
    for window in result["windows"]:
        assert set(window["rss_mb"]) == {"event loop process", "ingest writer", "stage runner"}
        assert all(mb > 10 for mb in window["rss_mb"].values())
    assert sum(w["cpu_us_per_push"]["ingest writer"] for w in result["windows"]) > 0


def test_help_has_examples() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "python -m bench --smoke" in result.output


def test_pushes_verify_with_the_official_package_and_mix_mistakes_in() -> None:
    batch = pushes.make(400, "t", pushes.MIXED, seed=7)
    kinds = pushes.kinds(batch)
    assert kinds["duplicate"] > 0 and kinds["bad_signature"] > 0
    assert len({p.msg_id for p in batch if p.kind == "new"}) == kinds["new"]
    good = Webhook(pushes.BENCH_SECRET)
    for push in batch[:60]:
        _, _, pairs, body = pushes.split(push.raw)
        headers = {name.lower(): value for name, value in pairs}
        assert int(headers["content-length"]) == len(body)
        if push.kind == "bad_signature":
            with pytest.raises(WebhookVerificationError):
                good.verify(body, headers)
        else:
            assert good.verify(body, headers)["data"]["order_id"] == push.order_id
    originals = {p.msg_id: p.raw for p in batch if p.kind == "new"}
    assert all(originals[p.msg_id] == p.raw for p in batch if p.kind == "duplicate")


def _send_raw(url: str, raws: list[bytes]) -> list[int]:
    statuses = []
    with httpx.Client(base_url=url, timeout=10) as http:
        for raw in raws:
            _, path, headers, body = pushes.split(raw)
            statuses.append(http.post(path, content=body, headers=headers).status_code)
    return statuses


@pytest.mark.parametrize("kind", ["lean", "lean-split"])
def test_lean_rungs_verify_record_and_dedupe_before_they_ack(tmp_path: Path, kind: str) -> None:
    """The ceiling's lean rungs must do the work they stand for, or their ratio says
    nothing: a wrong signature is refused, every request is recorded, a redelivery is
    acked but makes no second event."""
    batch = pushes.make(120, "lean", pushes.MIXED, seed=3)
    db = tmp_path / f"{kind}.db"
    server = Server(kind, db=db).start(tmp_path)
    try:
        statuses = _send_raw(server.url, [p.raw for p in batch])
    finally:
        server.stop()
    expected = {"new": 200, "duplicate": 200, "bad_signature": 401}
    assert statuses == [expected[p.kind] for p in batch]
    with sqlite3.connect(db) as conn:
        recorded = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        events = dict(conn.execute("SELECT message_id, request_id FROM events").fetchall())
    assert recorded == len(batch)
    # sent one at a time, so request n is batch[n - 1]: each event stays with its first
    assert events == {p.msg_id: n for n, p in enumerate(batch, 1) if p.kind == "new"}


def test_pushes_for_wrk_are_dealt_to_threads_without_overlap(tmp_path: Path) -> None:
    batch = pushes.make(9, "w")
    pushes.write_for_wrk(batch, tmp_path / "req", threads=2)
    seen = []
    for t in (0, 1):
        data = (tmp_path / f"req.{t}").read_bytes()
        while data:
            length, _, rest = data.partition(b"\n")
            seen.append(rest[: int(length)])
            data = rest[int(length) :]
    assert sorted(seen) == sorted(p.raw for p in batch)


def test_open_loop_counts_waiting_for_a_busy_server_as_latency() -> None:
    """One connection, a server that takes 50 ms, pushes due every 10 ms: the last push
    waits for the nine before it, and its latency must say so (no coordinated omission)."""

    async def slow(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await asyncio.sleep(0.05)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    with serve_app(slow) as url:
        outcomes = loadgen.run_on_uvloop(
            lambda: loadgen.open_loop(url, [raw] * 10, rate=100, max_connections=1)
        )
    assert [o.status for o in outcomes] == [200] * 10
    # served one after another: the 10th answer comes >= 10 x 50 ms after the first was due,
    # and it was due 90 ms after the first
    assert outcomes[-1].latency is not None and outcomes[-1].latency >= 0.5 - 0.09
    assert outcomes[-1].scheduled - outcomes[0].scheduled == pytest.approx(0.09, abs=1e-5)


def test_profile_summary_puts_library_frames_on_their_caller() -> None:
    collapsed = "\n".join(
        [
            "thread (1): MainThread;run (uvicorn/server.py:1);__call__ (/x/hub/ingest.py:100);"
            "verify (/x/connectors/standard.py:90);digest (/py/hmac.py:1) 30",
            "thread (1): MainThread;run (uvicorn/server.py:1);__call__ (/x/hub/ingest.py:119);"
            "send (/s/site-packages/uvicorn/protocols/http/httptools_impl.py:500) 50",
            'process 1:"python -m bench.serve hub";process 2:"python -c from '
            'hub.store.ingest_process import main; main() hub.db 9 1024";thread (2): MainThread;'
            "serve (/x/hub/store/ingest_process.py:80);ingest (/x/hub/store/ingest_sql.py:300) 15",
            'process 1:"python -m bench.serve hub";process 2:"python -c from '
            'hub.store.ingest_process import main; main() hub.db 9 1024";thread (2): MainThread;'
            "serve (/x/hub/store/ingest_process.py:80);Batches.commit "
            "(/x/hub/store/ingest_process.py:119);transaction (/x/hub/store/connection.py:26) 5",
            'process 1:"python -m bench.serve hub";process 2:"python -c from '
            'hub.store.ingest_process import main; main() hub.db 9 1024";thread (2): MainThread;'
            "serve (/x/hub/store/ingest_process.py:80);admit (/x/hub/ingest.py:200);"
            "verify (/x/connectors/standard.py:90);digest (/py/hmac.py:1) 20",
        ]
    )
    summary = profile.summarise(collapsed)
    assert summary["samples"] == 120
    assert summary["stages"] == {
        "HTTP server (uvicorn, httptools, uvloop)": 0.417,
        "verify + parse": 0.25,
        "ingest writer process: verify + parse (admit)": 0.167,
        "ingest writer process: rows and SQL": 0.125,
        "ingest writer process: COMMIT (WAL write + fsync)": 0.042,
    }
    assert summary["threads"] == {"event loop (main thread)": 0.667, "ingest writer process": 0.333}


def test_fresh_timestamps() -> None:
    push = pushes.make(1, "ts")[0]
    stamp = int(push.raw.split(b"Webhook-Timestamp: ")[1].split(b"\r\n")[0])
    assert abs(stamp - datetime.now(UTC).timestamp()) < 60
