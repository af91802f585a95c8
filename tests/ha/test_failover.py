"""Clients and workers on a ``redis+sentinel://`` URL keep working through a failover.

Replication is asynchronous: a write the old primary acknowledged but had not yet sent to the
replica is gone after a failover (documented Redis behaviour). These tests count such losses
under continuous load instead of hiding them, and check that ``wait_replicas`` (WAIT after
submit and complete) turns every loss into an error the caller saw.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
from ha_load import Ledger, reap_forever, submit_forever, verdict, work_forever
from ha_testkit import HaCluster, until

from fleetq import AsyncClient, Client, Settings
from fleetq.connection import PRIMARY_RECHECK_S
from fleetq.errors import NotReplicated
from fleetq.model import Output
from fleetq.worker import WorkerQueue

pytestmark = pytest.mark.slow

#: Jobs completed before the failover, and after it, before the load stops.
BEFORE, AFTER = 150, 150
#: The load goes on at least this long after the failover began.
AFTER_S = 5.0


def ha_settings(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": url,
        "namespace": "ha-" + uuid.uuid4().hex[:8],
        "socket_timeout_s": 5.0,
        "block_timeout_s": 1.0,
        "lease_ms": 2_000,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def test_sentinel_url_finds_the_primary_and_the_replica_gets_every_write(
    ha: HaCluster,
) -> None:
    settings = ha_settings(ha.url())
    with Client(settings) as client:
        job = client.submit({"prompt": "a lighthouse"}, service="a1111")
        assert client.status(job.id).position == 0
    queue = WorkerQueue(settings)
    try:
        claimed = (await queue.claim(["a1111"], "h", 0, 1.0)).job
        assert claimed is not None and claimed.id == job.id
        await queue.complete(claimed, [Output("a.png", "image/png", b"x")])
    finally:
        await queue.aclose()
    key = settings_key(settings, job.id)
    primary, replica = (
        ha.primary().port,
        next(n.port for n in ha.nodes if n is not ha.primary()),
    )
    for port in (primary, replica):
        with ha.client_of(port) as r:
            until(lambda r=r: r.hget(key, "state") == b"completed", 5, "the job on every node")  # type: ignore[misc]


def settings_key(settings: Settings, job_id: str) -> str:
    return "{" + settings.namespace + "}:job:" + job_id


@pytest.mark.parametrize("how", ["sentinel-failover", "sigkill"])
@pytest.mark.parametrize("wait_replicas", [0, 1], ids=["no-wait", "wait-1"])
async def test_load_across_a_failover_counts_what_was_lost(
    ha: HaCluster, how: str, wait_replicas: int, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = ha_settings(ha.url(), wait_replicas=wait_replicas, wait_timeout_ms=500)
    ledger = Ledger()
    stop_submit, stop_work = threading.Event(), asyncio.Event()
    submitter = threading.Thread(
        target=submit_forever, args=(settings, stop_submit, ledger, 0.002), daemon=True
    )
    submitter.start()
    workers = [
        asyncio.create_task(work_forever(settings, gpu, stop_work, ledger)) for gpu in (0, 1)
    ]
    reaper = asyncio.create_task(reap_forever(settings, stop_work))
    try:
        await wait_for(lambda: len(ledger.completed) >= BEFORE, 30, "jobs before the failover")
        started = ledger.failover_at = time.monotonic()
        started_wall = time.time()
        if how == "sigkill":
            old = ha.primary()
            await asyncio.to_thread(ha.kill_primary)
            promoted_after_s = time.monotonic() - started
            # The operator restarts the dead node as a replica of the new primary (discarding
            # what it never sent), so WAIT can be satisfied again.
            await asyncio.to_thread(ha.restart_as_replica, old)
        else:
            await asyncio.to_thread(ha.failover)
            promoted_after_s = time.monotonic() - started
        done_before = len(ledger.completed)
        # Long enough to see where the load goes: a client still on the old primary would go
        # on writing into the void until the Sentinels demote it (about 10 s).
        await wait_for(
            lambda: (
                len(ledger.completed) >= done_before + AFTER
                and time.monotonic() - started >= AFTER_S
            ),
            60,
            "jobs after the failover",
        )
        stop_submit.set()
        await asyncio.to_thread(submitter.join, 30)
        await drain(settings)
    finally:
        stop_submit.set()
        stop_work.set()
        await asyncio.gather(*workers, reaper)
    result = await asyncio.to_thread(verdict, settings, ledger)
    # Seconds from the failover to each switch of the primary the Sentinels made.
    switches = [at - started_wall for at in ha.switches()]
    with capsys.disabled():
        print(f"\n{result.line(ledger, f'{how}, wait_replicas={wait_replicas}')}; "
              f"new primary after {promoted_after_s:.2f} s; switches at "
              f"{', '.join(f'{s:.2f}' for s in switches)} s")  # fmt: skip
    # The fleet works again after the failover, and every job it knows of ran to its end.
    assert len(ledger.completed) >= done_before + AFTER
    assert result.not_finished == []
    if wait_replicas:
        # A write a replica confirmed survives the promotion of that replica: nothing that
        # fleetq acknowledged is lost; the writes at risk raised NotReplicated instead.
        assert result.lost_submits == [] and result.lost_completes == []
    else:
        # Without WAIT the loss is bounded by the time clients take to follow the Sentinels:
        # the writes the old primary took between the promotion and the switch. On a loaded
        # machine the Sentinels may also fail over a second time (taking the busy new primary
        # for down), which loses what it had not yet passed on, as any failover does: the
        # bound then counts from the last switch.
        last_switch_s = max([promoted_after_s, *switches])
        for job_id in result.lost_submits:
            acked_after_s = ledger.submitted[job_id] - ledger.failover_at
            assert acked_after_s < last_switch_s + PRIMARY_RECHECK_S + 1.0, (
                f"a write acknowledged {acked_after_s:.2f} s after the failover was lost "
                f"(promoted after {promoted_after_s:.2f} s, switches at {switches})"
            )


async def wait_for(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)  # the load runs in other tasks and a thread; nothing to await


async def drain(settings: Settings) -> None:
    """Until nothing is queued or running (lost completions are reaped and run again)."""
    async with AsyncClient(settings) as client:

        async def idle() -> bool:
            stats = await client.stats()
            return stats.total("queued") == 0 and stats.total("running") == 0

        deadline = time.monotonic() + 60
        while not await idle():
            if time.monotonic() > deadline:
                raise AssertionError("the queue did not drain")
            await asyncio.sleep(0.2)


async def test_wait_replicas_raises_not_replicated_when_no_replica_confirms(
    ha: HaCluster,
) -> None:
    settings = ha_settings(ha.url(), wait_replicas=1, wait_timeout_ms=200)
    replica = next(n for n in ha.nodes if n is not ha.primary())
    with Client(settings) as client:
        client.submit({"prompt": "a lighthouse"}, service="a1111")  # confirmed: the replica is up
        replica.kill()
        with pytest.raises(NotReplicated, match="only 0 of 1 replica") as caught:
            client.submit({"prompt": "a lighthouse"}, service="a1111")
        # The write is on the primary all the same; the caller holds its id.
        assert client.status(caught.value.job_id).position == 1
