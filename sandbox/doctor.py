"""Diagnose a callback endpoint the way a platform meets it, and name the cause.

The checks run in the order a platform's delivery goes, and stop at the first layer
that fails (a platform cannot get further either):

1. DNS: does the host resolve?
2. TCP: refused (nothing listens) or no answer at all (a firewall drops the packets)?
3. TLS (https): expired, not yet valid, wrong host name, untrusted chain; days left.
4. HTTP, with one platform-faithful signed push (connector `simulate`):
   404 / 405; an answer naming an unknown shop or app (test/prod mix-up); slower than
   the platform's timeout; an ack the platform would not take (connector `check_ack`,
   else compared with connector `ack`); a refused signature, and then which known
   algorithm variant the endpoint does accept (connector `variants`), or which other
   credentials (`--try-secret test=...`) it accepts.

Every finding says what to do. The push is a `paid` event for order DOCTOR_ORDER_ID
(an id no platform issues), so an endpoint's logs show it as the doctor's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509

import connectors
from connectors.base import Inbound, Outbound
from hub.model import Kind, utcnow
from hub.settings import Shop
from sandbox.sending import SendError, connector_method

DOCTOR_ORDER_ID = "9999999999999999999"
DEFAULT_TIMEOUT = 5.0  # seconds; a platform's own value wins (connector `ack_timeout`)
EXPIRY_WARN_DAYS = 14
# answers that mean "I do not know this shop/app": the endpoint is set up for another one
WRONG_APP_REASONS = frozenset(
    {"unknown_shop", "unknown_app", "unknown_app_key", "app_key_mismatch", "invalid_app_key"}
)
# OpenSSL verify codes (x509_vfy.h)
EXPIRED, NOT_YET_VALID = 10, 9
HOST_MISMATCH = frozenset({62, 64})  # host name, IP address
UNTRUSTED = frozenset({2, 18, 19, 20, 21})


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    severity: str  # ok | warn | error
    message: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Checkup:
    url: str
    shop: Shop
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = 3.0
    cafile: str | None = None
    other_secrets: dict[str, str] = field(default_factory=dict)  # label -> secret


@dataclass(slots=True)
class Report:
    url: str
    findings: list[Finding] = field(default_factory=list)

    def add(self, code: str, severity: str, message: str, fix: str = "") -> Finding:
        finding = Finding(code, severity, message, fix)
        self.findings.append(finding)
        return finding

    @property
    def worst(self) -> str:
        levels = {f.severity for f in self.findings}
        return "error" if "error" in levels else "warn" if "warn" in levels else "ok"


def platform_timeout(platform: str) -> float:
    return float(getattr(connectors.get(platform), "ack_timeout", DEFAULT_TIMEOUT))


async def diagnose(check: Checkup) -> Report:
    report = Report(check.url)
    parts = urlsplit(check.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        report.add("bad_url", "error", f"{check.url!r} is not an http(s) URL", "Give the full URL.")
        return report
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = await _resolve(report, host, port)
    if address is None or not await _connect(report, address, port, check.connect_timeout):
        return report
    if parts.scheme == "https" and not await _tls(report, check, host, address, port):
        return report
    await _http(report, check)
    return report


async def _resolve(report: Report, host: str, port: int) -> str | None:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        report.add(
            "dns_failure",
            "error",
            f"{host} does not resolve ({exc.strerror or exc})",
            "Check the host name for typos and that its DNS record exists publicly: the "
            "platform resolves it from the internet, not from your network.",
        )
        return None
    address = str(infos[0][4][0])
    report.add("dns", "ok", f"{host} resolves to {address}")
    return address


async def _connect(report: Report, address: str, port: int, limit: float) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), limit)
    except ConnectionRefusedError:
        report.add(
            "connection_refused",
            "error",
            f"{address}:{port} refused the connection: nothing listens there",
            "Start the service, or fix the port in the callback URL; check that the "
            "reverse proxy or load balancer forwards this port.",
        )
        return False
    except TimeoutError:
        report.add(
            "port_filtered",
            "error",
            f"{address}:{port} did not answer within {limit:g} s: packets are dropped",
            "A firewall or security group drops the connection: allow inbound traffic on "
            "this port from the platform's callback addresses.",
        )
        return False
    except OSError as exc:
        report.add(
            "unreachable",
            "error",
            f"{address}:{port} is unreachable ({exc.strerror or exc})",
            "Check routing and that the address is public.",
        )
        return False
    writer.close()
    report.add("tcp", "ok", f"{address}:{port} accepts connections")
    return True


async def _tls(report: Report, check: Checkup, host: str, address: str, port: int) -> bool:
    cert = await _peer_certificate(address, port, host, check.connect_timeout)
    not_after = cert.not_valid_after_utc if cert is not None else None
    days = (not_after - datetime.now(UTC)).days if not_after else None
    context = ssl.create_default_context(cafile=check.cafile)
    try:
        _r, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, ssl=context, server_hostname=host),
            check.connect_timeout,
        )
        writer.close()
    except ssl.SSLCertVerificationError as exc:
        _tls_failure(report, exc, host, not_after, days)
        return False
    except (ssl.SSLError, OSError, TimeoutError) as exc:
        report.add(
            "tls_handshake_failed",
            "error",
            f"TLS handshake failed: {exc}",
            "Check that the port serves HTTPS and offers TLS 1.2 or later.",
        )
        return False
    if days is not None and days < EXPIRY_WARN_DAYS:
        report.add(
            "tls_expiring",
            "warn",
            f"the certificate expires in {days} day(s) ({not_after:%Y-%m-%d})",
            "Renew it now: when it expires every platform push fails.",
        )
    else:
        report.add("tls", "ok", f"certificate valid for {host}, {days} day(s) left")
    return True


def _tls_failure(
    report: Report, exc: ssl.SSLCertVerificationError, host: str, not_after: Any, days: int | None
) -> None:
    code = exc.verify_code
    if code == EXPIRED:
        report.add(
            "tls_expired",
            "error",
            f"the certificate expired {_days_ago(not_after)} day(s) ago ({not_after:%Y-%m-%d})",
            "Renew the certificate and reload the server; platforms refuse expired ones.",
        )
    elif code == NOT_YET_VALID:
        report.add(
            "tls_not_yet_valid",
            "error",
            "the certificate is not valid yet",
            "Check the server's clock and the certificate's start date.",
        )
    elif code in HOST_MISMATCH:
        report.add(
            "tls_hostname_mismatch",
            "error",
            f"the certificate is not for {host} ({exc.verify_message})",
            "Serve a certificate whose names include this host, or use the host the "
            "certificate was issued for in the callback URL.",
        )
    elif code in UNTRUSTED:
        report.add(
            "tls_untrusted",
            "error",
            f"the certificate chain is not trusted ({exc.verify_message})",
            "Serve the full chain (leaf + intermediates) from a public CA; self-signed "
            "certificates are refused by platforms.",
        )
    else:
        report.add(
            "tls_invalid",
            "error",
            f"certificate refused: {exc.verify_message}",
            "Fix the certificate.",
        )


def _days_ago(moment: datetime | None) -> str:
    return "?" if moment is None else str((datetime.now(UTC) - moment).days)


async def _peer_certificate(
    address: str, port: int, host: str, limit: float
) -> x509.Certificate | None:
    """The server's certificate, read without verifying it (to report dates)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _r, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, ssl=context, server_hostname=host), limit
        )
    except (OSError, TimeoutError):
        return None
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der) if der else None


