"""Loopback only: tests may resolve and connect to this machine and nothing else.

`install()` wraps `socket.getaddrinfo` and `socket.socket.connect`/`connect_ex` for the
whole process (every thread, so uvicorn servers and the store's writer too). A name
that is not loopback fails to resolve at once with `socket.gaierror`, a connect to an
address that is not loopback with `OSError ENETUNREACH` (a literal address still
resolves: that is parsing, not traffic), and either is remembered in `attempts` so the
test that caused it can be failed with the host in the message: a product falling back
to a real gateway is a bug in the test's config, and must not pass because DNS is down.

Names under `.invalid` (RFC 6761) are refused too but not remembered: tests use them on
purpose to play a DNS failure.

The asyncio event loop resolves through `socket.getaddrinfo` and connects through
`socket.socket.connect`, so httpx, websockets and aiosmtplib are covered; a subprocess
(`orderhook serve` in its own process) is not, and its config must stay on loopback.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from collections.abc import Callable
from typing import Any

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

attempts: list[str] = []
_lock = threading.Lock()
_originals: dict[str, Callable[..., Any]] = {}


def _text(host: Any) -> str | None:
    if host is None:
        return None
    if isinstance(host, bytes | bytearray):
        return bytes(host).decode("ascii", "replace")
    return str(host)


def is_loopback(host: Any) -> bool:
    """Loopback names and addresses, the unspecified address (it connects to this
    machine), and no host at all (a passive lookup for a server to bind)."""
    name = _text(host)
    if not name:
        return True
    name = name.strip("[]").rstrip(".").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _deliberately_unresolvable(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "invalid" or name.endswith(".invalid")


def _refuse(host: str) -> str:
    with _lock:
        attempts.append(host)
    return f"tests are loopback-only: refused to reach {host!r}"


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    # a literal address resolves without a packet (the SSRF guard's own check needs
    # that); connecting to it is what `_connect` refuses
    if is_loopback(host) or _is_literal(_text(host) or ""):
        return _originals["getaddrinfo"](host, *args, **kwargs)
    name = _text(host) or ""
    if _deliberately_unresolvable(name):
        raise socket.gaierror(socket.EAI_NONAME, f"{name}: Name or service not known")
    raise socket.gaierror(socket.EAI_NONAME, _refuse(name))


def _destination(sock: socket.socket, address: Any) -> str | None:
    """The host of an INET connect that is not loopback, else None."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return None
    host = _text(address[0]) or ""
    return None if is_loopback(host) else host


def _connect(sock: socket.socket, address: Any) -> None:
    host = _destination(sock, address)
    if host is not None:
        raise OSError(errno.ENETUNREACH, _refuse(host))
    _originals["connect"](sock, address)


def _connect_ex(sock: socket.socket, address: Any) -> int:
    host = _destination(sock, address)
    if host is not None:
        _refuse(host)
        return errno.ENETUNREACH
    result: int = _originals["connect_ex"](sock, address)
    return result


def install() -> None:
    """Guard the process (idempotent); the originals stay in `_originals`."""
    if _originals:
        return
    _originals["getaddrinfo"] = socket.getaddrinfo
    _originals["connect"] = socket.socket.connect
    _originals["connect_ex"] = socket.socket.connect_ex
    socket.getaddrinfo = _getaddrinfo
    socket.socket.connect = _connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]


def take_attempts() -> list[str]:
    """The refused hosts since the last call, in order, without repeats."""
    with _lock:
        seen = list(dict.fromkeys(attempts))
        attempts.clear()
    return seen
