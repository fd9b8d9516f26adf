"""Email channel against a real SMTP server (aiosmtpd) on 127.0.0.1: plain, STARTTLS with
login, implicit TLS, refusals; and the alert path (`alert` row -> `deliver` -> mailbox)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connectors.notify import Message
from connectors.notify import email as mail
from hub import settings as settings_mod
from hub.notify import alert, deliver
from hub.runtime import Hub
from hub.store import Store
from tests.conftest import free_port

pytestmark = pytest.mark.anyio

PASSWORD = "smtp-pass-1234567"


class Mailbox:
    def __init__(self) -> None:
        self.received: list[Any] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append(envelope)
        return "250 2.0.0 queued"


def login(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"ops"
        and (auth_data.password == PASSWORD.encode())
    )
    # handled=False: the server itself answers 535 on failure
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the client trusts it through ca_file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_context(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, tls_files))
    return context


@pytest.fixture
def smtp() -> Iterator[Callable[..., tuple[Mailbox, int]]]:
    started: list[Controller] = []

    def start(**options: Any) -> tuple[Mailbox, int]:
        box, port = Mailbox(), free_port()
        controller = Controller(box, hostname="127.0.0.1", port=port, **options)
        controller.start()
        started.append(controller)
        return box, port

    yield start
    for controller in started:
        controller.stop()


MESSAGE = Message(
    "Delivery dead: outbox #7",
    "erp-main answered 503 three times.\n<b>not markup</b>",
    "critical",
    url="http://hub.local/outbox/7",
)


def config(port: int, **extra: Any) -> mail.Config:
    spec = {
        "host": "127.0.0.1",
        "port": port,
        "from": "orderhook <hub@shop.example>",
        "to": ["ops@shop.example"],
        "security": "none",
        "timeout": 5,
    } | extra
    return mail.configure(spec)


async def test_plain_text_and_html_alternative(smtp) -> None:
    box, port = smtp()
    result = await mail.send(config(port), MESSAGE)
    assert result.ok, result
    [envelope] = box.received
    assert envelope.mail_from == "hub@shop.example"
    assert envelope.rcpt_tos == ["ops@shop.example"]
    parsed = message_from_bytes(envelope.content, policy=policy.default)
    assert parsed["Subject"] == "[orderhook] [CRITICAL] Delivery dead: outbox #7"
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    assert "erp-main answered 503 three times." in plain and "http://hub.local/outbox/7" in plain
    assert "&lt;b&gt;not markup&lt;/b&gt;" in html  # the text is escaped, never rendered
    assert 'href="http://hub.local/outbox/7"' in html


async def test_starttls_with_login(smtp, tls_files) -> None:
    box, port = smtp(
        tls_context=server_context(tls_files),
        require_starttls=True,
        authenticator=login,
        auth_require_tls=True,
    )
    good = config(
        port, security="starttls", username="ops", password=PASSWORD, ca_file=str(tls_files[0])
    )
    assert (await mail.send(good, MESSAGE)).ok
    assert len(box.received) == 1
    wrong = config(
        port,
        security="starttls",
        username="ops",
        password="wrong-password",
        ca_file=str(tls_files[0]),
    )
    refused = await mail.send(wrong, MESSAGE)
    assert not refused.ok and not refused.retryable
    assert "`username`/`password`" in refused.detail
    assert "wrong-password" not in refused.detail


async def test_untrusted_certificate_is_a_setting_to_fix(smtp, tls_files) -> None:
    _, port = smtp(tls_context=server_context(tls_files), require_starttls=True)
    result = await mail.send(config(port, security="starttls"), MESSAGE)
    assert not result.ok and not result.retryable and "`ca_file`" in result.detail


async def test_starttls_never_falls_back_to_clear_text(smtp) -> None:
    box, port = smtp(authenticator=login, auth_require_tls=False)
    result = await mail.send(
        config(port, security="starttls", username="ops", password=PASSWORD), MESSAGE
    )
    assert not result.ok and not result.retryable and "`security`" in result.detail
    assert box.received == []


async def test_implicit_tls(smtp, tls_files) -> None:
    box, port = smtp(ssl_context=server_context(tls_files))
    result = await mail.send(config(port, security="ssl", ca_file=str(tls_files[0])), MESSAGE)
    assert result.ok, result
    assert len(box.received) == 1


async def test_refused_recipients_and_down_server(smtp) -> None:
    box, port = smtp()
    refused = await mail.send(config(port, to=["nobody@shop.example"]), MESSAGE)
    assert not refused.ok and not refused.retryable and "`to`" in refused.detail
    partly = await mail.send(config(port, to=["nobody@shop.example", "ops@shop.example"]), MESSAGE)
    assert partly.ok and "nobody@shop.example" in partly.detail
    assert box.received[-1].rcpt_tos == ["ops@shop.example"]
    down = await mail.send(config(free_port()), MESSAGE)
    assert not down.ok and down.retryable


async def test_ops_are_mailed_through_the_alert_path(smtp, write_config) -> None:
    box, port = smtp()
    path = write_config(f"""
[notify]
alerts = ["ops-mail"]

[notify.channels.ops-mail]
kind = "email"
host = "127.0.0.1"
port = {port}
security = "none"
from = "hub@shop.example"
to = ["ops@shop.example", "lead@shop.example"]
""")
    settings = settings_mod.load(path, env={})
    store = Store(settings.db)
    [row_id] = store.run(
        lambda conn: alert(
            conn, settings, title="Delivery dead", text="outbox #9 to erp-main: gave up after 3"
        )
    )
    target, payload = store.run(
        lambda conn: conn.execute(
            "SELECT target, payload FROM outbox WHERE id = ?", (row_id,)
        ).fetchone()
    )
    # what the outbox worker does with the row
    async with httpx.AsyncClient() as http:
        result = await deliver(Hub(settings), target, json.loads(payload), http)
    assert result.ok, result
    [envelope] = box.received
    assert sorted(envelope.rcpt_tos) == ["lead@shop.example", "ops@shop.example"]
    assert b"outbox #9 to erp-main" in envelope.content
