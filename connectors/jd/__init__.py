"""JD (京东 JOS): orders arrive by reconciliation only.

JOS's order messages are not delivered as a webhook to an ISV URL: its message
service is a connection the ISV opens to JD, and no source read documents it (see
docs/connectors/jd.md). JD orders therefore come through `hub.reconcile`, which
polls `jingdong.pop.order.search` by modified time through `connectors.jd.api`.

This module registers the `jd` platform (so shops can be configured) and refuses any
POST to `/webhooks/jd/...` with a reason that says where JD orders come from. JD
Daojia (京东到家), which does push, is the separate `jddj` platform.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from connectors.base import Inbound, Rejection, Reply, json_reply
from hub.model import OrderEvent

if TYPE_CHECKING:
    from hub.settings import Shop

REASON = "push_not_supported"
DETAIL = (
    "JD JOS does not push orders to a webhook; JD orders arrive by reconciliation "
    "(jingdong.pop.order.search, see `orderhook reconcile`). JD Daojia pushes go to "
    "/webhooks/jddj/{shop}/djsw/{message}."
)


class JdConnector:
    name: ClassVar[str] = "jd"
    # any media type reaches verify, so every push gets the same clear answer
    content_types: ClassVar[tuple[str, ...]] = (
        "",
        "application/json",
        "application/x-www-form-urlencoded",
        "application/xml",
        "text/plain",
        "text/xml",
        "multipart/form-data",
    )

    def check_shop(self, shop: Shop) -> None:
        if not shop.app_key:
            raise ValueError("a JD shop needs app_key (the JOS app key) for API calls")
        from connectors.apiclient import check_options

        check_options(shop)

    def verify(self, msg: Inbound) -> None:
        raise Rejection(REASON, DETAIL, status=404)

    def parse(self, msg: Inbound) -> list[OrderEvent]:
        raise Rejection(REASON, DETAIL, status=404)

    def ack(self, msg: Inbound) -> Reply:  # never reached: verify always refuses
        return json_reply(404, {"error": {"reason": REASON, "detail": DETAIL}})

    def reject(self, msg: Inbound | None, rejection: Rejection) -> Reply:
        return json_reply(
            rejection.status, {"error": {"reason": rejection.reason, "detail": rejection.detail}}
        )


connector = JdConnector()