# --- HTTP -----------------------------------------------------------------------------------


async def _http(report: Report, check: Checkup) -> None:
    shop = check.shop
    try:
        push = connector_method(shop.platform, "simulate")(shop, Kind.PAID, DOCTOR_ORDER_ID)
    except SendError as exc:
        report.add("no_simulator", "error", str(exc), "Use a platform whose connector can sign.")
        return
    verify: Any = ssl.create_default_context(cafile=check.cafile)
    timeout = httpx.Timeout(check.timeout * 2, connect=check.connect_timeout)
    async with httpx.AsyncClient(verify=verify, timeout=timeout) as client:
        answer = await _post(client, check.url, push)
        if answer is None:
            report.add(
                "slow_handler",
                "error",
                f"no answer within {check.timeout * 2:g} s (the platform gives up after "
                f"{check.timeout:g} s and retries)",
                "Ack first, work later: store the push, answer, then process it in the "
                "background (a queue or an outbox).",
            )
            return
        status, body, elapsed, location = answer
        if elapsed > check.timeout:
            report.add(
                "slow_handler",
                "error",
                f"answered after {elapsed:.1f} s; the platform waits {check.timeout:g} s, "
                "then counts a failure and redelivers",
                "Ack first, work later: store the push, answer, then process it in the "
                "background (a queue or an outbox).",
            )
        if 200 <= status < 300:
            _check_ack(report, shop, check.url, push, status, body)
            return
        if 300 <= status < 400:
            report.add(
                "redirect",
                "error",
                f"{status} redirect to {location or '(no Location)'}: platforms do not "
                "follow redirects, the push counts as failed",
                "Register the final URL (https, host and path exactly as served) with the "
                "platform.",
            )
            return
        if status == 404 and _reason(body) not in WRONG_APP_REASONS:
            report.add(
                "wrong_path",
                "error",
                f"404 at {check.url}: no handler at this path",
                "Register exactly this URL with the platform (check the path, a missing "
                "prefix, a trailing slash), or fix the route.",
            )
            return
        if status == 405:
            report.add(
                "wrong_method",
                "error",
                "405: the endpoint does not take POST here",
                "Platforms push with POST: accept POST on this route.",
            )
            return
        if status >= 500:
            report.add(
                "server_error",
                "error",
                f"the handler failed with {status}: {body[:200]!r}",
                "Its logs say why; the platform keeps redelivering until it answers 2xx.",
            )
            return
        if _reason(body) in WRONG_APP_REASONS:
            _wrong_app(report, f"the endpoint answered {status} {_reason(body)}", check.shop)
            return
        await _signature(report, client, check, push, status, body)


