"""The HTTP client replay sends with: aiohttp, set up to put on the wire what was
recorded and nothing of its own but Host and Content-Length.

Why not httpx, as everywhere else: replay sends thousands of requests from one Python
process, and httpx/httpcore cost ~1.1-1.5 ms of CPU a request (its pool scans every
connection on each request, anyio asks the socket its peer name ~11 times), aiohttp
~0.2-0.4 ms (docs/performance.md, replay).

Bytes as recorded: the hub records header names, values and the query as latin-1
text of the bytes received; aiohttp writes the request head as UTF-8, so each is
turned back into its bytes and given to aiohttp as the UTF-8 text of them. A header
whose bytes are not UTF-8 cannot be sent exactly and is refused (SendError)
rather than sent altered. The URL is passed to aiohttp already encoded, so yarl does
not re-quote it (it would turn `%41` into `A` and `%2F` into `/`).

`Wire.send` raises SendError for a request it cannot send exactly, NoAnswer when no
complete answer came back (cannot connect, reset, timed out, not HTTP).

Only replay imports this module, when it sends: aiohttp takes ~0.25 s to import (it
builds its TLS contexts then), which no other command should pay.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from sandbox.sending import NoAnswer, Prepared, SendError

# what aiohttp would add by itself and a recording may not have
AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")

# RFC 3986 reserved and unreserved characters, and '%' so existing escapes stay as sent
URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


def env_proxy(url: str) -> str | None:
    """The proxy the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY) gives for `url`,
    as httpx found it for replay before; no credentials are taken from ~/.netrc, which
    would add an Authorization header the recording did not have."""
    parts = urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def wire_text(text: str, what: str) -> str:
    """Recorded latin-1 text as the text whose UTF-8 encoding is the recorded bytes."""
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeEncodeError:  # not bytes read as latin-1: text someone wrote
        return text
    except UnicodeDecodeError:
        raise SendError(
            f"{what} has bytes that are not UTF-8; it cannot be sent as recorded"
        ) from None


def wire_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(wire_text(k, f"header {k!r}"), wire_text(v, f"header {k!r}")) for k, v in headers]


def wire_url(url: str) -> URL:
    """`url` percent-encoded where it must be (spaces, non-ASCII), escapes kept as sent:
    the path as UTF-8 (the hub records it decoded), the query as its recorded bytes."""
    base, mark, query = url.partition("?")
    encoded = quote(base, safe=URL_SAFE)
    if mark:
        try:
            raw: str | bytes = query.encode("latin-1")
        except UnicodeEncodeError:  # a query typed on the command line
            raw = query
        encoded += "?" + quote(raw, safe=URL_SAFE)
    try:
        return URL(encoded, encoded=True)
    except ValueError as exc:
        raise SendError(f"not a URL to send to: {url!r} ({exc})") from None


@dataclass(frozen=True, slots=True)
class Wire:
    """What every request of a run goes out with."""

    session: aiohttp.ClientSession
    proxy: str | None = None

    async def send(self, req: Prepared) -> Answer:
        url, headers = wire_url(req.url), wire_headers(req.headers)
        try:
            async with self.session.request(
                req.method,
                url,
                headers=headers,
                data=req.body or None,
                proxy=self.proxy,
                allow_redirects=False,
            ) as response:
                return Answer(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            detail = str(exc) or "no answer within the timeout"
            raise NoAnswer(f"{type(exc).__name__}: {detail}") from exc
        except ValueError as exc:  # what aiohttp refuses to write (a header it finds unsafe)
            raise SendError(f"cannot send this request: {exc}") from exc


@asynccontextmanager
async def wire(target: str, concurrency: int, timeout: float) -> AsyncIterator[Wire]:
    """One session for a whole run: at most `concurrency` kept-alive connections, no
    cookies carried from one answer to the next request, no default headers."""
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency),
        timeout=aiohttp.ClientTimeout(total=timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=AUTO_HEADERS,
    ) as session:
        yield Wire(session, env_proxy(target))
