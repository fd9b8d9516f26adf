"""JD JOS (routerjson) API client: signing, errors, ship, order search by modified time.

Rules and sources: docs/connectors/jd.md. In short:
- POST `{base}/routerjson`, system params (and `sign`) in the query, business params
  as ONE JSON text `360buy_param_json` in the form body [JD Java SDK DefaultJdClient];
- sign = hex-upper of MD5(secret + k1v1... + secret) over `360buy_param_json` and the
  system params in ordinal key order, empty ones skipped; `hmacmd5` / `hmacsha256`
  are HMAC keyed with the secret, no wrapping [newer Java SDK *SignImpl];
- `360buy_param_json` keys in alphabetical order [help.jd.com 开发规范];
- `timestamp` `yyyy-MM-dd HH:mm:ss`, Beijing time [help.jd.com 开发规范].
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
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

SIGN_METHODS = ("md5", "hmacmd5", "hmacsha256")
SEARCH = "jingdong.pop.order.search"
SHIP = "jingdong.pop.order.shipment"
ALL_STATES = (
    "WAIT_SELLER_STOCK_OUT,WAIT_GOODS_RECEIVE_CONFIRM,WAIT_SELLER_DELIVERY,PAUSE,"
    "FINISHED_L,TRADE_CANCELED,LOCKED,POP_ORDER_PAUSE"
)
FIELDS = (
    "orderId,orderState,orderStartTime,paymentConfirmTime,modified,orderTotalPrice,orderPayment"
)
PAID_STATES = {
    "WAIT_SELLER_STOCK_OUT",
    "WAIT_SELLER_DELIVERY",
    "WAIT_GOODS_RECEIVE_CONFIRM",
    "FINISHED_L",
}

# Gateway codes from a third-party copy of JD's table (UNCONFIRMED; see docs/connectors/
# jd.md): 2 = call limit. No source read names the expired-token code: it falls to
# InvalidParameter (no retry either way); `options.auth_codes` adds codes per shop.
RATE_CODES = {"2"}


def param_json(params: Mapping[str, Any]) -> str:
    """`360buy_param_json`: compact JSON, keys sorted, UTF-8 text (the sign covers it)."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sign(params: Mapping[str, Any], secret: str, method: str = "md5") -> str:
    pairs = sorted(
        (k, str(v)) for k, v in params.items() if k != "sign" and k and v not in ("", None)
    )
    text = "".join(k + v for k, v in pairs).encode()
    key = secret.encode()
    name = method.lower()
    if name == "md5":
        return hashlib.md5(key + text + key).hexdigest().upper()
    if name == "hmacmd5":
        return hmac.new(key, text, hashlib.md5).hexdigest().upper()
    if name == "hmacsha256":
        return hmac.new(key, text, hashlib.sha256).hexdigest().upper()
    raise ValueError(f"JD sign_method must be one of {SIGN_METHODS}, not {method!r}")


