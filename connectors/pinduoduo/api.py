"""Pinduoduo open API client: signing, errors, ship, incremental order numbers.

Rules and sources: docs/connectors/api-clients.md (Pinduoduo). In short:
- POST `{base}/api/router` with a JSON object whose members are ALL params as
  strings, `sign` included [PDD Java SDK AbstractPopClient];
- sign = hex-upper of MD5(secret + k1v1k2v2... + secret), keys in ordinal order
  (Java TreeMap), md5 only [PDD Java SDK SignUtils];
- common params `type, client_id, timestamp (Unix seconds), data_type=JSON,
  version=V1, access_token`.
"""

from __future__ import annotations

import hashlib
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
    param_text,
    ship_result,
    to_utc,
    windows,
)
from connectors.base import ApiError, AuthExpired, InvalidParameter, RateLimited, SendResult
from hub.model import Kind, OrderEvent, to_decimal

INCREMENT = "pdd.order.number.list.increment.get"
SHIP = "pdd.logistics.online.send"
# 10019 "access_token已过期" is seen in captured answers (third-party; docs)
AUTH_CODES = {10019}


def sign(params: Mapping[str, Any], secret: str) -> str:
    pairs = sorted((k, str(v)) for k, v in params.items() if k != "sign" and v is not None)
    text = secret + "".join(k + v for k, v in pairs) + secret
    return hashlib.md5(text.encode()).hexdigest().upper()


class Client(BaseClient):
    platform: ClassVar[str] = "pinduoduo"
    default_base: ClassVar[str] = "https://gw-api.pinduoduo.com"
    path: ClassVar[str] = "/api/router"
    # "开始时间结束时间间距不超过 30 分钟" [pdd.order.number.list.increment.get request doc]
    max_window: ClassVar[timedelta] = timedelta(minutes=30)
    page_size: ClassVar[int] = 100
    # both carry needOauth in PDD's API metadata (docs/connectors/api-clients.md)
    token_methods: ClassVar[frozenset[str]] = frozenset({INCREMENT, SHIP})

    def build_request(self, method: str, params: dict[str, Any]) -> httpx.Request:
        body: dict[str, str] = {
            "type": method,
            "client_id": str(self.shop.app_key),
            "timestamp": str(int(self.clock().timestamp())),
            "data_type": "JSON",
            "version": "V1",
        }
        token = self.token()
        if token:
            body["access_token"] = token
        body.update({k: param_text(v) for k, v in params.items()})
        body["sign"] = sign(body, self.shop.secret)
        return httpx.Request(
            "POST",
            self.base + self.path,
            content=json.dumps(body, ensure_ascii=False).encode(),
            headers={"content-type": "application/json;charset=UTF-8"},
        )

    def read_error(self, method: str, status: int, body: Any) -> ApiError | None:
        err = body.get("error_response") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            return None
        code = err.get("error_code")
        sub_code = err.get("sub_code")
        label = f"{code}:{sub_code}" if sub_code not in (None, "") else str(code)
        message = " / ".join(str(x) for x in (err.get("error_msg"), err.get("sub_msg")) if x)
        if status == 429:
            return RateLimited(label, message, raw=body)
        if code in AUTH_CODES:
            return AuthExpired(label, message, raw=body)
        return InvalidParameter(label, message, raw=body)

    async def ship(self, order_id: str, carrier: str, tracking_no: str) -> SendResult:
        params = {
            "order_sn": order_id,
            "logistics_id": carrier_code(self.shop.options, carrier),
            "tracking_number": tracking_no,
        }
        answer = await self.call(SHIP, params, read=False)
        result = answer.body.get("logistics_online_send_response") or {}
        return ship_result(answer, result.get("is_success"))

    async def changed_pages(self, start: datetime, end: datetime) -> AsyncIterator[Page]:
        for lo, hi in windows(start, end, self.max_window):
            params = {
                "is_lucky_flag": 0,
                "order_status": 5,  # all
                "refund_status": 5,  # all
                "start_updated_at": int(lo.timestamp()),
                "end_updated_at": int(hi.timestamp()),
                "page_size": self.page_size,
            }
            # "必须采用倒序的分页方式（从最后一页往回取）才能避免漏单问题" [request doc]
            async for page in self.walk(
                INCREMENT,
                params,
                (lo, hi),
                rows=lambda body: _result(body).get("order_sn_list"),
                total=lambda body: _result(body).get("total_count"),
                backwards=True,
            ):
                yield page

    def events(self, order: dict[str, Any]) -> list[OrderEvent]:
        confirm = order.get("confirm_status")
        status = order.get("order_status")
        refund = order.get("refund_status")
        label = f"order_status={status},refund_status={refund},confirm_status={confirm}"
        updated = to_utc(order.get("updated_at"))
        milestones = [Milestone(Kind.CREATED, to_utc(order.get("created_time")), label)]
        if confirm == 1:  # 已成交: grouped and paid
            milestones.append(Milestone(Kind.PAID, to_utc(order.get("confirm_time")), label))
        if status in (2, 3):
            milestones.append(Milestone(Kind.SHIPPED, to_utc(order.get("shipping_time")), label))
        if confirm == 2:
            milestones.append(Milestone(Kind.CANCELLED, updated, label))
        if refund in (2, 3):
            milestones.append(Milestone(Kind.REFUND_REQUESTED, updated, label))
        elif refund == 4:
            milestones.append(Milestone(Kind.REFUNDED, updated, label))
        amount = to_decimal(order.get("pay_amount"))
        return milestone_events(self, order["order_sn"], milestones, amount=amount, payload=order)


def _result(body: Any) -> dict[str, Any]:
    found = body.get("order_sn_increment_get_response") if isinstance(body, dict) else None
    return found if isinstance(found, dict) else {}
