"""A local fake of the four platforms' order APIs, for tests and the sandbox.

One ASGI app answers all four gateways on their own paths, so a shop's `api_base` can
point at it whatever its platform:

    POST /router/rest              Taobao TOP (form body, system params in the query)
    POST /routerjson               JD JOS (360buy_param_json in the form body)
    POST /order/searchList ...     Douyin (param_json body, method path)
    POST /api/router               Pinduoduo (JSON body)

It checks each request's signature with the app's secret (an unsigned or mis-signed
call is refused in the platform's error shape), serves the incremental order queries
from an in-memory order book, records ship calls, and can be told to fail the next
calls (`fail(n, fault)`) to exercise the clients' degradation. Every request it saw is
in `calls` for assertions. Error codes marked "fake" are this fake's own, not the
platform's.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import click
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.douyin import api as douyin
from connectors.jd import api as jd
from connectors.pinduoduo import api as pdd
from connectors.taobao import api as taobao
from hub.model import SHANGHAI, from_unix, shanghai_to_utc

FAULTS = ("http_500", "http_503", "hang", "rate_limited", "auth_expired", "busy")


def bj(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def unix(moment: datetime | None) -> int:
    return 0 if moment is None else int(moment.timestamp())


@dataclass
class FakeOrder:
    platform: str
    order_id: str
    state: str  # created | paid | shipped | cancelled | refunded
    created: datetime
    paid: datetime | None = None
    shipped: datetime | None = None
    closed: datetime | None = None
    amount: Decimal = Decimal("99.00")
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))

    def native(self) -> dict[str, Any]:
        """The order as the platform's incremental query returns it."""
        return ROWS[self.platform](self)


def _taobao_row(o: FakeOrder) -> dict[str, Any]:
    status = {
        "created": "WAIT_BUYER_PAY",
        "paid": "WAIT_SELLER_SEND_GOODS",
        "shipped": "WAIT_BUYER_CONFIRM_GOODS",
        "cancelled": "TRADE_CLOSED_BY_TAOBAO",
        "refunded": "TRADE_CLOSED",
    }[o.state]
    return {
        "tid": int(o.order_id) if o.order_id.isdigit() else o.order_id,
        "status": status,
        "type": "fixed",
        "created": bj(o.created),
        "pay_time": bj(o.paid),
        "consign_time": bj(o.shipped),
        "end_time": bj(o.closed),
        "modified": bj(o.updated),
        "payment": str(o.amount),
    }


def _jd_row(o: FakeOrder) -> dict[str, Any]:
    state = {
        "created": "WAIT_SELLER_STOCK_OUT",  # JD lists paid orders only; see docs
        "paid": "WAIT_SELLER_STOCK_OUT",
        "shipped": "WAIT_GOODS_RECEIVE_CONFIRM",
        "cancelled": "TRADE_CANCELED",
        "refunded": "TRADE_CANCELED",
    }[o.state]
    return {
        "orderId": o.order_id,
        "orderState": state,
        "orderStartTime": bj(o.created),
        "paymentConfirmTime": bj(o.paid),
        "modified": bj(o.updated),
        "orderTotalPrice": str(o.amount),
        "orderPayment": str(o.amount),
    }


def _douyin_row(o: FakeOrder) -> dict[str, Any]:
    status = {"created": 1, "paid": 2, "shipped": 3, "cancelled": 4, "refunded": 4}[o.state]
    return {
        "order_id": o.order_id,
        "order_status": status,
        "create_time": unix(o.created),
        "pay_time": unix(o.paid),
        "ship_time": unix(o.shipped),
        "update_time": unix(o.updated),
        "pay_amount": int(o.amount * 100),
    }


def _pdd_row(o: FakeOrder) -> dict[str, Any]:
    return {
        "order_sn": o.order_id,
        "order_status": 2 if o.state == "shipped" else 1,
        "confirm_status": {"created": 0, "cancelled": 2}.get(o.state, 1),
        "refund_status": 4 if o.state == "refunded" else 1,
        "created_time": bj(o.created),
        "confirm_time": bj(o.paid),
        "shipping_time": bj(o.shipped),
        "updated_at": bj(o.updated),
        "pay_amount": o.amount,
    }


