"""``cancel_safe`` inside ``tracking_calls`` (how a supervisor bounds its command connections):
a call that ended leaves nothing for the garbage collector."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from fleetq.store import cancel_safe, tracking_calls, when_ended


@pytest.fixture
def no_collector() -> Iterator[None]:
    """The cyclic garbage collector off: only reference counting frees objects."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def answer(value: str) -> str:
    await asyncio.sleep(0)
    return value


async def test_a_tracked_call_that_ended_is_freed_without_the_collector(no_collector: None) -> None:
    with tracking_calls() as calls:
        caller = asyncio.ensure_future(cancel_safe(answer("ok")))
        await asyncio.sleep(0)  # the call's own task has started
        (call,) = calls
        ref = weakref.ref(call)
        del call
        assert await caller == "ok"
    await asyncio.sleep(0)  # the call's done callbacks run
    assert not calls  # it left the set when it ended
    del caller
    # Before: the call's task held its context, whose value held the set holding the task,
    # a cycle that only a collection would free (one per call a supervisor makes).
    assert ref() is None


async def test_the_calls_of_a_cancelled_caller_are_still_waited_for() -> None:
    ended = asyncio.Event()
    release = asyncio.Event()

    async def slow() -> str:
        try:
            await release.wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # ends a moment after its cancellation, as redis-py may
            raise
        return "late"

    with tracking_calls() as calls:
        caller = asyncio.ensure_future(cancel_safe(slow()))
        await asyncio.sleep(0)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert len(calls) == 1 and not next(iter(calls)).done()
        when_ended(calls, ended.set)
    assert not ended.is_set()
    await asyncio.wait_for(ended.wait(), 5)
    assert not calls
