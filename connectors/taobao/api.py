"""Taobao TOP API client: signing, errors, ship, incremental order query.

Rules and sources: docs/connectors/api-clients.md (Taobao). In short:
- POST `{base}/router/rest`; system params in the query, business params in a
  form body; both signed [TOP Java SDK DefaultTaobaoClient];
- sign = hex-upper of MD5(secret + k1v1k2v2... + secret) (`md5`), HMAC-MD5 (`hmac`)
  or HMAC-SHA256 (`hmac-sha256`) keyed with the secret, over every non-empty param
  but `sign`, keys in ordinal order [TaobaoUtils.signTopRequest; doc 101617];
- `timestamp` is `yyyy-MM-dd HH:mm:ss` in GMT+8 [doc 101617; StringUtils.formatDateTime];
- errors: `{"error_response": {code, msg, sub_code, sub_msg}}`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx

from connectors.apiclient import (
    BaseClient,
    Milestone,
    Page,
    beijing,
    carrier_code,
    milestone_events,
    param_text,
    ship_result,
    to_utc,
    windows,
)
from connectors.base import (
    ApiError,
    AuthExpired,
    InvalidParameter,
    PlatformBusy,
    RateLimited,
    SendResult,
)
from hub.model import Kind, OrderEvent, to_decimal

SIGN_METHODS = ("md5", "hmac", "hmac-sha256")

# TOP error table (third-party copies; docs/connectors/api-clients.md): 7 App Call
# Limited, 10 Service Currently Unavailable, 26/27 missing/invalid session, 53
# insufficient security level is not auth.
RATE_CODES = {"7"}
BUSY_CODES = {"10"}
AUTH_CODES = {"26", "27"}
BAN_SECONDS = re.compile(r"ban will last for (\d+) more seconds", re.I)


def sign(params: Mapping[str, Any], secret: str, method: str = "md5", body: str = "") -> str:
    """TOP request signature over params (and a raw body text, for body-signed APIs)."""
    pairs = sorted(
        (k, str(v)) for k, v in params.items() if k != "sign" and k and v not in ("", None)
    )
    text = "".join(k + v for k, v in pairs) + body
    key = secret.encode()
    if method == "md5":
        digest = hashlib.md5(key + text.encode() + key).hexdigest()
    elif method == "hmac":
        digest = hmac.new(key, text.encode(), hashlib.md5).hexdigest()
    elif method == "hmac-sha256":
        digest = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    else:
        raise ValueError(f"TOP sign_method must be one of {SIGN_METHODS}, not {method!r}")
    return digest.upper()


# trade status -> the milestones it proves (times from the trade's own fields)
PAID_STATES = {
    "WAIT_SELLER_SEND_GOODS",
    "SELLER_CONSIGNED_PART",
    "WAIT_BUYER_CONFIRM_GOODS",
    "TRADE_BUYER_SIGNED",
    "TRADE_FINISHED",
    "TRADE_CLOSED",
}
SHIPPED_STATES = {"WAIT_BUYER_CONFIRM_GOODS", "TRADE_BUYER_SIGNED", "TRADE_FINISHED"}
FIELDS = "tid,status,type,created,pay_time,consign_time,end_time,modified,payment"
INCREMENT = "taobao.trades.sold.increment.get"


class Client(BaseClient):
    platform: ClassVar[str] = "taobao"
    default_base: ClassVar[str] = "https://gw.api.taobao.com"
    path: ClassVar[str] = "/router/rest"
    # "一次请求只能查询时间跨度为一天的增量交易记录" [taobao.trades.sold.increment.get doc]
    max_window: ClassVar[timedelta] = timedelta(days=1)
    page_size: ClassVar[int] = 100
    sign_methods: ClassVar[tuple[str, ...]] = ("hmac-sha256", "md5", "hmac")
    token_options: ClassVar[tuple[str, ...]] = ("session", "access_token")
    # "搜索当前会话用户作为卖家已卖出的增量交易数据": the seller is the session's user
    # [TOP API doc, apiId=128]. No source read says it for the ship call, which is left
    # to the gateway (26 Missing Session is AuthExpired, per a third-party table).
    token_methods: ClassVar[frozenset[str]] = frozenset({INCREMENT})

    def build_request(self, method: str, params: dict[str, Any]) -> httpx.Request:
        system = {
            "method": method,
            "app_key": self.shop.app_key,
            "session": self.token(),
            "timestamp": beijing(self.clock()),
            "format": "json",
            "v": "2.0",
            "sign_method": self.sign_method,
            "partner_id": self.shop.options.get("partner_id"),
        }
        system = {k: v for k, v in system.items() if v not in (None, "")}
        business = {k: param_text(v) for k, v in params.items()}
        system["sign"] = sign({**system, **business}, self.shop.secret, self.sign_method)
        return httpx.Request(
            "POST",
            self.base + self.path,
            params=system,
            data=business,
            headers={"content-type": "application/x-www-form-urlencoded;charset=UTF-8"},
        )

    def read_error(self, method: str, status: int, body: Any) -> ApiError | None:
        err = body.get("error_response") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            return None
        code = str(err.get("code", ""))
        sub_code = str(err.get("sub_code") or "")
        message = " / ".join(str(x) for x in (err.get("msg"), err.get("sub_msg")) if x)
        label = f"{code}:{sub_code}" if sub_code else code
        if code in RATE_CODES or "limited" in sub_code.lower():
            ban = BAN_SECONDS.search(message)
            return RateLimited(
                label, message, raw=body, retry_after=float(ban.group(1)) if ban else None
            )
        if code in AUTH_CODES:
            return AuthExpired(label, message, raw=body)
        # the SDK's own retry rule: isp.* sub codes are platform-side [AutoRetryFeature]
        if code in BUSY_CODES or sub_code.startswith("isp."):
            return PlatformBusy(label, message, raw=body)
        return InvalidParameter(label, message, raw=body)

    async def ship(self, order_id: str, carrier: str, tracking_no: str) -> SendResult:
        answer = await self.call(
            "taobao.logistics.offline.send",
            {
                "tid": order_id,
                "out_sid": tracking_no,
                "company_code": carrier_code(self.shop.options, carrier),
            },
            read=False,
        )
        shipping = (answer.body.get("logistics_offline_send_response") or {}).get("shipping") or {}
        return ship_result(answer, shipping.get("is_success"))

    async def changed_pages(self, start: datetime, end: datetime) -> AsyncIterator[Page]:
        # results are sorted by modified time, newest first; paging from the last page
        # back avoids missing trades that change while we page [API doc text]
        for lo, hi in windows(start, end, self.max_window):
            params = {
                "fields": FIELDS,
                "start_modified": beijing(lo),
                "end_modified": beijing(hi),
                "page_size": self.page_size,
            }
            async for page in self.walk(
                INCREMENT,
                params,
                (lo, hi),
                rows=lambda body: (_result(body).get("trades") or {}).get("trade"),
                total=lambda body: _result(body).get("total_results"),
                page_key="page_no",
                backwards=True,
            ):
                yield page

    def events(self, trade: dict[str, Any]) -> list[OrderEvent]:
        status = str(trade.get("status", ""))
        milestones = [Milestone(Kind.CREATED, to_utc(trade.get("created")), status)]
        if status in PAID_STATES:
            milestones.append(Milestone(Kind.PAID, to_utc(trade.get("pay_time")), status))
        if status in SHIPPED_STATES:
            milestones.append(Milestone(Kind.SHIPPED, to_utc(trade.get("consign_time")), status))
        closed_at = to_utc(trade.get("end_time") or trade.get("modified"))
        if status == "TRADE_CLOSED":  # closed after payment: refunded
            milestones.append(Milestone(Kind.REFUNDED, closed_at, status))
        elif status == "TRADE_CLOSED_BY_TAOBAO":  # closed before payment
            milestones.append(Milestone(Kind.CANCELLED, closed_at, status))
        return milestone_events(
            self, trade["tid"], milestones, amount=to_decimal(trade.get("payment")), payload=trade
        )


def _result(body: Any) -> dict[str, Any]:
    found = body.get("trades_sold_increment_get_response") if isinstance(body, dict) else None
    return found if isinstance(found, dict) else {}