ROWS = {"taobao": _taobao_row, "jd": _jd_row, "douyin": _douyin_row, "pinduoduo": _pdd_row}


@dataclass
class App:
    platform: str
    app_key: str
    secret: str


class FakePlatformApi:
    def __init__(self, apps: list[App] | None = None) -> None:
        self.apps: dict[tuple[str, str], App] = {}
        for app in apps or []:
            self.add_app(app)
        self.orders: list[FakeOrder] = []
        self.calls: list[dict[str, Any]] = []
        self.shipments: list[dict[str, Any]] = []
        self.faults: deque[str] = deque()
        self.app = Starlette(
            routes=[
                Route("/router/rest", self._taobao, methods=["POST"]),
                Route("/routerjson", self._jd, methods=["POST"]),
                Route("/api/router", self._pdd, methods=["POST"]),
                Route("/{group}/{name}", self._douyin, methods=["POST"]),
            ]
        )

    def add_app(self, app: App) -> None:
        self.apps[(app.platform, app.app_key)] = app

    def add_order(self, order: FakeOrder) -> FakeOrder:
        self.orders.append(order)
        return order

    def fail(self, times: int, fault: str = "http_500") -> None:
        """Make the next `times` calls (any platform) fail with `fault`."""
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}")
        self.faults.extend([fault] * times)

    # --- shared ---------------------------------------------------------------------

    def _window(self, platform: str, lo: datetime, hi: datetime) -> list[FakeOrder]:
        return sorted(
            (o for o in self.orders if o.platform == platform and lo <= o.updated < hi),
            key=lambda o: o.updated,
        )

    def _ship(self, platform: str, order_id: str, carrier: str, tracking: str) -> bool:
        for order in self.orders:
            if order.platform == platform and order.order_id == order_id:
                order.state, order.shipped = "shipped", datetime.now(UTC).replace(microsecond=0)
                order.updated = order.shipped
                self.shipments.append(
                    {
                        "platform": platform,
                        "order_id": order_id,
                        "carrier": carrier,
                        "tracking": tracking,
                    }
                )
                return True
        return False

    async def _fault(self) -> str | None:
        if not self.faults:
            return None
        fault = self.faults.popleft()
        if fault == "hang":
            await asyncio.sleep(30)
        return fault

    def _log(self, platform: str, method: str, params: dict[str, Any], signed: bool) -> None:
        self.calls.append(
            {"platform": platform, "method": method, "params": params, "signed": signed}
        )

    # --- Taobao ---------------------------------------------------------------------

    async def _taobao(self, request: Request) -> Response:
        query = dict(request.query_params)
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        params = {**query, **form}
        method = params.get("method", "")
        app = self.apps.get(("taobao", params.get("app_key", "")))
        signed = app is not None and params.get("sign") == taobao.sign(
            params, app.secret, params.get("sign_method", "md5")
        )
        self._log("taobao", method, params, signed)
        fault = await self._fault()
        if fault in ("http_500", "http_503"):
            return Response("busy", status_code=int(fault[5:]))
        errors = {
            "rate_limited": (7, "App Call Limited", "accesscontrol.limited-by-app-access-count"),
            "auth_expired": (27, "Invalid session", "invalid-sessionkey"),
            "busy": (15, "Remote service error", "isp.remote-service-timeout"),
        }
        if fault in errors or not signed:
            code, msg, sub = errors.get(fault or "", (25, "Invalid signature", ""))
            return JSONResponse(
                {
                    "error_response": {
                        "code": code,
                        "msg": msg,
                        "sub_code": sub,
                        "request_id": "fake",
                    }
                }
            )
        if method == "taobao.trades.sold.increment.get":
            lo = shanghai_to_utc(params["start_modified"])
            hi = shanghai_to_utc(params["end_modified"])
            rows = [o.native() for o in reversed(self._window("taobao", lo, hi))]  # newest first
            size, page = int(params.get("page_size", 40)), int(params.get("page_no", 1))
            chunk = rows[(page - 1) * size : page * size]
            body: dict[str, Any] = {"total_results": len(rows), "has_next": page * size < len(rows)}
            if chunk:
                body["trades"] = {"trade": chunk}
            return _json({"trades_sold_increment_get_response": body})
        if method == "taobao.logistics.offline.send":
            ok = self._ship("taobao", params["tid"], params["company_code"], params["out_sid"])
            return _json({"logistics_offline_send_response": {"shipping": {"is_success": ok}}})
        return _json({"error_response": {"code": 22, "msg": "Invalid method"}})

    # --- JD -------------------------------------------------------------------------

    async def _jd(self, request: Request) -> Response:
        query = dict(request.query_params)
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        params = {**query, **form}
        method = params.get("method", "")
        app = self.apps.get(("jd", params.get("app_key", "")))
        signed = app is not None and params.get("sign") == jd.sign(
            params, app.secret, params.get("sign_method", "md5")
        )
        self._log("jd", method, params, signed)
        fault = await self._fault()
        if fault in ("http_500", "http_503"):
            return Response("busy", status_code=int(fault[5:]))
        if fault == "rate_limited":
            return _json({"error_response": {"code": "2", "zh_desc": "调用次数超限 (fake)"}})
        if fault in ("auth_expired", "busy") or not signed:
            desc = {"auth_expired": "token 无效 (fake)", "busy": "服务繁忙 (fake)"}
            return _json(
                {
                    "error_response": {
                        "code": "12",
                        "zh_desc": desc.get(fault or "", "签名无效 (fake)"),
                    }
                }
            )
        business = json.loads(params.get("360buy_param_json", "{}"))
        if method == jd.SEARCH:
            lo = shanghai_to_utc(business["start_date"])
            hi = shanghai_to_utc(business["end_date"])
            rows = [o.native() for o in self._window("jd", lo, hi)]
            size, page = int(business.get("page_size", 20)), int(business.get("page", 1))
            result = {
                "orderInfoList": rows[(page - 1) * size : page * size],
                "orderTotal": len(rows),
                "apiResult": {"success": True},
            }
            return _json(
                {
                    "jingdong_pop_order_search_responce": {
                        "code": "0",
                        "searchorderinfo_result": result,
                    }
                }
            )
        if method == jd.SHIP:
            ok = self._ship(
                "jd",
                str(business["orderId"]),
                str(business["logiCoprId"]),
                business.get("logiNo", ""),
            )
            result = {"success": ok, "chineseErrCode": "" if ok else "订单不存在 (fake)"}
            return _json(
                {
                    "jingdong_pop_order_shipment_responce": {
                        "code": "0",
                        "sopjosshipment_result": result,
                    }
                }
            )
        return _json({"error_response": {"code": "14", "zh_desc": "方法不存在 (fake)"}})

    # --- Douyin ---------------------------------------------------------------------

    async def _douyin(self, request: Request) -> Response:
        query = dict(request.query_params)
        body_text = (await request.body()).decode()
        method = query.get("method", "")
        app = self.apps.get(("douyin", query.get("app_key", "")))
        signed = app is not None and query.get("sign") == douyin.sign(
            app.app_key,
            app.secret,
            method,
            body_text,
            query.get("timestamp", ""),
            query.get("sign_method", "md5"),
        )
        param = json.loads(body_text or "{}")
        self._log("douyin", method, {**query, "param_json": body_text}, signed)
        fault = await self._fault()
        if fault in ("http_500", "http_503"):
            return Response("busy", status_code=int(fault[5:]))
        errors = {
            "rate_limited": (60000, "isv.traffic-limited"),
            "auth_expired": (40003, "isv.access-token-expired"),
            "busy": (20000, "dop.service-error"),
        }
        if fault in errors or not signed:
            code, sub = errors.get(fault or "", (40003, "isv.signature-invalid"))
            return _json(
                {
                    "code": code,
                    "msg": "fake error",
                    "sub_code": sub,
                    "sub_msg": "",
                    "log_id": "fake",
                }
            )
        if method == "order.searchList":
            lo, hi = from_unix(param["update_time_start"]), from_unix(param["update_time_end"])
            rows = [o.native() for o in self._window("douyin", lo, hi)]
            size, page = int(param.get("size", 10)), int(param.get("page", 0))
            data = {
                "shop_order_list": rows[page * size : (page + 1) * size],
                "total": len(rows),
                "page": page,
                "size": size,
            }
            return _json({"code": 10000, "msg": "success", "data": data, "log_id": "fake"})
        if method == "order.logisticsAdd":
            ok = self._ship(
                "douyin", str(param["order_id"]), param["company_code"], param["logistics_code"]
            )
            if ok:
                return _json({"code": 10000, "msg": "success", "data": {}, "log_id": "fake"})
            return _json(
                {
                    "code": 40004,
                    "msg": "order not found (fake)",
                    "sub_code": "fake",
                    "log_id": "fake",
                }
            )
        return _json(
            {"code": 70000, "msg": "api offline (fake)", "sub_code": "isp.api-service-off"}
        )

    # --- Pinduoduo ------------------------------------------------------------------

    async def _pdd(self, request: Request) -> Response:
        params = json.loads(await request.body() or b"{}")
        method = params.get("type", "")
        app = self.apps.get(("pinduoduo", params.get("client_id", "")))
        signed = app is not None and params.get("sign") == pdd.sign(params, app.secret)
        self._log("pinduoduo", method, params, signed)
        fault = await self._fault()
        if fault in ("http_500", "http_503"):
            return Response("busy", status_code=int(fault[5:]))
        if fault == "rate_limited":
            return JSONResponse(
                {"error_response": {"error_code": 0, "error_msg": "rate (fake)"}}, status_code=429
            )
        if fault in ("auth_expired", "busy") or not signed:
            code, msg = {"auth_expired": (10019, "access_token已过期")}.get(
                fault or "", (0, "sign error (fake)")
            )
            return _json(
                {"error_response": {"error_code": code, "error_msg": msg, "request_id": "fake"}}
            )
        if method == pdd.INCREMENT:
            lo = from_unix(params["start_updated_at"])
            hi = from_unix(params["end_updated_at"])
            rows = [o.native() for o in self._window("pinduoduo", lo, hi)]
            size, page = int(params.get("page_size", 100)), int(params.get("page", 1))
            body = {
                "total_count": len(rows),
                "order_sn_list": rows[(page - 1) * size : page * size],
            }
            return _json({"order_sn_increment_get_response": body})
        if method == pdd.SHIP:
            ok = self._ship(
                "pinduoduo", params["order_sn"], params["logistics_id"], params["tracking_number"]
            )
            return _json({"logistics_online_send_response": {"is_success": ok}})
        return _json({"error_response": {"error_code": 0, "error_msg": "unknown type (fake)"}})


