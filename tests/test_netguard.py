"""The loopback-only guard every test runs under (tests/netguard.py)."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests import netguard
from tests.conftest import serve_app


async def _ok_app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_a_real_gateway_name_is_refused_and_remembered() -> None:
    with pytest.raises(socket.gaierror, match=r"loopback-only.*gw\.api\.taobao\.com"):
        socket.getaddrinfo("gw.api.taobao.com", 443)
    with pytest.raises(socket.gaierror):
        socket.create_connection(("open-api.pinduoduo.com", 443), timeout=1)
    assert netguard.take_attempts() == ["gw.api.taobao.com", "open-api.pinduoduo.com"]


def test_a_literal_outside_address_resolves_but_is_not_connected_to() -> None:
    assert socket.getaddrinfo("10.0.0.8", 80)[0][4][0] == "10.0.0.8"  # no packet sent
    with socket.socket() as sock, pytest.raises(OSError, match=r"192\.0\.2\.1"):
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1
    with socket.socket() as sock:
        assert sock.connect_ex(("198.51.100.7", 80)) != 0
    assert netguard.take_attempts() == ["192.0.2.1", "198.51.100.7"]


def test_invalid_names_fail_like_dns_and_are_not_held_against_the_test() -> None:
    with pytest.raises(socket.gaierror) as failure:
        socket.getaddrinfo("hub.example.invalid", 443)
    assert failure.value.errno == socket.EAI_NONAME
    assert netguard.take_attempts() == []


def test_httpx_to_the_outside_fails_fast_but_loopback_works() -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get("https://gw.api.taobao.com/router/rest", timeout=5)
    assert netguard.take_attempts() == ["gw.api.taobao.com"]
    with serve_app(_ok_app) as url:
        assert httpx.get(url).text == "ok"
        assert httpx.get(url.replace("127.0.0.1", "localhost")).text == "ok"
    assert netguard.take_attempts() == []


def test_loopback_names_and_addresses() -> None:
    for host in (None, "", "localhost", "LOCALHOST.", "127.0.0.1", "127.8.9.10", "::1", "[::1]"):
        assert netguard.is_loopback(host), host
    for host in ("gw.api.taobao.com", "10.0.0.1", "192.168.1.1", "2001:db8::1", "localhost.evil"):
        assert not netguard.is_loopback(host), host
