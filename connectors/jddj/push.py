"""JD Daojia (京东到家 / 秒送, opendj.jd.com) message push: verify, parse, ack, sign.

Rules (docs/connectors/jddj.md has each with its source):
- Daojia POSTs to `<merchant URL>/djsw/<message name>`; here that is
  `/webhooks/jddj/{shop}/djsw/{message}`;
- form parameters `token, app_key, sign, timestamp, format, v, jd_param_json` (business
  data as a JSON string); `timestamp` is `yyyy-MM-dd HH:mm:ss` Beijing time;
- sign = MD5(secret + name1value1name2value2... + secret) over every parameter but
  `sign`, names sorted, UPPER-case hex (the same scheme as the API calls);
- reply `{"code":"0","msg":...,"data":...}`; "-1" is a failure; "-10000" asks Daojia to
  push again (it re-pushes for up to 4 hours), so our own failures answer -10000.

Empty parameters: JD's Java SDK leaves them out of the signed string, PHP senders put
the bare name in; both are accepted because both need the secret.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl

from connectors import forensics
from connectors.base import Inbound, Outbound, Rejection, Reply, json_reply
from connectors.jddj import simulate as sim
from connectors.jddj.messages import MESSAGES
from connectors.jddj.signing import sign
from hub.model import Kind, OrderEvent, shanghai_to_utc, utcnow

if TYPE_CHECKING:
    from datetime import datetime

    from hub.settings import Shop

FORM = "application/x-www-form-urlencoded"

# worth a re-push: our own failures (any 5xx: store, bug, overload), and configuration
# mistakes someone can fix within Daojia's 4-hour retry window (the push is recorded
# either way)
RETRY_REASONS = frozenset({"bad_signature", "app_key_mismatch", "unknown_shop"})
RETRY_CODE = "-10000"
FAIL_CODE = "-1"


def form(body: bytes) -> dict[str, str]:
    """The form parameters; a repeated name or bytes that are not UTF-8 are malformed."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejection("malformed_body", f"form body is not UTF-8 form data: {exc}") from exc
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise Rejection("malformed_body", f"form parameter {name!r} is repeated")
        params[name] = value
    return params


