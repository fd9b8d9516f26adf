"""The channel fakes' queue sends each message once per delivery, as a platform does."""

from __future__ import annotations

from typing import Any, cast

from websockets.asyncio.server import ServerConnection

from sandbox.fakes._mailbox import Mailbox, Queued


def conn() -> ServerConnection:
    return cast(ServerConnection, object())


def test_two_senders_of_one_connection_send_a_message_once() -> None:
    """The push loop and a PullRequest answer look at the queue at the same moment."""
    box, link = Mailbox(redeliver_seconds=30), conn()
    box.add(Queued(1, {}))
    push_loop, pull_answer = box.due(link), box.due(link)
    assert [box.claim(item, link) for item in push_loop] == [True]
    assert [box.claim(item, link) for item in pull_answer] == [False]
    assert box.sent[1] == 1


def test_a_message_confirmed_while_others_were_written_is_not_sent_again() -> None:
    box, link = Mailbox(redeliver_seconds=30), conn()
    box.add(Queued(1, {}))
    box.add(Queued(2, {}))
    first, second = box.due(link)
    assert box.claim(first, link)
    box.confirm(2)  # taken in (e.g. an earlier delivery's Confirm) while 1 was written
    assert not box.claim(second, link)
    assert dict(box.sent) == {1: 1}


def test_unconfirmed_messages_come_again_after_the_redelivery_delay_or_a_drop() -> None:
    box, link, other = Mailbox(redeliver_seconds=0), conn(), conn()
    box.add(Queued(1, {}))
    assert box.claim(box.due(link)[0], link)
    assert box.claim(box.due(link)[0], link)  # overdue at once: delivered again
    slow: Any = Mailbox(redeliver_seconds=30)
    slow.add(Queued(7, {}))
    assert slow.claim(slow.due(link)[0], link)
    assert slow.due(other) == []  # another connection holds it
    slow.forget(link)  # that connection died
    assert [item.id for item in slow.due(other)] == [7]
