"""Email over SMTP (aiosmtplib): a plain-text body with a simple HTML alternative.

`security` is "starttls" (port 587, upgrade after connecting; refuses to go on in clear
text if the server cannot), "ssl" (port 465, TLS from the first byte) or "none"
(port 25, only for a relay on the same host or a test server). SMTP replies say
themselves whether to retry: 4xx is transient, 5xx is final (RFC 5321 §4.2.1).
"""

from __future__ import annotations

import html
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

import aiosmtplib

from connectors.base import SendResult
from connectors.notify import (
    ConfigProblem,
    Limits,
    Message,
    check_keys,
    ok,
    optional_text,
    permanent,
    required_text,
    retry,
    truncate_utf8,
)

LIMITS = Limits(max_bytes=1 << 20)
KEYS = ("host", "port", "security", "username", "password", "from", "to", "ca_file", "timeout")
PORTS = {"starttls": 587, "ssl": 465, "none": 25}
SUBJECT_MAX_BYTES = 200


@dataclass(frozen=True, slots=True)
class Config:
    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    timeout: float = 30.0


def configure(spec: Mapping[str, Any]) -> Config:
    check_keys(spec, KEYS)
    security = spec.get("security", "starttls")
    if security not in PORTS:
        raise ConfigProblem("security", f"'security' is one of {', '.join(PORTS)}")
    port = spec.get("port", PORTS[security])
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ConfigProblem("port", "'port' must be a whole number 1..65535")
    to = spec.get("to")
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to:
        raise ConfigProblem("to", "'to' is a list of addresses")
    for address in [required_text(spec, "from"), *to]:
        if not isinstance(address, str) or "@" not in parseaddr(address)[1]:
            raise ConfigProblem(
                "to" if address in to else "from", f"{address!r} is not an email address"
            )
    username = optional_text(spec, "username")
    password = optional_text(spec, "password")
    if (username is None) != (password is None):
        raise ConfigProblem(
            "password" if username else "username", "'username' and 'password' go together"
        )
    timeout = spec.get("timeout", 30)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise ConfigProblem("timeout", "'timeout' is a number of seconds")
    return Config(
        host=required_text(spec, "host"),
        sender=required_text(spec, "from"),
        to=tuple(to),
        port=port,
        security=security,
        username=username,
        password=password,
        ca_file=optional_text(spec, "ca_file"),
        timeout=float(timeout),
    )


def secrets(config: Config) -> list[str]:
    return [config.password] if config.password else []


def compose(config: Config, message: Message) -> EmailMessage:
    mail = EmailMessage()
    subject = f"[orderhook] [{message.severity.upper()}] {message.title}"
    mail["Subject"] = truncate_utf8(" ".join(subject.split()), SUBJECT_MAX_BYTES)
    mail["From"] = config.sender
    mail["To"] = ", ".join(config.to)
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=parseaddr(config.sender)[1].rpartition("@")[2])
    plain = message.text + (f"\n\n{message.url}" if message.url else "")
    mail.set_content(truncate_utf8(plain, LIMITS.max_bytes))
    link = (
        f'<p><a href="{html.escape(message.url, quote=True)}">details</a></p>'
        if message.url
        else ""
    )
    mail.add_alternative(
        "<html><body>"
        f"<h3>{html.escape(message.title)}</h3>"
        f"<p><b>{message.severity.upper()}</b></p>"
        f'<pre style="white-space:pre-wrap">'
        f"{html.escape(truncate_utf8(message.text, LIMITS.max_bytes))}</pre>"
        f"{link}</body></html>",
        subtype="html",
    )
    return mail


async def send(config: Config, message: Message) -> SendResult:
    where = f"{config.host}:{config.port}"
    tls = ssl.create_default_context(cafile=config.ca_file) if config.security != "none" else None
    try:
        refused, reply = await aiosmtplib.send(
            compose(config, message),
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.security == "ssl",
            start_tls=config.security == "starttls",
            tls_context=tls,
            timeout=config.timeout,
        )
    except aiosmtplib.SMTPAuthenticationError as exc:
        return permanent(
            str(exc.code), f"{where} refused the login: fix `username`/`password` ({exc.message})"
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        if all(code >= 500 for code in codes):
            return permanent(str(codes[0]), f"every recipient refused: fix `to` ({detail})")
        return retry(str(codes[0]), f"recipients refused for now ({detail})")
    except aiosmtplib.SMTPSenderRefused as exc:
        if exc.code >= 500:
            return permanent(
                str(exc.code), f"sender {exc.sender} refused: fix `from` ({exc.message})"
            )
        return retry(str(exc.code), f"sender refused for now ({exc.message})")
    except aiosmtplib.SMTPResponseException as exc:
        text = f"{where} answered {exc.code} {exc.message}"
        return permanent(str(exc.code), text) if exc.code >= 500 else retry(str(exc.code), text)
    except aiosmtplib.SMTPNotSupported as exc:
        return permanent("not_supported", f"{where}: {exc.message}: check `security`")
    except ssl.SSLCertVerificationError as exc:
        return permanent(
            "tls",
            f"{where}: TLS certificate refused ({exc.verify_message}): "
            "check `host` or set `ca_file`",
        )
    except aiosmtplib.SMTPException as exc:
        if "STARTTLS" in exc.message:
            # never fall back to clear text: the password would cross the network readable
            return permanent(
                "no_starttls",
                f"{where} does not offer STARTTLS: check `security` "
                'and `port` (465 is usually security = "ssl")',
            )
        return retry("connect", f"cannot deliver through {where}: {type(exc).__name__}: {exc}")
    except (OSError, TimeoutError) as exc:
        return retry("connect", f"cannot deliver through {where}: {type(exc).__name__}: {exc}")
    if refused:
        # some recipients took it: the message is out, the rest is for a person to fix
        names = ", ".join(f"{addr} ({r.code})" for addr, r in refused.items())
        return ok(detail=f"{reply}; refused: {names}")
    return ok(detail=reply)
