"""`orderhook doctor`: every failure built for real on 127.0.0.1 and named correctly."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

import connectors
from connectors import standard
from connectors.base import Reply, json_reply
from hub.cli import cli
from tests.conftest import DEMO_SECRET, free_port, serve_app

TEST_SECRET = "whsec_" + "dGhlLXNhbmRib3gtYXBwLXNlY3JldC1ub3QtcHJvZA=="


def doctor(url: str, *extra: str) -> tuple[int, dict]:
    result = CliRunner().invoke(
        cli,
        [
            "doctor",
            url,
            "-p",
            "standard",
            "--secret",
            DEMO_SECRET,
            "--json",
            "--config",
            "/nonexistent/orderhook.toml",
            *extra,
        ],
    )
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, json.loads(result.output)


def codes(report: dict) -> list[str]:
    return [f["code"] for f in report["findings"] if f["severity"] != "ok"]


def app_with(handler, methods=("POST",)) -> Starlette:  # type: ignore[no-untyped-def]
    return Starlette(routes=[Route("/hook", handler, methods=list(methods))])


def old_algorithm(secret: str, msg_id: str, ts: str, body: bytes) -> str:
    """What an outdated receiver checks: HMAC keyed with the secret's text."""
    mac = hmac.new(secret.encode(), f"{msg_id}.{ts}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def spec_algorithm(secret: str, msg_id: str, ts: str, body: bytes) -> str:
    return standard.signature(standard.secret_bytes(secret), msg_id, ts, body)


def verifying(secret: str, signer=spec_algorithm):  # type: ignore[no-untyped-def]
    """A handler that checks Standard Webhooks signatures with `signer`."""

    async def handler(request: Request) -> JSONResponse:
        body, h = await request.body(), request.headers
        expected = signer(secret, h["webhook-id"], h["webhook-timestamp"], body)
        if expected not in h["webhook-signature"].split():
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        return JSONResponse({"ok": True})

    return handler


def test_a_healthy_orderhook_hub_passes(live_hub):
    url, _hub = live_hub
    code, report = doctor(url, "--shop", "acme")  # bare base URL: /webhooks/standard/acme
    assert code == 0, report
    assert report["url"].endswith("/webhooks/standard/acme")
    assert [f["code"] for f in report["findings"]] == ["dns", "tcp", "ack"]


def test_dns_failure_on_a_name_that_never_resolves():
    code, report = doctor("http://callback.orderhook.invalid/hook")  # RFC 2606
    assert code == 1 and codes(report) == ["dns_failure"]
    assert "DNS" in report["findings"][0]["fix"]


def test_connection_refused_on_a_closed_port():
    code, report = doctor(f"http://127.0.0.1:{free_port()}/hook")
    assert code == 1 and codes(report) == ["connection_refused"]


def test_a_port_that_drops_packets_is_reported_as_filtered():
    # a listener whose accept queue is full: the kernel drops further SYNs, exactly what
    # a firewall's DROP rule looks like from outside
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        fillers.append(s)
    try:
        code, report = doctor(f"http://127.0.0.1:{port}/hook", "--connect-timeout", "0.5")
    finally:
        for s in (*fillers, listener):
            s.close()
    assert code == 1 and codes(report) == ["port_filtered"]
    assert "firewall" in report["findings"][-1]["fix"]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def https_server(ca: trustme.CA, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Serve the healthy handler over TLS with a certificate made as asked."""

    def serve(cert: trustme.LeafCert) -> Iterator[str]:
        pem = tmp_path / "server.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
        return serve_app(
            app_with(verifying(DEMO_SECRET)), ssl_certfile=str(pem), ssl_keyfile=str(pem)
        )

    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return serve, str(ca_file)


def test_tls_ok_with_days_left(ca, https_server):
    serve, ca_file = https_server
    with serve(ca.issue_cert("127.0.0.1")) as url:
        code, report = doctor(f"{url}/hook", "--cafile", ca_file)
    assert code == 0, report
    tls = next(f for f in report["findings"] if f["code"] == "tls")
    assert "day(s) left" in tls["message"]


def test_tls_expired_certificate(ca, https_server):
    serve, ca_file = https_server
    now = datetime.now(UTC)
    cert = ca.issue_cert(
        "127.0.0.1", not_before=now - timedelta(days=90), not_after=now - timedelta(days=3)
    )
    with serve(cert) as url:
        code, report = doctor(f"{url}/hook", "--cafile", ca_file)
    assert code == 1 and codes(report) == ["tls_expired"]
    assert "expired 3 day(s) ago" in report["findings"][-1]["message"]


def test_tls_expiring_soon_is_a_warning(ca, https_server):
    serve, ca_file = https_server
    cert = ca.issue_cert("127.0.0.1", not_after=datetime.now(UTC) + timedelta(days=10, hours=1))
    with serve(cert) as url:
        code, report = doctor(f"{url}/hook", "--cafile", ca_file)
    assert code == 3 and codes(report) == ["tls_expiring"]
    assert "10 day(s)" in report["findings"][2]["message"]


def test_tls_hostname_mismatch(ca, https_server):
    serve, ca_file = https_server
    with serve(ca.issue_cert("erp.example.com")) as url:
        code, report = doctor(f"{url}/hook", "--cafile", ca_file)
    assert code == 1 and codes(report) == ["tls_hostname_mismatch"]


def test_tls_untrusted_chain(https_server):
    serve, _ca_file = https_server
    stranger = trustme.CA()  # a CA nobody trusts: like a self-signed certificate
    with serve(stranger.issue_cert("127.0.0.1")) as url:
        code, report = doctor(f"{url}/hook")
    assert code == 1 and codes(report) == ["tls_untrusted"]


def test_wrong_path_wrong_method_and_a_redirect():
    async def get_only(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    async def moved(request: Request) -> RedirectResponse:
        return RedirectResponse("https://erp.example.com/hook", status_code=301)

    app = Starlette(routes=[Route("/hook", get_only), Route("/old", moved, methods=["POST"])])
    with serve_app(app) as url:
        assert codes(doctor(f"{url}/hooks")[1]) == ["wrong_path"]
        assert codes(doctor(f"{url}/hook")[1]) == ["wrong_method"]
        code, report = doctor(f"{url}/old")
        assert code == 1 and codes(report) == ["redirect"]
        assert "https://erp.example.com/hook" in report["findings"][-1]["message"]


def test_a_slow_handler_over_the_platform_timeout():
    async def slow(request: Request) -> JSONResponse:
        await asyncio.sleep(1.5)
        return JSONResponse({"ok": True})

    with serve_app(app_with(slow)) as url:
        code, report = doctor(f"{url}/hook", "--timeout", "0.5")
    assert code == 1 and codes(report) == ["slow_handler"]
    assert "Ack first" in report["findings"][-1]["fix"]


def test_an_endpoint_checking_an_old_algorithm_names_the_variant_it_accepts():
    with serve_app(app_with(verifying(DEMO_SECRET, old_algorithm))) as url:
        code, report = doctor(f"{url}/hook")
    assert code == 1 and codes(report) == ["signature_variant"]
    assert "secret-text-key" in report["findings"][-1]["message"]


def test_test_prod_mix_up_by_secret_and_by_unknown_shop(live_hub):
    with serve_app(app_with(verifying(TEST_SECRET))) as url:
        code, report = doctor(f"{url}/hook", "--try-secret", f"test={TEST_SECRET}")
        assert code == 1 and codes(report) == ["environment_mismatch"]
        assert "'test' secret" in report["findings"][-1]["message"]
        code, report = doctor(f"{url}/hook")  # without the other secret: just refused
        assert codes(report) == ["signature_rejected"]
    hub_url, _hub = live_hub
    code, report = doctor(f"{hub_url}/webhooks/standard/prod-shop")  # hub knows only 'acme'
    assert code == 1 and codes(report) == ["environment_mismatch"]


class StrictAck(standard.StandardWebhooks):
    """A platform whose ack body matters (as most Chinese platforms' do): no check_ack,
    so the doctor compares the answer with `ack`."""

    name = "strictack"
    check_ack = None  # type: ignore[assignment]

    def ack(self, msg) -> Reply:  # type: ignore[no-untyped-def]
        return json_reply(200, {"code": 0, "msg": "success"})


def test_a_wrong_ack_body(monkeypatch):
    monkeypatch.setitem(connectors._registry(), "strictack", StrictAck())

    async def wrong(request: Request) -> JSONResponse:
        return JSONResponse({"received": True})

    async def right(request: Request) -> JSONResponse:
        return JSONResponse({"msg": "success", "code": 0})

    with serve_app(
        Starlette(
            routes=[
                Route("/wrong", wrong, methods=["POST"]),
                Route("/right", right, methods=["POST"]),
            ]
        )
    ) as url:
        base = [
            "--config",
            "/nonexistent.toml",
            "--secret",
            DEMO_SECRET,
            "--json",
            "-p",
            "strictack",
        ]
        result = CliRunner().invoke(cli, ["doctor", f"{url}/wrong", *base])
        report = json.loads(result.output)
        assert result.exit_code == 1 and codes(report) == ["wrong_ack_body"]
        assert '"code":0' in report["findings"][-1]["message"]
        result = CliRunner().invoke(cli, ["doctor", f"{url}/right", *base])
        assert result.exit_code == 0, result.output


def test_human_output_says_what_to_fix():
    result = CliRunner().invoke(
        cli,
        [
            "doctor",
            f"http://127.0.0.1:{free_port()}/x",
            "-p",
            "standard",
            "--secret",
            DEMO_SECRET,
            "--config",
            "/nonexistent.toml",
        ],
    )
    assert result.exit_code == 1
    assert "FAIL connection_refused" in result.output and "fix: Start the service" in result.output