class JddjPush:
    name: ClassVar[str] = "jddj"
    content_types: ClassVar[tuple[str, ...]] = (FORM,)

    def check_shop(self, shop: Shop) -> None:
        if not shop.app_key:
            raise ValueError("a jddj shop needs app_key (Daojia sends it as the app_key param)")

    def verify(self, msg: Inbound) -> None:
        params = form(msg.body)
        offered = params.get("sign", "")
        app_key = params.get("app_key", "")
        if not offered or not app_key:
            missing = [n for n, v in (("app_key", app_key), ("sign", offered)) if not v]
            detail = "missing parameter " + ", ".join(missing)
            raise Rejection("missing_signature", detail, status=401)
        shop = msg.shop
        if app_key != shop.app_key:
            raise Rejection(
                "app_key_mismatch",
                f"app_key {app_key!r} is not this shop's app key",
                status=401,
                forensics=forensics.peer_app_key(
                    offered,
                    app_key,
                    msg.peers,
                    lambda _peer, secret: sign(params, secret),
                    field="app_key",
                    signature="sign",
                ),
            )
        for secret in shop.all_secrets():
            for keep_empty in (False, True):
                if forensics.same(sign(params, secret, keep_empty=keep_empty), offered):
                    return
        raise Rejection(
            "bad_signature",
            "sign does not match MD5(secret + sorted name+value + secret), upper-case hex",
            status=401,
            forensics=forensics.explain(
                offered,
                shop,
                msg.peers,
                lambda _shop, secret: sign(params, secret),
                sim.variant_signers(params),
            ),
        )

    def parse(self, msg: Inbound) -> list[OrderEvent]:
        message = _message_name(msg.tail)
        params = form(msg.body)
        raw = params.get("jd_param_json")
        if raw is None:
            if "encrypt_jd_param_json" in params:
                raise Rejection(
                    "encrypted_param_unsupported",
                    "encrypt_jd_param_json is not supported yet; turn encryption off for "
                    "this app or replay the recording once it is",
                    status=422,
                )
            raise Rejection("malformed_body", "missing form parameter jd_param_json")
        try:
            data = json.loads(raw, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise Rejection("malformed_body", f"jd_param_json: invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise Rejection("malformed_body", "jd_param_json is not a JSON object")
        order_id = _id(data.get("orderId")) or _id(data.get("billId"))
        if not order_id:
            raise Rejection("malformed_body", "jd_param_json has no billId (or orderId)")
        kind = MESSAGES.get(message, Kind.OTHER)
        occurred = _beijing(data.get("timestamp"), "jd_param_json.timestamp")
        dedupe = ""  # the content key: a re-push carries the same jd_param_json timestamp
        if occurred is None:
            # without the change's own time, the form timestamp may be re-stamped on each
            # re-push: recognise re-pushes by the message itself
            occurred = _beijing(params.get("timestamp"), "timestamp") or msg.received_at
            digest = hashlib.sha256(f"{msg.shop.name}\x1f{message}\x1f{raw}".encode())
            dedupe = f"h:{self.name}:{digest.hexdigest()}"
        return [
            OrderEvent(
                platform=self.name,
                shop=msg.shop.name,
                kind=kind,
                order_id=order_id,
                occurred_at=occurred,
                platform_type=message,
                payload={"message": message, "jd_param_json": data},
                dedupe_key=dedupe,
            )
        ]

    def ack(self, msg: Inbound) -> Reply:
        return json_reply(200, {"code": "0", "msg": "success", "data": ""})

    def reject(self, msg: Inbound | None, rejection: Rejection) -> Reply:
        retry = rejection.status >= 500 or rejection.reason in RETRY_REASONS
        code = RETRY_CODE if retry else FAIL_CODE
        text = f"{rejection.reason}: {rejection.detail}" if rejection.detail else rejection.reason
        return json_reply(rejection.status, {"code": code, "msg": text, "data": ""})

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
        return sim.push(shop, kind, order_id, occurred_at=occurred_at)

    def resign(self, shop: Shop, outbound: Outbound) -> Outbound:
        """The same push signed with shop.secret and a fresh `timestamp` (Beijing time):
        Daojia signs every form parameter, the timestamp included. `sign`, `timestamp` and
        `app_key` (when the shop's is another app's) are replaced in place; every other
        byte of the body, `jd_param_json` and its own timestamp included, stays as
        recorded. A body that is not form data carries no parameters to sign: it is sent
        as recorded, and refused as malformed as it was the first time."""
        try:
            params = form(outbound.body)
        except Rejection:
            return outbound
        fresh = {"app_key": shop.app_key} if shop.app_key else {}
        if "timestamp" in params:
            fresh["timestamp"] = sim.beijing(utcnow())
        fresh["sign"] = sign({**params, **fresh}, shop.secret)
        return Outbound(outbound.headers, sim.replace_params(outbound.body, fresh), outbound.tail)

    def variants(self, shop: Shop, outbound: Outbound) -> dict[str, Outbound]:
        params = form(outbound.body)
        out = {}
        for variant in sim.variant_signers(params):
            signature = variant.sign(shop, shop.secret)
            if signature is not None:
                body = sim.encode({**params, "sign": signature})
                out[variant.label] = Outbound(outbound.headers, body, outbound.tail)
        return out


def _message_name(tail: str) -> str:
    parts = [p for p in tail.split("/") if p]
    if len(parts) != 2 or parts[0] != "djsw" or not parts[1]:
        raise Rejection(
            "unknown_message",
            f"path tail {tail or '(none)'!r}: Daojia pushes to .../djsw/<message name>",
            status=404,
        )
    return parts[1][:64]


def _id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    return str(value).strip()


def _beijing(value: Any, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise Rejection("malformed_body", f"{where} must be 'yyyy-MM-dd HH:mm:ss'")
    try:
        return shanghai_to_utc(value)
    except ValueError as exc:
        raise Rejection("malformed_body", f"{where}: {exc}") from exc


connector = JddjPush()
