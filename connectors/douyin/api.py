"""Douyin Shop (抖店) open API client: signing, errors, ship, orders by update time.

Rules and sources: docs/connectors/api-clients.md (Douyin). In short:
- POST `{base}/{method with . -> /}`; `app_key, method, timestamp, v=2, sign,
  sign_method, access_token` in the query; the body is `param_json` itself [Go SDK];
- `param_json`: compact, keys sorted at every depth, UTF-8 raw (no `\\uXXXX`), with
  Go's fixed escape of U+2028/U+2029 [Go SDK utils.Marshal];
- sign pattern `secret + "app_key"+k + "method"+m + "param_json"+p + "timestamp"+t +
  "v"+"2" + secret`; `hmac-sha256` = HMAC-SHA256 keyed with the secret, `md5` =
  MD5 of the pattern; lower-case hex [Go SDK sign_util; Java SignUtil];
- `timestamp` Unix seconds [Go SDK]; success `code` 10000.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx

from connectors.apiclient import (
    BaseClient,
    Milestone,
    Page,
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
from hub.model import Kind, OrderEvent, fen_to_yuan

SIGN_METHODS = ("hmac-sha256", "md5")
SUCCESS = 10000
# 平台基础错误码汇总 (third-party copies; docs): 20000 service unavailable, 50001 platform
# processing failed, 90000 other -> busy; 60000 traffic limited; 30001 authorisation
# invalid; 40003 with sub_code isv.access-token-expired -> expired token.
BUSY_CODES = {20000, 50001, 90000}
RATE_CODES = {60000}
AUTH_CODES = {30001}
AUTH_SUB_CODES = ("isv.access-token-expired", "isv.access-token-no-existed")

PAID_STATUSES = {105, 2, 101, 3, 5}
SHIPPED_STATUSES = {3, 5}


def param_json(params: Mapping[str, Any]) -> str:
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Go's encoder escapes these two even with HTML escaping off; the sign covers them
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def sign(
    app_key: str, secret: str, method: str, param: str, timestamp: str, sign_method: str
) -> str:
    pattern = (
        f"{secret}app_key{app_key}method{method}param_json{param}timestamp{timestamp}v2{secret}"
    )
    if sign_method == "hmac-sha256":
        return hmac.new(secret.encode(), pattern.encode(), hashlib.sha256).hexdigest()
    if sign_method == "md5":
        return hashlib.md5(pattern.encode()).hexdigest()
    raise ValueError(f"Douyin sign_method must be one of {SIGN_METHODS}, not {sign_method!r}")


class Client(BaseClient):
    platform: ClassVar[str] = "douyin"
    default_base: ClassVar[str] = "https://openapi-fxg.jinritemai.com"
    # no window limit found in a source for order.searchList; short windows keep pages few
    max_window: ClassVar[timedelta] = timedelta(minutes=30)
    page_size: ClassVar[int] = 100
    sign_methods: ClassVar[tuple[str, ...]] = (
        "hmac-sha256",
        "md5",
    )  # "单页大小，限制100以内" [Go SDK request comment]

    def build_request(self, method: str, params: dict[str, Any]) -> httpx.Request:
        body = param_json(params)
        timestamp = str(int(self.clock().timestamp()))
        query = {
            "app_key": self.shop.app_key,
            "method": method,
            "timestamp": timestamp,
            "v": "2",
            "sign_method": self.sign_method,
            "access_token": self.token(),
        }
        query = {k: v for k, v in query.items() if v not in (None, "")}
        query["sign"] = sign(
            str(self.shop.app_key), self.shop.secret, method, body, timestamp, self.sign_method
        )
        return httpx.Request(
            "POST",
            f"{self.base}/{method.replace('.', '/')}",
            params=query,
            content=body.encode(),
            headers={"content-type": "application/json;charset=UTF-8", "from": "sdk"},
        )

    def read_error(self, method: str, status: int, body: Any) -> ApiError | None:
        if not isinstance(body, dict):
            return InvalidParameter("bad_answer", "answer is not a JSON object", raw=body)
        code = body.get("code")
        if code == SUCCESS or (code is None and body.get("err_no") == 0):
            return None
        sub_code = str(body.get("sub_code") or "")
        label = f"{code}:{sub_code}" if sub_code else str(code)
        message = " / ".join(str(x) for x in (body.get("msg"), body.get("sub_msg")) if x)
        if code in RATE_CODES:
            return RateLimited(label, message, raw=body)
        if code in AUTH_CODES or sub_code.startswith(AUTH_SUB_CODES):
            return AuthExpired(label, message, raw=body)
        if code in BUSY_CODES or sub_code.startswith("isp."):
            return PlatformBusy(label, message, raw=body)
        return InvalidParameter(label, message, raw=body)

    async def ship(self, order_id: str, carrier: str, tracking_no: str) -> SendResult:
        params = {
            "order_id": order_id,
            "company_code": carrier_code(self.shop.options, carrier),
            "logistics_code": tracking_no,
        }
        return ship_result(await self.call("order.logisticsAdd", params, read=False))

    async def changed_pages(self, start: datetime, end: datetime) -> AsyncIterator[Page]:
        for lo, hi in windows(start, end, self.max_window):
            params = {
                "update_time_start": int(lo.timestamp()),
                "update_time_end": int(hi.timestamp()),
                "order_by": "update_time",
                "order_asc": True,
                "size": self.page_size,
            }
            async for page in self.walk(
                "order.searchList",
                params,
                (lo, hi),
                rows=lambda body: (body.get("data") or {}).get("shop_order_list"),
                total=lambda body: (body.get("data") or {}).get("total"),
                first_page=0,  # pages start at 0 [Go SDK request comment]
            ):
                yield page

    def events(self, order: dict[str, Any]) -> list[OrderEvent]:
        status = order.get("order_status")
        label = str(status)
        milestones = [Milestone(Kind.CREATED, to_utc(order.get("create_time"), unix=True), label)]
        if status in PAID_STATUSES:
            milestones.append(Milestone(Kind.PAID, to_utc(order.get("pay_time"), unix=True), label))
        if status in SHIPPED_STATUSES:
            milestones.append(
                Milestone(Kind.SHIPPED, to_utc(order.get("ship_time"), unix=True), label)
            )
        if status == 4:
            milestones.append(
                Milestone(Kind.CANCELLED, to_utc(order.get("update_time"), unix=True), label)
            )
        amount = fen_to_yuan(order.get("pay_amount"))
        return milestone_events(self, order["order_id"], milestones, amount=amount, payload=order)