async def _post(
    client: httpx.AsyncClient, url: str, push: Outbound
) -> tuple[int, bytes, float, str] | None:
    started = time.perf_counter()
    try:
        response = await client.post(url + push.tail, headers=push.headers, content=push.body)
    except httpx.TimeoutException:
        return None
    elapsed = time.perf_counter() - started
    return response.status_code, response.content, elapsed, response.headers.get("location", "")


def _reason(body: bytes) -> str | None:
    """The machine-readable reason in an error answer, in the common shapes."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    error = value.get("error")
    if isinstance(error, dict) and isinstance(error.get("reason"), str):
        return str(error["reason"])
    for key in ("reason", "code", "error"):
        if isinstance(value.get(key), str):
            return str(value[key])
    return None


def _check_ack(
    report: Report, shop: Shop, url: str, push: Outbound, status: int, body: bytes
) -> None:
    connector: Any = connectors.get(shop.platform)
    check_ack = getattr(connector, "check_ack", None)
    if check_ack is not None:
        problem = check_ack(status, body)
    else:
        msg = Inbound(
            platform=shop.platform,
            shop=shop,
            method="POST",
            path=urlsplit(url).path,
            tail=push.tail,
            query="",
            headers=push.headers,
            body=push.body,
            received_at=utcnow(),
            content_type=push.headers.get("content-type", ""),
        )
        expected = connector.ack(msg)
        problem = (
            None
            if _same_body(expected.body, body)
            else f"expected {expected.body.decode('utf-8', 'replace')}"
        )
    if problem:
        report.add(
            "wrong_ack_body",
            "error",
            f"answered {status} {body[:200].decode('utf-8', 'replace')!r}; {problem}",
            f"Answer exactly what {shop.platform} expects, or it counts a failure and "
            "redelivers the push.",
        )
    else:
        report.add("ack", "ok", f"the signed push was accepted with a valid ack ({status})")


def _same_body(a: bytes, b: bytes) -> bool:
    try:
        return bool(json.loads(a) == json.loads(b))
    except ValueError:
        return a.strip() == b.strip()


def _wrong_app(report: Report, evidence: str, shop: Shop) -> None:
    report.add(
        "environment_mismatch",
        "error",
        f"{evidence}: the endpoint is set up for another shop, app key or environment",
        f"Point the platform's {'app ' + shop.app_key if shop.app_key else 'shop'} at the "
        "endpoint configured for it (test pushes to the test endpoint, production to "
        "production), or configure this shop there.",
    )


async def _signature(
    report: Report,
    client: httpx.AsyncClient,
    check: Checkup,
    push: Outbound,
    status: int,
    body: bytes,
) -> None:
    shop = check.shop
    try:
        variants = connector_method(shop.platform, "variants")(shop, push)
    except SendError:
        variants = {}
    accepted = []
    for name, variant in variants.items():
        answer = await _post(client, check.url, variant)
        if answer is not None and 200 <= answer[0] < 300:
            accepted.append(name)
    if accepted:
        report.add(
            "signature_variant",
            "error",
            f"the current signature was refused ({status}) but the endpoint accepts the "
            f"{', '.join(accepted)} variant: it verifies with another algorithm",
            f"Update the endpoint's verification to {shop.platform}'s current algorithm "
            "(see docs/connectors/); the platform signs only the current way.",
        )
        return
    for label, secret in check.other_secrets.items():
        other = dataclasses.replace(shop, secret=secret)
        resent = connector_method(shop.platform, "resign")(other, push)
        answer = await _post(client, check.url, resent)
        if answer is not None and 200 <= answer[0] < 300:
            _wrong_app(report, f"it accepts pushes signed with the {label!r} secret", shop)
            return
    report.add(
        "signature_rejected",
        "error",
        f"refused with {status} {body[:200].decode('utf-8', 'replace')!r}, and no known "
        "signature variant is accepted",
        "The endpoint verifies with another secret: check which shop's secret it uses "
        "(a rotated secret? a test secret?). Try --try-secret LABEL=SECRET.",
    )
