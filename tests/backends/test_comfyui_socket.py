"""The ComfyUI adapter's waits never lose a cancellation (Python 3.11's ``wait_for`` can)."""

from __future__ import annotations

import asyncio

import pytest

from supervisor.backends.comfyui_socket import Inbox, within


async def test_inbox_get_times_out_and_returns_items_in_order() -> None:
    inbox = Inbox()
    assert await inbox.get(0.01) is None
    inbox.put_nowait(("a", {}))
    inbox.put_nowait(("b", {}))
    assert [await inbox.get(1), await inbox.get(1)] == [("a", {}), ("b", {})]


async def test_cancel_lands_when_an_item_arrives_in_the_same_iteration() -> None:
    inbox = Inbox()

    async def consume() -> None:
        while True:
            await inbox.get(10)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)  # one turn of the loop: the consumer now waits in get()
    inbox.put_nowait(("frame", {}))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)


async def test_within_returns_times_out_and_cancels_the_inner_task() -> None:
    assert await within(asyncio.sleep(0, "done"), 1) == "done"
    inner = asyncio.ensure_future(asyncio.sleep(10))
    with pytest.raises(asyncio.TimeoutError):
        await within(inner, 0.01)
    assert inner.cancelled()


async def test_within_never_swallows_the_callers_cancel() -> None:
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def caller() -> str:
        return await within(ready, 10)

    task = asyncio.create_task(caller())
    await asyncio.sleep(0)
    ready.set_result("x")  # completes in the same iteration as the cancel below
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
