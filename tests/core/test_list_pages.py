"""Listing the same page again (a dashboard does, every second) gives what Redis holds now:
statuses reused from the previous page only for rows that did not change."""

from __future__ import annotations

import json
from typing import Any

from fleetq import Client, Settings
from fleetq.protocol import STATUS_FIELDS, Protocol
from fleetq.worker import WorkerQueue


async def test_a_page_listed_again_shows_every_change(
    client: Client, worker: WorkerQueue, graph: dict[str, Any]
) -> None:
    ids = [client.submit(graph).id for _ in range(3)]
    claimed = (await worker.try_claim(["comfyui"], "h", 0)).job
    assert claimed is not None and claimed.id == ids[0]

    first_running = client.jobs("running")
    first_queued = client.jobs("queued")
    assert [(j.id, j.position) for j in first_queued] == [(ids[1], 0), (ids[2], 1)]

    await worker.renew(claimed, progress=0.5, progress_text="KSampler")
    client.bump(ids[2], 5)
    running = client.jobs("running")
    queued = client.jobs("queued")
    assert [(j.id, j.progress, j.progress_text) for j in running] == [(ids[0], 0.5, "KSampler")]
    assert running[0] != first_running[0]
    assert [(j.id, j.priority, j.position) for j in queued] == [(ids[2], 5, 0), (ids[1], 0, 1)]

    # Unchanged rows read the same again; a job gone from Redis is gone from the page.
    assert client.jobs("queued") == queued
    client.cancel(ids[1])
    assert [j.id for j in client.jobs("queued")] == [ids[2]]
    assert [j.id for j in client.jobs("cancelled")] == [ids[1]]


def test_a_changed_timeline_is_read_again() -> None:
    # A running job's row changes with each progress report; its timeline is parsed again
    # only when its text changes (a new claim), and then shows the new attempt.
    call = Protocol(Settings()).list_jobs("running", [], 10)

    def row(progress: str, attempts: list[dict[str, Any]]) -> list[Any]:
        values = {
            "id": b"j1", "service": b"comfyui", "state": b"running", "priority": b"0",
            "progress": progress.encode(), "attempts": b"0", "max_attempts": b"3",
            "claims": str(len(attempts)).encode(), "submitted_ms": b"1000",
            "timeout_ms": b"900000", "timeline": json.dumps(attempts).encode(),
        }  # fmt: skip
        return [-1, *(values.get(name) for name in STATUS_FIELDS)]

    first = [{"claim": 1, "host": "h", "gpu": 0, "started_ms": 2000}]
    second = [*first, {"claim": 2, "host": "k", "gpu": 1, "started_ms": 9000}]
    (a,) = call.parse([row("0.1", first)])
    (b,) = call.parse([row("0.2", first)])
    (c,) = call.parse([row("0.0", second)])
    assert (a.progress, b.progress, c.progress) == (0.1, 0.2, 0.0)
    assert [t.host for t in a.timeline] == [t.host for t in b.timeline] == ["h"]
    assert [(t.claim, t.host, t.gpu) for t in c.timeline] == [(1, "h", 0), (2, "k", 1)]


def test_a_row_changed_only_in_its_progress_reads_as_parsed_afresh() -> None:
    # The previous page's status is reused with the new progress only when nothing else in
    # the row changed: every field reads as a fresh parse of the row would read it.
    call = Protocol(Settings()).list_jobs("running", [], 10)
    base = {
        "id": b"j1", "service": b"comfyui", "state": b"running", "priority": b"2",
        "progress": b"0.1", "progress_text": b"KSampler", "attempts": b"1",
        "max_attempts": b"3", "claims": b"1", "host": b"h", "gpu": b"3",
        "submitted_ms": b"1000", "started_ms": b"2000", "timeout_ms": b"900000",
        "metadata": b'{"user": "ana"}', "timeline": b"[]", "tenant": b"studio",
    }  # fmt: skip

    def row(**changes: bytes | None) -> list[Any]:
        values = {**base, **changes}
        return [-1, *(values.get(name) for name in STATUS_FIELDS)]

    def fresh(r: list[Any]) -> Any:
        (status,) = Protocol(Settings()).list_jobs("running", [], 10).parse([r])
        return status

    call.parse([row()])
    for changes in (
        {"progress": b"0.5", "progress_text": b"VAEDecode"},
        {"progress": b"0.75"},
        {"progress": None, "progress_text": None},
        {"progress": b"0.8", "host": b"k"},  # not only the progress: parsed anew
        {"progress": b"0.9", "metadata": b'{"user": "bo"}'},
    ):
        r = row(**changes)
        (listed,) = call.parse([r])
        assert listed == fresh(r)
        assert (listed.progress, listed.progress_text, listed.host, listed.metadata) == (
            fresh(r).progress, fresh(r).progress_text, fresh(r).host, fresh(r).metadata,
        )  # fmt: skip
