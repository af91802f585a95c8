"""What ``wait_replicas`` costs: latency of one submit and one complete with and without WAIT,
against a replica on the same machine (loopback), and with the Sentinel URL.

The numbers are printed (run with ``-s`` to see them); the test asserts only that WAIT is
confirmed every time while the replica is up, and that its cost stays far under its timeout.
"""

from __future__ import annotations

import statistics
import time
import uuid

import pytest
from ha_testkit import HaCluster

from fleetq import Client, Settings
from fleetq.model import Output
from fleetq.worker import WorkerQueue

pytestmark = pytest.mark.slow
ROUNDS = 400
BODY = {"prompt": "a lighthouse at dusk", "steps": 20}


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), statistics.mean(ordered), p99


async def measure(url: str, wait_replicas: int) -> tuple[list[float], list[float]]:
    settings = Settings(redis_url=url, namespace="cost-" + uuid.uuid4().hex[:8],
                        wait_replicas=wait_replicas, wait_timeout_ms=1_000)  # fmt: skip
    submits, completes = [], []
    with Client(settings) as client:
        for _ in range(20):  # warm the connection and the script cache
            client.submit(BODY, service="a1111")
        for _ in range(ROUNDS):
            started = time.perf_counter()
            client.submit(BODY, service="a1111")
            submits.append((time.perf_counter() - started) * 1000)
    queue = WorkerQueue(settings)
    try:
        for _ in range(ROUNDS + 20):
            job = (await queue.try_claim(["a1111"], "cost", 0)).job
            assert job is not None
            started = time.perf_counter()
            await queue.complete(job, [Output("a.png", "image/png", b"x" * 4096)])
            completes.append((time.perf_counter() - started) * 1000)
    finally:
        await queue.aclose()
    return submits, completes[20:]


async def test_wait_costs_one_replica_round_trip(ha: HaCluster) -> None:
    direct = ha.primary().url
    lines = []
    medians = {}
    for label, url in (("redis:// primary", direct), ("redis+sentinel://", ha.url())):
        for wait in (0, 1):
            submits, completes = await measure(url, wait)
            s50, smean, s99 = percentiles(submits)
            c50, cmean, c99 = percentiles(completes)
            medians[label, wait] = (s50, c50)
            lines.append(
                f"{label:18} wait_replicas={wait}: submit median {s50:.3f} ms, mean "
                f"{smean:.3f}, p99 {s99:.3f}; complete median {c50:.3f} ms, mean {cmean:.3f}, "
                f"p99 {c99:.3f}"
            )
    print("\n" + "\n".join(lines))
    for s50, c50 in medians.values():
        assert s50 < 50 and c50 < 50, "one loopback round trip, far under the 1 s timeout"
