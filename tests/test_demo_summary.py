"""The headless demo's summary of the jobs that waited for a model no machine had: what counts
as the story told right, and what the verdict flags (the end-to-end run is in test_demo.py)."""

from __future__ import annotations

from fleetq.demo.arrival import ModelArrival
from fleetq.demo.summary import summarize
from fleetq.fleet import FleetView
from fleetq.model import Attempt, JobState, JobStatus

MODEL = "sd35_large.safetensors"
REASON = f"needs checkpoint {MODEL}"
START_MS = 1_800_000_000_000
ARRIVED_MS = START_MS + 8_000
END_MS = START_MS + 20_000


def status(n: int, state: JobState, started_ms: int | None = None) -> JobStatus:
    """Job ``j<n>`` submitted at the start; ``started_ms``: its one attempt on demo-gpu-01."""
    timeline = () if started_ms is None else (
        Attempt(1, "demo-gpu-01", 0, started_ms, started_ms + 2_000, "completed", None),
    )  # fmt: skip
    return JobStatus(
        id=f"j{n}", service="comfyui", state=state, priority=0, position=None, progress=0.0,
        progress_text="", attempts=len(timeline), max_attempts=3, claims=len(timeline),
        lost_leases=0, host=None, gpu=None, error=None, submitted_ms=START_MS,
        enqueued_ms=START_MS, started_ms=started_ms, finished_ms=None, ready_ms=None,
        timeout_ms=120_000, cancel_requested=False, metadata={}, outputs=(), timeline=timeline,
    )  # fmt: skip


def arrival(reasons: list[str | None], at_ms: int | None = ARRIVED_MS) -> ModelArrival:
    ids = [f"j{n}" for n in range(len(reasons))]
    found = ModelArrival(MODEL, "demo-gpu-01", ("http://127.0.0.1:1",), (MODEL,), job_ids=ids)
    found.reasons_before = dict(zip(ids, reasons, strict=True))
    found.at_ms = at_ms
    return found


def summary_of(statuses: list[JobStatus], waited: ModelArrival) -> tuple[bool, str]:
    jobs = [("new-model", s) for s in statuses] + [
        ("short", status(99, JobState.COMPLETED, START_MS + 100))
    ]
    done = summarize(jobs, FleetView(()), (START_MS, END_MS), set(), waited)
    return done.ok, done.render()


def test_jobs_that_waited_for_their_model_then_ran_are_reported() -> None:
    statuses = [status(n, JobState.COMPLETED, ARRIVED_MS + 1_500 * n) for n in range(3)]
    ok, text = summary_of(statuses, arrival([REASON] * 3))
    assert ok, text
    assert f"3 jobs needed {MODEL}, which no machine had" in text
    assert f'before: 3 of 3 reported unschedulable ("{REASON}")' in text
    assert "at 8 s: added to demo-gpu-01, which read its capabilities again" in text
    assert "after: completed 3 of 3, none started before it arrived" in text
    assert "verdict: the fleet did its work" in text


def test_a_job_that_started_before_its_model_arrived_is_a_problem() -> None:
    early = status(0, JobState.COMPLETED, ARRIVED_MS - 1)
    statuses = [early, status(1, JobState.COMPLETED, ARRIVED_MS + 500)]
    ok, text = summary_of(statuses, arrival([REASON, REASON]))
    assert not ok
    assert f"1 job(s) needing {MODEL} started before any machine had it" in text
    assert "completed 2 of 2, 1 started before it arrived" in text


def test_a_waiting_job_that_status_did_not_explain_is_a_problem() -> None:
    statuses = [status(n, JobState.COMPLETED, ARRIVED_MS + 500) for n in range(2)]
    ok, text = summary_of(statuses, arrival([REASON, None]))
    assert not ok
    assert f"1 job(s) needing {MODEL} were not reported unschedulable before it arrived" in text
    assert "before: 1 of 2 reported unschedulable" in text


def test_none_of_the_jobs_running_after_the_model_arrived_is_a_problem() -> None:
    statuses = [status(n, JobState.QUEUED) for n in range(2)]
    ok, text = summary_of(statuses, arrival([REASON, REASON]))
    assert not ok
    assert f"no job needing {MODEL} completed after it arrived" in text


def test_a_run_that_ends_before_the_model_arrives_says_so() -> None:
    statuses = [status(n, JobState.QUEUED) for n in range(2)]
    ok, text = summary_of(statuses, arrival([], at_ms=None))
    assert ok, text  # a short run is not a fault of the fleet
    assert "the run ended before it arrived" in text


def test_a_failed_delivery_is_a_problem() -> None:
    waited = arrival([REASON, REASON])
    waited.error = "Connection refused"
    ok, text = summary_of([status(n, JobState.QUEUED) for n in range(2)], waited)
    assert not ok
    assert "adding it to demo-gpu-01 failed: Connection refused" in text
    assert "adding sd35_large.safetensors to demo-gpu-01 failed" in text
