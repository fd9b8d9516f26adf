"""SSRF guard: subscription URLs come from people, so the hub must not be talked into
posting to itself, the metadata service or the office network.

The check runs where the connection is made (a network backend under httpx), on the
addresses the name resolves to at that moment, and connects to the checked address
itself — so a name that resolves to a public address when the subscription is added
and to 127.0.0.1 later (DNS rebinding) is still refused. Only globally routable
unicast addresses pass, unless `[delivery] allow_private = true`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx


class TargetRefused(Exception):
    """The URL's host is, or resolves to, an address the hub will not send to."""


def refused_reason(address: str) -> str | None:
    """Why an address is refused, or None when it is a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for test, label in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_private", "private"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
    ):
        if getattr(ip, test):
            return f"{address} is a {label} address"
    if not ip.is_global:  # e.g. 100.64.0.0/10 carrier-grade NAT, documentation ranges
        return f"{address} is not a public address"
    return None


def check_addresses(host: str, addresses: Iterable[str]) -> list[str]:
    """The addresses, or TargetRefused naming the first that is not public."""
    found = list(dict.fromkeys(addresses))
    if not found:
        raise TargetRefused(f"{host} resolves to no address")
    for address in found:
        reason = refused_reason(address)
        if reason:
            raise TargetRefused(f"{host}: {reason} (set [delivery] allow_private = true to allow)")
    return found


def check_url(url: str, *, allow_private: bool) -> None:
    """Validate a subscription URL when it is added (scheme, host, resolution)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused(f"{url!r} is not an http(s) URL with a host")
    if parts.username or parts.password:
        raise TargetRefused("credentials in the URL are not allowed (they would be logged)")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetRefused(f"{parts.hostname} does not resolve: {exc}") from None
    check_addresses(parts.hostname, (str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, check, then connect to the checked address (not the name again)."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self.allow_private:
            return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        addresses = check_addresses(host, (str(info[4][0]) for info in infos))
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused("unix sockets are not delivery targets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_transport(*, allow_private: bool, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection passes the guard.

    httpx has no public hook for the network backend, so the pool it builds is replaced
    by an identical one with ours (tests/delivery/test_guard.py catches an httpx change
    that would silently drop it). No proxies from the environment: a proxy would make
    the connection on our behalf and bypass the check."""
    transport = httpx.AsyncHTTPTransport(trust_env=False, limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=transport._pool._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(allow_private=allow_private),
    )
    return transport


def refusal_in(exc: BaseException) -> TargetRefused | None:
    """The TargetRefused behind an httpx error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TargetRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
