"""Watch the hub's own TLS certificate: days to expiry in /metrics, and an alert through
the notification channels when 14 and then 3 days are left.

Runs only when the hub serves HTTPS (`orderhook serve --certfile`). The file is re-read
on every check, so a renewed certificate (same path, new content) is picked up without a
restart; alerts are remembered per certificate fingerprint in `tls_alerts`, so a restart
does not raise them again and a renewed certificate starts afresh.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from hub.model import iso_utc, utcnow
from hub.store import sandbox_sql

if TYPE_CHECKING:
    from hub.runtime import Hub
    from hub.settings import Settings

log = logging.getLogger("orderhook.tlswatch")

THRESHOLDS = (14, 3)  # days left; each raises one alert per certificate
CHECK_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class CertInfo:
    path: Path
    fingerprint: str  # SHA-256 of the DER certificate, hex
    subject: str
    not_after: datetime

    def days_left(self, now: datetime | None = None) -> float:
        return (self.not_after - (now or utcnow())).total_seconds() / 86400


def read_cert(path: Path) -> CertInfo:
    """The first certificate in a PEM file (the leaf, when the file holds a chain)."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return CertInfo(
        path=path,
        fingerprint=hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
        subject=cert.subject.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
    )


def raise_alerts(conn: sqlite3.Connection, settings: Settings, info: CertInfo) -> int | None:
    """Alert once for the tightest threshold crossed and not yet alerted; returns it."""
    days = info.days_left()
    crossed = [t for t in THRESHOLDS if days <= t]
    fresh = [
        t
        for t in crossed
        if sandbox_sql.claim_tls_alert(conn, info.fingerprint, t, iso_utc(info.not_after))
    ]
    if not fresh:
        return None
    threshold = min(fresh)
    if days <= 0:
        when = "has expired"
    elif days < 1:
        when = "expires in less than a day"
    else:
        when = f"expires in {int(days)} day(s)"
    title = f"TLS certificate {when} ({info.subject})"
    text = (
        f"The hub's certificate {info.path} is valid until {iso_utc(info.not_after)}. "
        "Renew it and replace the file: every platform push fails once it expires."
    )
    severity = "critical" if threshold <= 3 else "warning"
    try:  # the notification channels, when this install has them
        notify: Any = importlib.import_module("hub.notify")
    except ImportError:
        notify = None
    if notify is None or not hasattr(notify, "alert"):
        log.warning("%s: %s", title, text)
    else:
        notify.alert(conn, settings, title=title, text=text, severity=severity)
    return threshold


async def check(hub: Hub) -> CertInfo | None:
    path = hub.settings.certfile
    if path is None:
        return None
    try:
        info = await asyncio.to_thread(read_cert, path)
    except (OSError, ValueError) as exc:
        log.error("cannot read the TLS certificate %s: %s", path, exc)
        return None
    hub.metrics.tls_days_left.set(info.days_left())
    threshold = await hub.store.write(raise_alerts, hub.settings, info)
    if threshold is not None:
        log.warning("TLS certificate %s: %d-day alert raised", path, threshold)
    return info


async def run(hub: Hub) -> None:
    """Check at start, then every CHECK_SECONDS (certificates expire slowly)."""
    if hub.settings.certfile is None:
        return
    while True:
        await check(hub)
        await asyncio.sleep(CHECK_SECONDS)
