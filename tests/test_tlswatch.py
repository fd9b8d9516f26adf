"""TLS watch: the hub serving HTTPS reports its certificate's days left and alerts at 14
and 3 days, once per certificate."""

from __future__ import annotations

import dataclasses
import logging
import ssl
import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trustme

import hub as hub_package
from hub import tlswatch
from hub.app import create_app
from hub.auth import issue_token
from hub.runtime import Hub
from hub.settings import Settings
from hub.store import Store
from tests.conftest import serve_app

pytestmark = pytest.mark.anyio


def cert_file(ca: trustme.CA, tmp_path: Path, days: float, name: str = "hub.pem") -> Path:
    cert = ca.issue_cert("127.0.0.1", not_after=datetime.now(UTC) + timedelta(days=days))
    path = tmp_path / name
    cert.private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


@pytest.fixture
def alerts(monkeypatch):  # type: ignore[no-untyped-def]
    """Stand in for the notification channels and keep what they were asked to send."""
    sent: list[dict[str, str]] = []

    def alert(conn, settings, *, title, text, severity="critical"):  # type: ignore[no-untyped-def]
        sent.append({"title": title, "text": text, "severity": severity})
        return []

    fake = types.SimpleNamespace(alert=alert)
    monkeypatch.setitem(sys.modules, "hub.notify", fake)
    monkeypatch.setattr(hub_package, "notify", fake, raising=False)
    return sent


def test_https_hub_reports_days_left_in_metrics_and_alerts_at_14_days(
    settings: Settings, tmp_path: Path, alerts
):  # type: ignore[no-untyped-def]
    ca = trustme.CA()
    pem = cert_file(ca, tmp_path, days=10.5)
    hub = Hub(dataclasses.replace(settings, certfile=pem))
    token = Store(settings.db).run(issue_token, "ops", "admin")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with serve_app(create_app(hub), ssl_certfile=str(pem), ssl_keyfile=str(pem)) as url:
        context = ssl.create_default_context(cafile=str(ca_file))
        r = httpx.get(
            f"{url}/metrics", headers={"authorization": f"Bearer {token}"}, verify=context
        )
    assert r.status_code == 200
    line = next(
        x for x in r.text.splitlines() if x.startswith("orderhook_tls_certificate_days_left")
    )
    assert 10.0 < float(line.split()[1]) < 10.6
    assert len(alerts) == 1 and alerts[0]["severity"] == "warning"
    assert "expires in 10 day(s)" in alerts[0]["title"]


async def test_each_threshold_alerts_once_per_certificate(
    settings: Settings, tmp_path: Path, alerts
):  # type: ignore[no-untyped-def]
    ca = trustme.CA()
    pem = tmp_path / "hub.pem"
    hub = Hub(dataclasses.replace(settings, certfile=pem), services=[])
    async with hub.running():
        pem.write_bytes(cert_file(ca, tmp_path, days=40, name="a.pem").read_bytes())
        await tlswatch.check(hub)
        assert alerts == []  # 40 days: nothing to say
        pem.write_bytes(cert_file(ca, tmp_path, days=13, name="b.pem").read_bytes())
        await tlswatch.check(hub)
        await tlswatch.check(hub)  # same certificate again (as after a restart): no repeat
        assert [a["severity"] for a in alerts] == ["warning"]
        pem.write_bytes(cert_file(ca, tmp_path, days=2.5, name="c.pem").read_bytes())
        await tlswatch.check(hub)  # a new certificate already under 3 days: one critical alert
        assert [a["severity"] for a in alerts] == ["warning", "critical"]
        assert "expires in 2 day(s)" in alerts[-1]["title"]


async def test_without_notification_channels_the_alert_is_logged(
    settings: Settings, tmp_path: Path, monkeypatch, caplog
):  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "hub.notify", None)  # import fails: no channels installed
    monkeypatch.delattr(hub_package, "notify", raising=False)
    pem = cert_file(trustme.CA(), tmp_path, days=0.5)
    hub = Hub(dataclasses.replace(settings, certfile=pem), services=[])
    with caplog.at_level(logging.WARNING, logger="orderhook.tlswatch"):
        async with hub.running():
            info = await tlswatch.check(hub)
    assert info is not None and 0 < info.days_left() < 0.6
    assert any("expires in less than a day" in r.getMessage() for r in caplog.records)


async def test_a_hub_without_https_does_not_watch(hub: Hub):  # type: ignore[no-untyped-def]
    assert hub.settings.certfile is None
    assert await tlswatch.check(hub) is None