class Client(BaseClient):
    platform: ClassVar[str] = "jd"
    default_base: ClassVar[str] = "https://api.jd.com"
    path: ClassVar[str] = "/routerjson"
    # the doc allows up to a month but asks to scroll short windows instead of deep
    # paging; a window whose result exceeds `max_pages` pages is split in half
    max_window: ClassVar[timedelta] = timedelta(minutes=30)
    page_size: ClassVar[int] = 100
    sign_methods: ClassVar[tuple[str, ...]] = ("md5", "hmacmd5", "hmacsha256")
    max_pages: ClassVar[int] = 10
    page_as_text: ClassVar[bool] = True  # `page`, `page_size` are String in the API doc

    def build_request(self, method: str, params: dict[str, Any]) -> httpx.Request:
        system = {
            "method": method,
            "app_key": self.shop.app_key,
            "access_token": self.token(),
            "timestamp": beijing(self.clock()),
            "v": "2.0",
            # md5 is the default and is then not sent, as the published example shows
            "sign_method": None if self.sign_method == "md5" else self.sign_method,
        }
        system = {k: v for k, v in system.items() if v not in (None, "")}
        body = {"360buy_param_json": param_json(params)}
        system["sign"] = sign({**system, **body}, self.shop.secret, self.sign_method)
        return httpx.Request(
            "POST",
            self.base + self.path,
            params=system,
            data=body,
            headers={"content-type": "application/x-www-form-urlencoded;charset=UTF-8"},
        )

    def read_error(self, method: str, status: int, body: Any) -> ApiError | None:
        if not isinstance(body, dict):
            return InvalidParameter("bad_answer", "answer is not a JSON object", raw=body)
        err = body.get("error_response")
        if isinstance(err, dict):
            code = str(err.get("code", ""))
            message = str(err.get("zh_desc") or err.get("en_desc") or "")
            if code in RATE_CODES:
                return RateLimited(code, message, raw=body)
            if code in {str(c) for c in self.shop.options.get("auth_codes", ())}:
                return AuthExpired(code, message, raw=body)
            if status >= 500:
                return PlatformBusy(code, message, raw=body)
            return InvalidParameter(code, message, raw=body)
        # business results carry their own verdict next to the data
        root = _root(body)
        result = root.get("searchorderinfo_result") or root.get("result") or {}
        api_result = result.get("apiResult") if isinstance(result, dict) else None
        if isinstance(api_result, dict) and api_result.get("success") is False:
            code = str(api_result.get("englishErrCode") or api_result.get("code") or "failed")
            message = str(api_result.get("chineseErrCode") or "")
            return InvalidParameter(code, message, raw=body)
        return None

    async def ship(self, order_id: str, carrier: str, tracking_no: str) -> SendResult:
        params: dict[str, Any] = {
            "orderId": int(order_id) if order_id.isdigit() else order_id,
            "logiCoprId": carrier_code(self.shop.options, carrier),
            "logiNo": tracking_no,
        }
        answer = await self.call(SHIP, params, read=False)
        return ship_result(answer)

    async def changed_pages(self, start: datetime, end: datetime) -> AsyncIterator[Page]:
        pending = list(windows(start, end, self.max_window))
        while pending:
            lo, hi = pending.pop(0)
            params = {
                "start_date": beijing(lo),
                "end_date": beijing(hi),
                "order_state": ALL_STATES,
                "optional_fields": FIELDS,
                "dateType": 0,  # by modified time (status and waybill changes)
                "sortType": 0,
                "page_size": str(self.page_size),
            }
            first = await self.call(SEARCH, {**params, "page": "1"}, read=True)
            total = int(_search(first.body).get("orderTotal") or 0)
            pages = max(1, math.ceil(total / self.page_size))
            if pages > self.max_pages and hi - lo > timedelta(minutes=1):
                middle = lo + (hi - lo) / 2
                pending[:0] = [(lo, middle), (middle, hi)]
                continue
            async for page in self.walk(
                SEARCH,
                params,
                (lo, hi),
                rows=lambda body: _search(body).get("orderInfoList"),
                total=lambda body: _search(body).get("orderTotal"),
                first=first,
            ):
                yield page

    def events(self, order: dict[str, Any]) -> list[OrderEvent]:
        state = str(order.get("orderState", ""))
        modified = to_utc(order.get("modified"))
        milestones = [Milestone(Kind.CREATED, to_utc(order.get("orderStartTime")), state)]
        if state in PAID_STATES:
            milestones.append(Milestone(Kind.PAID, to_utc(order.get("paymentConfirmTime")), state))
        if state == "WAIT_GOODS_RECEIVE_CONFIRM":
            # JOS gives no ship time in the list; the change to this state is `modified`
            milestones.append(Milestone(Kind.SHIPPED, modified, state))
        elif state == "TRADE_CANCELED":
            milestones.append(Milestone(Kind.CANCELLED, modified, state))
        amount = to_decimal(order.get("orderPayment") or order.get("orderTotalPrice"))
        return milestone_events(self, order["orderId"], milestones, amount=amount, payload=order)


def _root(body: dict[str, Any]) -> dict[str, Any]:
    # the Java SDK reads the value of the single root key (`..._responce`, JD's spelling)
    for value in body.values():
        if isinstance(value, dict):
            return value
    return {}


def _search(body: Any) -> dict[str, Any]:
    result = _root(body).get("searchorderinfo_result") if isinstance(body, dict) else None
    return result if isinstance(result, dict) else {}