def _json(value: Any) -> Response:
    return Response(
        json.dumps(value, ensure_ascii=False, default=str).encode(), media_type="application/json"
    )


def demo(platform: str, app_key: str, secret: str, count: int) -> FakePlatformApi:
    """A fake with `count` paid orders changed over the last hour."""
    fake = FakePlatformApi([App(platform, app_key, secret)])
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(count):
        created = now - timedelta(minutes=59 - i % 59)
        fake.add_order(
            FakeOrder(
                platform,
                str(7_000_000_000_000_000_000 + i),
                "paid",
                created,
                paid=created + timedelta(seconds=30),
                updated=created + timedelta(seconds=30),
            )
        )
    return fake


@click.command("platform-api")
@click.option(
    "--platform",
    type=click.Choice(sorted(ROWS)),
    required=True,
    help="Which gateway's app to accept.",
)
@click.option("--app-key", required=True, help="The app key shops will call with.")
@click.option("--secret", required=True, help="The app secret they sign with.")
@click.option(
    "--orders", type=int, default=20, show_default=True, help="Demo paid orders to serve."
)
@click.option("--port", type=int, default=9100, show_default=True)
def command(platform: str, app_key: str, secret: str, orders: int, port: int) -> None:
    """Serve a local fake of the platforms' order APIs (point a shop's api_base at it).

    \b
    Examples:
      orderhook simulate platform-api --platform jd --app-key K --secret S
      # then in orderhook.toml: api_base = "http://127.0.0.1:9100"
      orderhook reconcile my-jd-shop --since 1h

    A Taobao or Pinduoduo shop pointed at it also needs its token option
    (`access_token`, Taobao `session` too; any value: the fake does not check it),
    or its pulls stop at missing_token before anything is sent.
    """
    import uvicorn

    fake = demo(platform, app_key, secret, orders)
    click.echo(f"fake {platform} API on http://127.0.0.1:{port} with {orders} orders")
    uvicorn.run(fake.app, host="127.0.0.1", port=port, log_level="warning")
