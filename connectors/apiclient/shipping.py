"""What a ship call sends and answers: the platform's carrier code and the outbox's
record of the answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connectors.base import InvalidParameter, SendResult

if TYPE_CHECKING:
    from connectors.apiclient.answers import Answer


def carrier_code(options: dict[str, Any], carrier: str) -> str:
    """The platform's own carrier code: `options.carriers` maps the hub's names to it
    (e.g. `carriers = {SF = "SF"}`); an unmapped name is sent as given."""
    mapping = options.get("carriers") or {}
    return str(mapping.get(carrier, carrier)) if isinstance(mapping, dict) else carrier


def ship_result(answer: Answer, success: Any = True) -> SendResult:
    """A ship call's answer as the outbox records it (the platform's answer as detail);
    `success` is the answer's own verdict, where it has one."""
    if success is False:
        raise InvalidParameter("not_shipped", "platform answered is_success=false", raw=answer.body)
    detail = answer.raw[:500].decode(errors="replace")
    return SendResult(ok=True, retryable=False, status=200, detail=detail)
