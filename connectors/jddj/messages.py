"""JD Daojia (京东到家) message names -> canonical kinds.

Daojia names the message in the URL it calls: `.../djsw/<message name>`. The names below
are the ones merchant-side receivers handle in public code (docs/connectors/jddj.md has
the sources); the meaning of each is taken from the Chinese description next to it there.
A name missing here is kept as kind OTHER, never dropped.
"""

from __future__ import annotations

from hub.model import Kind

MESSAGES: dict[str, Kind] = {
    # Daojia pushes newOrder once the order waits for the merchant (statusId 32000,
    # 等待出库 / 待处理): the buyer has paid, like Douyin's paid message (备货中)
    "newOrder": Kind.PAID,
    "orderWaitOutStore": Kind.OTHER,  # merchant accepted, waiting for stock-out
    "pickFinishOrder": Kind.OTHER,  # picking finished
    "deliveryOrder": Kind.SHIPPED,  # delivery started (配送)
    "pushDeliveryStatus": Kind.OTHER,  # courier status (uses orderId, not billId)
    "finishOrder": Kind.OTHER,  # delivered / finished: no canonical kind
    "userCancelOrder": Kind.CANCELLED,
    "applyCancelOrder": Kind.REFUND_REQUESTED,  # buyer asks to cancel a paid order
    "newApplyAfterSaleBill": Kind.REFUND_REQUESTED,  # buyer applied for after-sale
    "updateApplyAfterSaleBill": Kind.OTHER,
    "newAfterSaleBill": Kind.OTHER,
    "afterSaleBillStatus": Kind.OTHER,
}

# the message the simulator sends for each canonical kind; no source read shows a Daojia
# message for created (newOrder arrives paid), refunded or address_changed, so those
# kinds cannot be simulated for jddj
MESSAGE_FOR_KIND: dict[Kind, str] = {
    Kind.PAID: "newOrder",
    Kind.SHIPPED: "deliveryOrder",
    Kind.CANCELLED: "userCancelOrder",
    Kind.REFUND_REQUESTED: "newApplyAfterSaleBill",
    Kind.OTHER: "finishOrder",
}

# statusId the simulator puts in jd_param_json (32000: the newOrder example in Daojia's
# MQNewOrder doc); other messages' status codes are not confirmed by a source, so none
STATUS_FOR_MESSAGE: dict[str, str] = {"newOrder": "32000"}
