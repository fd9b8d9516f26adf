"""The hub's background stages stop when the hub stops, whenever the stop lands."""

from __future__ import annotations

import asyncio

import pytest

from hub.dispatch import service as dispatch
from hub.runtime import Hub
from hub.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("turns", range(6))
async def test_stop_right_after_a_commit_woke_dispatch_does_not_hang(
    settings: Settings, turns: int
) -> None:
    """On Python 3.11 `asyncio.wait_for` swallowed a cancel that arrived as its event was
    set, so a hub stopped right after a commit kept dispatching and never stopped (a
    deploy on a busy night would hang). Each case lands the stop `turns` loop turns
    after the commit's wake-up."""
    hub = Hub(settings, services=[dispatch.run])
    try:
        # a bound on a hang, not a speed check: a clean stop takes milliseconds
        async with asyncio.timeout(30):
            async with hub.running():
                while not hub.store.commit_listeners:  # dispatch is listening
                    await asyncio.sleep(0.01)
                hub.store.commit_listeners[-1](1)  # what the writer does after a commit
                for _ in range(turns):
                    await asyncio.sleep(0)
    except TimeoutError:
        pytest.fail("the hub did not stop: a stage ignored its cancel")
    assert all(task.done() for task in hub._tasks)
