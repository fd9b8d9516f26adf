"""Douyin Shop (抖店) message push: verify, parse, ack, sign.

Rules (docs/connectors/douyin.md has each with its source):
- POST of a JSON ARRAY of records `{"tag", "msg_id", "data"}` with `data` a JSON string
  (official Java SDK `DoudianOpMsgRequest`); senders modelled on SKIT use `msgId`, a
  numeric tag and an object `data`, so all of those are accepted;
- headers `app-id` (the app key) and `event-sign` = md5(app_key + raw body + app_secret),
  lower-case hex, over the bytes exactly as received (Java `checkSign`, zsmhub
  `VerifySign`, SKIT `VerifyEventSignature`);
- the tag "0" verification message is acked with success and recorded, no event;
- ack `{"code":0,"msg":"success"}` (Java `DoudianOpMsgResponse.wrapSuccess`); errors
  `{"code":<non-zero>,"msg":...}` (Java `wrapError`, zsmhub `FailResponse`).

Ids such as `p_id` are 19-digit integers past 2^53: JSON is parsed with Python ints (exact)
and Decimals for any fraction, never floats.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from connectors import forensics
from connectors.base import Inbound, Outbound, Rejection, Reply, json_reply
from connectors.douyin import simulate as sim
from connectors.douyin.signing import event_sign
from connectors.douyin.tags import FALLBACK_TIME_FIELDS, TAGS, VERIFY_TAG
from hub.model import Kind, OrderEvent, fen_to_yuan, from_unix, message_key, parse_iso

if TYPE_CHECKING:
    from datetime import datetime

    from hub.settings import Shop

APP_HEADER = "app-id"
SIGN_HEADER = "event-sign"


def sign_headers(shop: Shop, body: bytes) -> dict[str, str]:
    """Headers Douyin puts on a push of `body` to this shop (simulator, replay)."""
    app_key = shop.app_key or ""
    return {
        APP_HEADER: app_key,
        SIGN_HEADER: event_sign(app_key, shop.secret, body),
        "content-type": "application/json",
    }


class DouyinPush:
    name: ClassVar[str] = "douyin"
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)

    def check_shop(self, shop: Shop) -> None:
        if not shop.app_key:
            raise ValueError("a douyin shop needs app_key (the app's key; sent as app-id)")
        shop_id = shop.options.get("shop_id")
        if shop_id is not None and (isinstance(shop_id, bool) or not str(shop_id).isdigit()):
            raise ValueError("options.shop_id must be the Douyin shop id (digits)")

    # --- verify -----------------------------------------------------------------------

    def verify(self, msg: Inbound) -> None:
        app_id = msg.header(APP_HEADER)
        offered = msg.header(SIGN_HEADER)
        if not app_id or not offered:
            missing = [h for h, v in ((APP_HEADER, app_id), (SIGN_HEADER, offered)) if not v]
            raise Rejection("missing_signature", "missing header " + ", ".join(missing), status=401)
        shop = msg.shop
        if app_id != shop.app_key:
            raise Rejection(
                "app_key_mismatch",
                f"app-id {app_id!r} is not this shop's app key",
                status=401,
                forensics=forensics.peer_app_key(
                    offered,
                    app_id,
                    msg.peers,
                    lambda peer, secret: event_sign(app_id, secret, msg.body),
                    field="app-id",
                    signature="event-sign",
                ),
            )
        for secret in shop.all_secrets():
            if forensics.same(event_sign(app_id, secret, msg.body), offered):
                return
        raise Rejection(
            "bad_signature",
            "event-sign does not match md5(app_key + body + app_secret)",
            status=401,
            forensics=forensics.explain(
                offered, shop, msg.peers, _correct(app_id, msg.body), sim.variant_signers(msg.body)
            ),
        )

    # --- parse ------------------------------------------------------------------------

    def parse(self, msg: Inbound) -> list[OrderEvent]:
        body = _load(msg.body, "body")
        records = body if isinstance(body, list) else [body]
        events: list[OrderEvent] = []
        for index, record in enumerate(records):
            event = self._record(msg, record, index)
            if event is not None:
                events.append(event)
        return events

    def _record(self, msg: Inbound, record: Any, index: int) -> OrderEvent | None:
        where = f"record {index}"
        if not isinstance(record, dict):
            raise Rejection("malformed_body", f"{where} is not a JSON object")
        tag = _text(record.get("tag"), f"{where}.tag")
        if not tag:
            raise Rejection("malformed_body", f"{where} has no tag")
        if tag == VERIFY_TAG:
            return None
        msg_id = _text(record.get("msg_id", record.get("msgId")), f"{where}.msg_id") or None
        raw_data = record.get("data")
        data = _load(raw_data.encode(), f"{where}.data") if isinstance(raw_data, str) else raw_data
        if not isinstance(data, dict):
            raise Rejection("malformed_body", f"{where}.data is not a JSON object")
        known = TAGS.get(tag)
        kind = known.kind if known else Kind.OTHER
        order_id = _text(data.get("p_id"), f"{where}.data.p_id")
        if not order_id:
            if kind is not Kind.OTHER:
                raise Rejection("malformed_body", f"{where}: tag {tag} without data.p_id")
            # a non-order message (product, shop...): keep it findable by its own id
            order_id = _first_id(data) or msg_id or f"tag{tag}"
        occurred = _occurred(data, known.time_field if known else None, where)
        amount = None
        if known and known.amount_field and data.get(known.amount_field) not in (None, ""):
            try:
                amount = fen_to_yuan(data[known.amount_field])
            except ValueError as exc:
                raise Rejection("malformed_body", f"{where}.data: {exc}") from exc
        dedupe = ""  # the content key: a reconciled copy of the same change dedupes
        if occurred is None:
            # no time of the change: only the message id can recognise a redelivery
            occurred = msg.received_at
            if msg_id:
                dedupe = message_key(self.name, _owner(msg, data.get("shop_id")), msg_id)
        shop = _owner(msg, data.get("shop_id"))
        return OrderEvent(
            platform=self.name,
            shop=shop,
            kind=kind,
            order_id=order_id,
            occurred_at=occurred,
            platform_type=tag,
            message_id=msg_id,
            amount=amount,
            currency="CNY" if amount is not None else None,
            payload={"tag": tag, "msg_id": msg_id, "data": data},
            dedupe_key=dedupe,
        )

    # --- replies ----------------------------------------------------------------------

    def ack(self, msg: Inbound) -> Reply:
        return json_reply(200, {"code": 0, "msg": "success"})

    def reject(self, msg: Inbound | None, rejection: Rejection) -> Reply:
        text = f"{rejection.reason}: {rejection.detail}" if rejection.detail else rejection.reason
        return json_reply(rejection.status, {"code": 1, "msg": text})

    # --- sandbox ----------------------------------------------------------------------

    def simulate(
        self,
        shop: Shop,
        kind: Kind,
        order_id: str,
        *,
        amount: Decimal | None = None,
        occurred_at: datetime | None = None,
        message_id: str | None = None,
    ) -> Outbound:
        body = sim.push_body(
            kind, order_id, amount=amount, occurred_at=occurred_at, message_id=message_id
        )
        return Outbound(headers=sign_headers(shop, body), body=body)

    def resign(self, shop: Shop, outbound: Outbound) -> Outbound:
        """The same push signed with shop.secret: only `event-sign` (and `app-id`, when the
        shop's app key is another app's) change. Douyin's signature covers no time (md5 of
        app key + body + secret), so there is no timestamp to refresh and the body, even
        its own times, stays byte for byte as recorded."""
        app_key = shop.app_key or _header(outbound.headers, APP_HEADER)
        signed = {APP_HEADER: app_key, SIGN_HEADER: event_sign(app_key, shop.secret, outbound.body)}
        return Outbound(_with_headers(outbound.headers, signed), outbound.body, outbound.tail)

    def variants(self, shop: Shop, outbound: Outbound) -> dict[str, Outbound]:
        out = {}
        for variant in sim.variant_signers(outbound.body):
            signature = variant.sign(shop, shop.secret)
            if signature is not None:
                headers = {**outbound.headers, SIGN_HEADER: signature}
                out[variant.label] = Outbound(headers=headers, body=outbound.body)
        return out


def _header(headers: dict[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name), "")


def _with_headers(headers: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    """`headers` with `values` (lower-case names) put in place of the recorded ones, in
    the recorded order; a name the recording lacks is added at the end."""
    out = {k: values.get(k.lower(), v) for k, v in headers.items()}
    present = {k.lower() for k in headers}
    out.update({k: v for k, v in values.items() if k not in present})
    return out


def _owner(msg: Inbound, shop_id: Any) -> str:
    """The configured shop a record belongs to. A tool-type app serves many shops through
    ONE push URL; a shop with `options.shop_id` set claims its own records when they
    arrive at another shop of the same app."""
    if shop_id is None or str(msg.shop.options.get("shop_id")) == str(shop_id):
        return msg.shop.name
    for peer in msg.peers:
        if peer.app_key == msg.shop.app_key and str(peer.options.get("shop_id")) == str(shop_id):
            return peer.name
    return msg.shop.name


def _correct(app_id: str, body: bytes) -> forensics.Signer:
    # the app-id the sender claimed, with another shop's secret: a secret copied from
    # the wrong (test/production) app
    return lambda shop, secret: event_sign(app_id, secret, body)


def _load(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejection("malformed_body", f"{where}: invalid JSON: {exc}") from exc


def _text(value: Any, where: str) -> str:
    """An id or tag sent as a string or an integer, as exact text ('' when absent)."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Rejection("malformed_body", f"{where} must be a string or an integer")
    return str(value).strip()


def _first_id(data: dict[str, Any]) -> str:
    for key in ("order_id", "s_id", "aftersale_id", "product_id", "shop_id"):
        value = data.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return ""


def _occurred(data: dict[str, Any], field: str | None, where: str) -> datetime | None:
    for name in (field, *FALLBACK_TIME_FIELDS):
        if name is None or data.get(name) in (None, "", 0):
            continue
        value = data[name]
        try:
            if isinstance(value, int) and not isinstance(value, bool):
                return from_unix(value)
            if isinstance(value, str):
                return from_unix(value) if value.isdigit() else parse_iso(value)
        except (ValueError, OverflowError, OSError) as exc:
            raise Rejection("malformed_body", f"{where}.data.{name}: {exc}") from exc
        raise Rejection("malformed_body", f"{where}.data.{name} is not a time")
    return None


connector = DouyinPush()
