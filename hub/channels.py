"""Background stage: hold the platforms' message channels open and feed what arrives on
them into the same pipeline as an HTTP push.

Taobao (TMC) and Pinduoduo push order messages over a WebSocket that WE open (the
shop's `message_url`). For each connection ("link": shops sharing app key, URL and
group share one), this stage:

1. opens the connection through the platform's channel client (`connector.channel`);
2. for every message: records it first — the raw frame bytes as the body, the channel's
   name, the shop, the received-at — verifies, parses and dedupes it exactly like a push
   (`hub.ingest.judge` + the store's group commit), and only after that commit resolves
   hands back the frame to answer with: confirm, or fail with the reason (the platform
   then keeps the message and delivers it again);
3. when the connection drops, is refused or goes silent, logs the session
   (`channel_sessions`) and reconnects with exponential backoff and jitter.

A hub killed between commit and confirm loses nothing: the platform redelivers the
unconfirmed message and the store's dedupe key makes it a duplicate. Nothing here names
a platform; `state(hub)` is what the board and /metrics show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import connectors
from connectors.base import Inbound, Rejection, Reply
from connectors.channel import METHOD, ChannelRefused, ChannelStalled, Delivery, Link
from hub.auth import requires
from hub.ingest import failure, judge, refused
from hub.model import iso_utc, utcnow
from hub.store import RequestRecord, channels_sql

if TYPE_CHECKING:
    from hub.runtime import Hub
    from hub.settings import Settings

log = logging.getLogger("orderhook.channels")

# a session that stayed open this long counts as healthy: the next reconnect starts
# again from the shortest delay
STABLE_SECONDS = 30.0


@dataclass(slots=True)
class ShopState:
    messages: int = 0
    last_message_at: datetime | None = None
    lag_seconds: float | None = None


@dataclass(slots=True)
class LinkState:
    link: Link
    connected: bool = False
    connected_since: datetime | None = None
    reconnects: int = 0
    last_error: str | None = None
    session_messages: int = 0
    shops: dict[str, ShopState] = field(default_factory=dict)


_STATES: weakref.WeakKeyDictionary[Hub, list[LinkState]] = weakref.WeakKeyDictionary()


def plan(settings: Settings) -> list[Link]:
    """The connections the shops need: one per platform channel and link key."""
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for shop in settings.shops.values():
        channel = getattr(connectors.get(shop.platform), "channel", None)
        key = channel.link_key(shop) if channel is not None else None
        if key is not None:
            groups[(shop.platform, key)].append(shop)
    links = []
    for (platform, key), shops in groups.items():
        first = shops[0]
        links.append(
            Link(
                platform=platform,
                channel=connectors.get(platform).channel.name,  # type: ignore[union-attr]
                url=first.message_url,
                app_key=first.app_key or "",
                secret=first.secret,
                shops=tuple(shops),
                options=dict(first.options),  # connection options come from the first shop
                key=key,
            )
        )
    return links


def state(hub: Hub) -> list[dict[str, Any]]:
    """Each channel shop's state, for the board: connected, since, last message, lag,
    reconnects, last error."""
    rows = []
    for st in _STATES.get(hub, []):
        for shop in st.link.shops:
            shop_state = st.shops[shop.name]
            rows.append(
                {
                    "platform": st.link.platform,
                    "shop": shop.name,
                    "channel": st.link.channel,
                    "link": st.link.name,
                    "url": st.link.url,
                    "connected": st.connected,
                    "connected_since": _iso(st.connected_since),
                    "reconnects": st.reconnects,
                    "last_error": st.last_error,
                    "messages": shop_state.messages,
                    "last_message_at": _iso(shop_state.last_message_at),
                    "lag_seconds": shop_state.lag_seconds,
                }
            )
    return rows


RESCAN_SECONDS = 5.0  # how soon a reloaded config's channels are opened or closed


async def run(hub: Hub) -> None:
    """The service: one `hold` task per link, following config reloads (`hub.settings`
    replaced): new links open, removed or changed ones close and reopen."""
    running: list[tuple[LinkState, asyncio.Task[None]]] = []
    try:
        while True:
            wanted = plan(hub.settings)
            keep = []
            for st, task in running:
                if st.link in wanted and not task.done():
                    keep.append((st, task))
                else:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    _set_connected(hub, st, False)
            for link in wanted:
                if not any(st.link == link for st, _ in keep):
                    if any(s.secret != link.secret for s in link.shops):
                        log.warning(
                            "shops %s share a %s channel but not a secret; using %s's",
                            ", ".join(s.name for s in link.shops),
                            link.platform,
                            link.shops[0].name,
                        )
                    st = LinkState(link, shops={s.name: ShopState() for s in link.shops})
                    _set_connected(hub, st, False)
                    keep.append(
                        (st, asyncio.create_task(hold(hub, st), name=f"channel:{link.name}"))
                    )
            running = keep
            _STATES[hub] = [st for st, _ in running]
            await asyncio.sleep(RESCAN_SECONDS)
    finally:
        for _st, task in running:
            task.cancel()
        await asyncio.gather(*(task for _st, task in running), return_exceptions=True)


async def hold(hub: Hub, st: LinkState) -> None:
    """Keep one link open forever: connect, serve, log the session, back off, again."""
    link = st.link
    channel = connectors.get(link.platform).channel  # type: ignore[union-attr]
    failures = 0
    while True:
        started = utcnow()
        st.session_messages = 0

        def opened() -> None:
            st.connected, st.connected_since = True, utcnow()
            _set_connected(hub, st, True)
            log.info("%s channel %s open (%s)", link.channel, link.name, link.url)

        error: str | None
        session = asyncio.create_task(channel.session(link, partial(receive, hub, st), opened))
        try:
            # wait on the task rather than in it: a stopping hub is never held hostage by
            # a session that is slow to unwind
            await asyncio.wait({session})
        except asyncio.CancelledError:
            session.cancel()
            await asyncio.wait({session}, timeout=5)
            await _session_ended(hub, st, started, "hub stopped")
            raise
        try:
            session.result()
            error = "closed by the service"
        except ChannelRefused as exc:
            error = f"{exc.reason}: {exc.detail}"
            log.error("%s channel %s refused: %s", link.channel, link.name, error)
        except ChannelStalled as exc:
            error = f"stalled: {exc}"
        except Exception as exc:  # network errors, protocol errors, our bugs: reconnect
            error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("%s channel %s dropped: %s", link.channel, link.name, error)
        since = st.connected_since if st.connected else None
        lasted = (utcnow() - since).total_seconds() if since is not None else 0.0
        await _session_ended(hub, st, started, error)
        failures = (
            0 if lasted >= float(link.option("stable_seconds", STABLE_SECONDS)) else failures + 1
        )
        await asyncio.sleep(backoff(link, failures))
        st.reconnects += 1
        for shop in link.shops:
            hub.metrics.channel_reconnects.labels(link.platform, shop.name).inc()


def backoff(link: Link, failures: int) -> float:
    """Exponential from `reconnect_seconds` (1 s) up to `reconnect_max_seconds` (60 s),
    each delay drawn from its upper half so many hubs do not reconnect in lockstep."""
    base = float(link.option("reconnect_seconds", 1.0))
    cap = float(link.option("reconnect_max_seconds", 60.0))
    ceiling = min(cap, base * (2 ** min(failures, 16)))
    return random.uniform(ceiling / 2, ceiling)


async def _session_ended(hub: Hub, st: LinkState, started: datetime, error: str | None) -> None:
    opened_at = st.connected_since if st.connected else None
    st.connected, st.last_error = False, error
    _set_connected(hub, st, False)
    link = st.link
    session = channels_sql.Session(
        link=link.name,
        platform=link.platform,
        channel=link.channel,
        url=link.url,
        shops=[s.name for s in link.shops],
        started_at=iso_utc(started),
        opened_at=_iso(opened_at),
        ended_at=iso_utc(utcnow()),
        messages=st.session_messages,
        error=error,
    )
    with contextlib.suppress(Exception):  # the log is evidence, never a reason to stop
        await asyncio.shield(hub.store.write(channels_sql.log_session, session))


async def receive(hub: Hub, st: LinkState, delivery: Delivery) -> Reply | None:
    """Record, verify, parse and commit one channel message; return the reply whose body
    is the frame to answer with. Returns only after the commit resolved."""
    t0 = time.perf_counter()
    link = st.link
    connector = connectors.get(link.platform)
    assert connector is not None
    shop = delivery.shop
    record = RequestRecord(
        received_at=iso_utc(delivery.received_at),
        method=METHOD,
        path=delivery.path,
        query="",
        headers=delivery.headers,
        body=delivery.raw,
        peer=delivery.peer,
        platform=link.platform,
        shop=shop.name if shop else None,
        channel=link.channel,
    )
    msg: Inbound | None = None
    if delivery.refusal is not None or shop is None:
        rejection, reply = delivery.refusal or (Rejection("unknown_shop"), Reply(404, b""))
        job = refused(record, rejection, reply)
    else:
        msg = Inbound(
            platform=link.platform,
            shop=shop,
            method=METHOD,
            path=delivery.path,
            tail="",
            query="",
            headers=dict(delivery.headers),
            body=delivery.raw,
            received_at=delivery.received_at,
        )
        job = judge(connector, msg, record)
    try:
        result = await hub.store.ingest(job)
        reply, outcome, reason = result.reply, result.outcome, result.reason
    except Exception:
        log.exception("store failed to record a %s message", link.channel)
        outcome, reason = "error", "store_unavailable"
        reply = failure(connector, msg, "store_unavailable", 503) if msg else job.reply
    _observe(hub, st, delivery, outcome, reason, time.perf_counter() - t0)
    return reply


def _observe(
    hub: Hub, st: LinkState, delivery: Delivery, outcome: str, reason: str | None, took: float
) -> None:
    st.session_messages += 1
    platform = st.link.platform
    name = delivery.shop.name if delivery.shop else "_unknown"
    m = hub.metrics
    m.requests.labels(platform, name, outcome, reason or "").inc()
    m.ack_seconds.labels(platform).observe(took)
    shop_state = st.shops.get(name)
    if shop_state is None:
        return
    shop_state.messages += 1
    shop_state.last_message_at = delivery.received_at
    m.channel_last_message.labels(platform, name).set(delivery.received_at.timestamp())
    if delivery.published_at is not None:
        lag = max(0.0, (delivery.received_at - delivery.published_at).total_seconds())
        shop_state.lag_seconds = lag
        m.channel_lag.labels(platform, name).set(lag)


def _set_connected(hub: Hub, st: LinkState, connected: bool) -> None:
    for shop in st.link.shops:
        hub.metrics.channel_connected.labels(st.link.platform, shop.name).set(int(connected))


def _iso(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment is not None else None


@requires("supervisor", "operator", "viewer")
async def channels_api(request: Request) -> Response:
    """GET /api/channels: each channel shop's state and its link's recent sessions."""
    hub: Hub = request.app.state.hub
    links = sorted({row["link"] for row in state(hub)})
    sessions = {
        link: await hub.store.read(channels_sql.recent_sessions, link, 10) for link in links
    }
    return JSONResponse({"shops": state(hub), "sessions": sessions})


routes = [Route("/api/channels", channels_api)]
