"""The Redis protocol, free of I/O: each transition is a :class:`Call` naming its Lua script, its
keys and arguments, and how to read the answer.

:mod:`fleetq.store` runs calls on a synchronous or an asyncio Redis client, so the client, the
command line, the supervisor and the dashboard share one definition of every transition.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Generic, TypeVar

from fleetq.classes import ServiceScope
from fleetq.config import NAME_PATTERN, Settings
from fleetq.errors import (
    FleetqError,
    InvalidArgument,
    InvalidPriority,
    InvalidTransition,
    JobNotFound,
    OutputTooLarge,
    PayloadTooLarge,
    StaleLease,
    UnknownService,
)
from fleetq.eta import ClassRow, EtaRead
from fleetq.identity import MAX_IDENTITY
from fleetq.inputs import manifest_json
from fleetq.keys import TERMINAL_STATES, Keys
from fleetq.model import (
    Attempt,
    ClaimedJob,
    FaultKind,
    JobError,
    JobSpec,
    JobState,
    JobStatus,
    OutputFile,
    ServiceStats,
    Stats,
    TenantStats,
)
from fleetq.tenants import DEFAULT_TENANT
from fleetq.validation import PRIORITY_MAX, PRIORITY_MIN

T = TypeVar("T")
Arg = str | bytes | int | float

#: Job hash fields read for a status or a listing (never the workflow, which may be megabytes).
STATUS_FIELDS = (
    "id", "service", "state", "priority", "progress", "progress_text", "attempts",
    "max_attempts", "claims", "lost", "infra", "host", "gpu", "error", "submitted_ms",
    "enqueued_ms", "started_ms", "finished_ms", "ready_ms", "timeout_ms", "cancel_requested",
    "metadata",
    "outputs", "timeline", "class", "tenant",
)  # fmt: skip
LIST_STATES = ("queued", "running", *TERMINAL_STATES)
PROMOTE_BATCH = 100
#: The members of a supervisor's signal (``Keys.signal``), as the scripts write them: read the
#: streams it follows, or check the gate (drains) again.
SIGNAL_STREAMS = "streams"
SIGNAL_GATE = "gate"


@dataclass(frozen=True)
class Call(Generic[T]):
    """One script invocation and the parser of its reply."""

    script: str
    keys: tuple[str, ...]
    args: tuple[Arg, ...]
    parse: Callable[[Any], T]


@dataclass(frozen=True)
class Bumped:
    """What a relative bump did: the priority before and after, and the queue position
    (0 = next; None while the job waits out a retry backoff)."""

    old_priority: int
    priority: int
    position: int | None


@dataclass(frozen=True)
class SubmitOutcome:
    job_id: str
    created: bool
    position: int | None


@dataclass(frozen=True)
class ClaimOutcome:
    job: ClaimedJob | None
    drained: bool = False
    #: When nothing was claimable but a retry becomes due: how long until then (ms).
    next_ready_in_ms: int | None = None
    #: When nothing was claimable: the requested services that are paused.
    paused: tuple[str, ...] = ()
    #: Services whose requirement classes changed since the claimer's scope: reload, retry.
    stale_classes: tuple[str, ...] = ()
    #: The job was taken over a better one because it uses the GPU's warm model.
    for_affinity: bool = False


@dataclass(frozen=True)
class PreviewWrite:
    """What a preview write did: stored, or refused for its size (over ``preview_max_bytes``)."""

    stored: bool
    size: int
    #: When it was stored (Redis clock, ms); None when refused.
    at_ms: int | None = None


@dataclass(frozen=True)
class ReapOutcome:
    ran: bool
    requeued: int = 0
    failed: int = 0
    cancelled: int = 0
    pruned: int = 0
    grace_until_ms: int | None = None


def text(value: Any) -> str:
    """Decode one reply value (redis-py gives bytes) to text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    if value is None or value is False or value in (b"", ""):
        return None
    return int(float(text(value)))


def _opt_float(value: Any) -> float | None:
    raw = text(value)
    return float(raw) if raw else None


def _tenant_stats(flat: Any) -> tuple[TenantStats, ...]:
    """Rows of the stats script: tenant, queued, running, weight ('' = the default, 1)."""
    return tuple(
        TenantStats(
            tenant=text(flat[i]),
            queued=int(flat[i + 1]),
            running=int(flat[i + 2]),
            weight=float(text(flat[i + 3]) or 1.0),
        )
        for i in range(0, len(flat) - 3, 4)
    )


def _position(value: Any) -> int | None:
    pos = int(value)
    return None if pos < 0 else pos


class Protocol:
    """Builds the :class:`Call` of every transition for one fleet (one namespace)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.namespace)
        #: The last page listed of each job state, by raw row (see list_jobs): at most
        #: one page per state.
        self._pages: dict[str, _Page] = {}

    def _base(self) -> list[Arg]:
        return [self.keys.prefix, self.settings.events_maxlen]

    # -- client side -------------------------------------------------------------------------

    def submit(self, spec: JobSpec, job_id: str) -> Call[SubmitOutcome]:
        k = self.keys
        svc = spec.service
        keys = [
            k.class_queue(svc, spec.class_id), k.waiting(svc), k.job(job_id), k.seq, k.services,
            k.inputs(job_id), k.classes(svc), k.class_version(svc),
        ]  # fmt: skip
        if spec.idempotency_key:
            keys.append(k.idempotency(spec.idempotency_key))
        args = [
            *self._base(), job_id, spec.service, spec.workflow_json, spec.priority,
            spec.max_attempts, spec.timeout_ms, spec.metadata_json, spec.idempotency_key or "",
            spec.tenant, "1" if self.settings.fair_share else "0",
            spec.class_id, spec.requirements_json if spec.class_id else "",
            self.settings.max_input_bytes, manifest_json(spec.inputs),
            *(f.data for f in spec.inputs),
        ]  # fmt: skip

        def parse(reply: Any) -> SubmitOutcome:
            kind = text(reply[0])
            if kind == "collision":
                raise _IdCollision(job_id)
            if kind == "too_large":
                raise PayloadTooLarge(
                    f"input files of the job are {int(reply[1])} bytes; the cap is "
                    f"{self.settings.max_input_bytes} (FLEETQ_MAX_INPUT_BYTES)"
                )
            return SubmitOutcome(text(reply[1]), kind == "created", _position(reply[2]))

        return Call("submit", tuple(keys), tuple(args), parse)

    def status(self, job_id: str) -> Call[JobStatus]:
        def parse(reply: Any) -> JobStatus:
            if reply and text(reply[0]) == "missing":
                raise JobNotFound(job_id)
            end = 1 + len(STATUS_FIELDS)
            status = status_from_row(reply[1:end], reply[0])
            canonical = text(reply[end]) if len(reply) > end else ""
            if not canonical:
                return status
            try:
                requirements = json.loads(canonical)
            except ValueError:
                return status
            if not isinstance(requirements, dict):
                return status
            return replace(status, requirements=requirements)

        return Call(
            "status",
            (self.keys.job(job_id),),
            (*self._base(), job_id, *STATUS_FIELDS),
            parse,
        )

    def eta(self, job_id: str) -> Call[EtaRead | None]:
        """What the ETA of a queued job is computed from (:func:`fleetq.eta.estimate_from`);
        None when the job is not queued."""

        def parse(reply: Any) -> EtaRead | None:
            kind = text(reply[0])
            if kind == "missing":
                raise JobNotFound(job_id)
            if kind != "queued":
                return None
            rows = reply[5:]
            classes = tuple(
                ClassRow(
                    text(rows[i]), int(rows[i + 1]), _opt_float(rows[i + 2]), text(rows[i + 3])
                )
                for i in range(0, len(rows) - 3, 4)
            )
            return EtaRead(int(reply[1]), text(reply[2]), text(reply[3]), _opt_float(reply[4]),
                           classes)  # fmt: skip

        return Call("eta", (self.keys.job(job_id),), (*self._base(), job_id), parse)

    def list_jobs(self, state: str, services: Sequence[str], limit: int) -> Call[list[JobStatus]]:
        if state not in LIST_STATES:
            raise InvalidArgument(f"state must be one of {', '.join(LIST_STATES)}, not {state!r}")
        if not 1 <= limit <= 10_000:
            raise InvalidArgument(f"limit must be 1..10000, not {limit}")

        def parse(reply: Any) -> list[JobStatus]:
            # A row equal, value for value, to one of the previous page of this state parses
            # to the same (immutable) status: a dashboard lists the same page every second,
            # and most of a queue's page does not change between two reads. A running job's
            # row changes with each progress report, and only there: the status of the
            # previous page, with the new progress.
            before, before_progress, timelines = self._pages.get(state, _EMPTY_PAGE)
            if len(timelines) > 2 * len(reply) + 16:  # bounded: about a page's worth
                timelines = {}
            page: dict[tuple[Any, ...], JobStatus] = {}
            but_progress: dict[tuple[Any, ...], JobStatus] = {}
            rows = []
            for row in reply:
                if row[1]:  # the job expired between index and hash (no id)
                    key = tuple(row)
                    rest = key[:_ROW_PROGRESS] + key[_ROW_PROGRESS + 2 :]
                    status = before.get(key)
                    if status is None:
                        status = before_progress.get(rest)
                        if status is None:
                            status = status_from_row(row[1:], row[0], timelines)
                        else:
                            status = _with_progress(
                                status, row[_ROW_PROGRESS], row[_ROW_PROGRESS + 1]
                            )
                    page[key] = status
                    but_progress[rest] = status
                    rows.append(status)
            self._pages[state] = (page, but_progress, timelines)
            return rows

        args = (*self._base(), state, limit, len(STATUS_FIELDS), *STATUS_FIELDS, *services)
        return Call("list_jobs", (self.keys.services,), args, parse)

    def stats(self, services: Sequence[str], window_ms: int = 60_000) -> Call[Stats]:
        def parse(reply: Any) -> Stats:
            rows = []
            for row in reply[2:]:
                rows.append(
                    ServiceStats(
                        service=text(row[0]),
                        queued=int(row[1]) + int(row[2]),
                        delayed=int(row[2]),
                        running=int(row[3]),
                        completed=int(row[4]),
                        failed=int(row[5]),
                        cancelled=int(row[6]),
                        completed_last_minute=int(row[7]),
                        failed_last_minute=int(row[8]),
                        oldest_enqueued_ms=_opt_int(row[9]),
                        paused=bool(int(row[10])),
                        tenants=_tenant_stats(row[11] if len(row) > 11 else []),
                    )
                )
            drained = tuple(sorted(text(t) for t in reply[1]))
            return Stats(now_ms=int(reply[0]), services=tuple(rows), drained=drained)

        k = self.keys
        return Call(
            "stats",
            (k.paused, k.drained, k.services),
            (*self._base(), window_ms, *services),
            parse,
        )

    def cancel(self, job_id: str, by: str) -> Call[str]:
        """Returns ``"cancelled"`` (it was queued) or ``"cancelling"`` (running; GPU told)."""

        def parse(reply: Any) -> str:
            kind = text(reply[0])
            if kind == "missing":
                raise JobNotFound(job_id)
            if kind == "terminal":
                state = text(reply[1])
                if state == "cancelled":
                    return "cancelled"
                raise InvalidTransition(job_id, state, "cancel")
            return kind

        return Call(
            "cancel",
            (self.keys.job(job_id),),
            (*self._base(), job_id, self._retention_ms(), _who(by)),
            parse,
        )

    def bump(
        self, job_id: str, priority: int, request_id: str | None = None, by: str = ""
    ) -> Call[int | None]:
        """Returns the new queue position (None while it waits out a retry backoff, or when a
        resend finds the job claimed since). ``request_id`` (random when left out) lets the
        script answer a resend whose first reply was lost like the first. ``by`` (who asked)
        goes to the event log and the job's own stream."""

        def parse(reply: Any) -> int | None:
            kind = text(reply[0])
            if kind == "missing":
                raise JobNotFound(job_id)
            if kind == "state":
                raise InvalidTransition(job_id, text(reply[1]), "bump")
            return _position(reply[2])

        args = (*self._base(), job_id, priority, request_id or _request_id(), _who(by))
        return Call("bump", (self.keys.job(job_id),), args, parse)

    def bump_by(
        self, job_id: str, delta: int, by: str = "", request_id: str | None = None
    ) -> Call[Bumped]:
        """Move a queued job's priority by ``delta`` atomically (clamped to the priority range);
        returns the new priority and queue position. ``by`` (who asked) goes to the event log
        and the job's own stream. ``request_id`` (random when left out) keeps a resend whose
        first reply was lost from applying the change twice."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise InvalidPriority(f"a priority change must be an integer, not {delta!r}")
        if abs(delta) > PRIORITY_MAX - PRIORITY_MIN:
            raise InvalidPriority(
                f"a priority change of {delta} is out of range "
                f"{PRIORITY_MIN - PRIORITY_MAX}..{PRIORITY_MAX - PRIORITY_MIN}"
            )

        def parse(reply: Any) -> Bumped:
            kind = text(reply[0])
            if kind == "missing":
                raise JobNotFound(job_id)
            if kind == "state":
                raise InvalidTransition(job_id, text(reply[1]), "bump")
            return Bumped(int(text(reply[1])), int(reply[2]), _position(reply[3]))

        args = (*self._base(), job_id, delta, _who(by), request_id or _request_id())
        return Call("bump_by", (self.keys.job(job_id),), args, parse)

    def retry(self, job_id: str, request_id: str | None = None, by: str = "") -> Call[int | None]:
        """Returns the queue position. ``request_id`` (random when left out) lets the script
        answer a resend whose first reply was lost like the first. ``by`` (who asked) goes to
        the event log and the job's own stream."""

        def parse(reply: Any) -> int | None:
            kind = text(reply[0])
            if kind == "missing":
                raise JobNotFound(job_id)
            if kind == "state":
                raise InvalidTransition(job_id, text(reply[1]), "retry")
            return _position(reply[1])

        args = (*self._base(), job_id, request_id or _request_id(), _who(by))
        return Call("retry", (self.keys.job(job_id),), args, parse)

    def set_paused(
        self, service: str, paused: bool, request_id: str | None = None, by: str = ""
    ) -> Call[bool]:
        """True when the state changed (a resend of an applied change answers True again).
        ``by`` (who asked) goes to the event log and is kept as the last change's operator.

        ``service`` must be registered in the settings or already known to the fleet (jobs
        were submitted to it); anything else raises :class:`UnknownService`, writing nothing.
        """
        if not isinstance(service, str) or not NAME_PATTERN.fullmatch(service):
            raise InvalidArgument(
                f"service name {service!r:.80} must be lowercase letters, digits or _.- "
                "(at most 63 characters)"
            )
        registered = service in self.settings.services

        def parse(reply: Any) -> bool:
            if int(reply) < 0:
                known = ", ".join(self.settings.services)
                raise UnknownService(
                    f"unknown service {service!r}: neither registered ({known}) "
                    "nor known to the fleet"
                )
            return bool(int(reply))

        k = self.keys
        args = (
            *self._base(), service, "1" if paused else "0", request_id or _request_id(),
            "1" if registered else "0", _who(by),
        )  # fmt: skip
        return Call(
            "set_paused",
            (k.paused, k.marker(service), k.queue(service), k.services, k.last_request),
            args,
            parse,
        )

    def set_drained(
        self, target: str, drained: bool, request_id: str | None = None, by: str = ""
    ) -> Call[bool]:
        """True when the state changed (a resend of an applied change answers True again).
        ``by`` (who asked) goes to the event log and is kept as the last change's operator."""
        flag = "1" if drained else "0"
        return Call(
            "set_drained",
            (self.keys.drained, self.keys.last_request),
            (*self._base(), target, flag, request_id or _request_id(), _who(by)),
            lambda reply: bool(int(reply)),
        )

    def send_control(self, host: str, encoded_command: str) -> Call[str]:
        """Queue an operator command (JSON text) for one supervisor and signal it; returns
        the command's stream entry id."""
        return Call(
            "send_control",
            (self.keys.control(host), self.keys.signal(host)),
            (*self._base(), encoded_command),
            text,
        )

    # -- worker side -------------------------------------------------------------------------

    def claim(
        self,
        services: Sequence[str],
        host: str,
        gpu: int,
        token: str,
        lease_ms: int | None = None,
        scopes: Mapping[str, ServiceScope] | None = None,
        woken: str = "",
    ) -> Call[ClaimOutcome]:
        """Claim the best job of ``services`` this GPU may run. ``scopes`` names, per service,
        the requirement classes the GPU meets (:mod:`fleetq.classes`); a service without one is
        claimed from in every class (a claimer that knows nothing of capabilities). ``woken``:
        the wake channel whose wake-up this claim uses (its marker is set again while jobs
        remain there)."""
        if not services:
            raise InvalidArgument("claim needs at least one service")
        k = self.keys
        keys = [k.leases, k.paused, k.drained]
        for svc in services:
            keys += [k.delayed(svc), k.running(svc), k.waiting(svc), k.class_version(svc)]
        lease = self.settings.lease_ms if lease_ms is None else lease_ms
        s = self.settings
        window = s.affinity_priority_window if s.affinity else -1
        args: list[Arg] = [
            *self._base(), token, lease, host, gpu, PROMOTE_BATCH, window,
            round(s.affinity_max_wait_s * 1000), woken, len(services),
        ]  # fmt: skip
        for svc in services:
            scope = (scopes or {}).get(svc)
            args += [svc, *(scope.claim_args() if scope is not None else ("", -1))]

        def parse(reply: Any) -> ClaimOutcome:
            kind = text(reply[0])
            if kind == "drained":
                return ClaimOutcome(None, drained=True)
            if kind == "classes":
                return ClaimOutcome(None, stale_classes=tuple(text(name) for name in reply[1:]))
            if kind == "empty":
                ready = _opt_int(reply[1])
                wait = None if ready is None else max(0, ready - int(reply[2]))
                paused = tuple(text(name) for name in reply[3:])
                return ClaimOutcome(None, next_ready_in_ms=wait, paused=paused)
            return ClaimOutcome(
                ClaimedJob(
                    id=text(reply[1]),
                    service=text(reply[2]),
                    token=text(reply[3]),
                    workflow=json.loads(text(reply[4])),
                    priority=int(reply[5]),
                    attempts=int(reply[6]),
                    max_attempts=int(reply[7]),
                    claims=int(reply[8]),
                    timeout_ms=int(reply[9]),
                    metadata=json.loads(text(reply[10]) or "{}"),
                    submitted_ms=int(reply[11]),
                    class_id=text(reply[12]),
                ),
                for_affinity=text(reply[13]) == "1",
            )

        return Call("claim", tuple(keys), tuple(args), parse)

    def renew(
        self,
        job_id: str,
        token: str,
        progress: float | None = None,
        progress_text: str = "",
        lease_ms: int | None = None,
    ) -> Call[bool]:
        """Extend the lease; returns True when a cancel of the job was requested."""
        lease = self.settings.lease_ms if lease_ms is None else lease_ms
        prog = "" if progress is None else f"{min(1.0, max(0.0, progress)):.4f}"

        def parse(reply: Any) -> bool:
            if text(reply[0]) == "stale":
                raise StaleLease(job_id, text(reply[1]))
            return bool(int(reply[1]))

        return Call(
            "renew",
            (self.keys.job(job_id), self.keys.leases),
            (*self._base(), job_id, token, lease, prog, progress_text[:200]),
            parse,
        )

    def set_preview(
        self, job_id: str, token: str, data: bytes, content_type: str
    ) -> Call[PreviewWrite]:
        """Keep ``data`` as the running job's latest live preview (see :mod:`fleetq.previews`).
        Raises :class:`StaleLease` when the job no longer runs under ``token``."""
        s = self.settings

        def parse(reply: Any) -> PreviewWrite:
            kind = text(reply[0])
            if kind == "stale":
                raise StaleLease(job_id, text(reply[1]))
            if kind == "too_large":
                return PreviewWrite(False, int(reply[1]))
            return PreviewWrite(True, len(data), int(reply[1]))

        return Call(
            "preview",
            (self.keys.job(job_id), self.keys.preview(job_id)),
            (
                *self._base(),
                job_id,
                token,
                s.preview_ttl_ms,
                s.preview_max_bytes,
                content_type[:100],
                data,
            ),
            parse,
        )

    def complete(
        self, job_id: str, token: str, files: Sequence[OutputFile], inline: Sequence[bytes] = ()
    ) -> Call[None]:
        """Finish a job with the records of its stored outputs (``files``); ``inline`` holds
        the bytes of every output when the store is Redis, else nothing."""
        if inline and len(inline) != len(files):
            raise ValueError("inline output bytes must match the records one to one")
        manifest = json.dumps(
            [
                {
                    "filename": f.filename,
                    "content_type": f.content_type,
                    "size": f.size,
                    "sha256": f.sha256,
                    "location": f.location,
                }
                for f in files
            ]
        )
        s = self.settings

        def parse(reply: Any) -> None:
            kind = text(reply[0])
            if kind == "stale":
                raise StaleLease(job_id, text(reply[1]))
            if kind == "too_large":
                raise OutputTooLarge(
                    f"outputs of job {job_id} are {int(reply[1])} bytes; "
                    f"the cap is {s.max_output_bytes} (FLEETQ_MAX_OUTPUT_BYTES)"
                )

        k = self.keys
        return Call(
            "complete",
            (k.job(job_id), k.leases, k.outputs(job_id)),
            (
                *self._base(),
                job_id,
                token,
                self._retention_ms(),
                s.output_ttl_s * 1000,
                s.max_output_bytes,
                manifest,
                *inline,
            ),
            parse,
        )

    def fail(
        self,
        job_id: str,
        token: str,
        kind: FaultKind,
        error: JobError,
        attempts_so_far: int = 0,
    ) -> Call[str]:
        """Returns ``failed``, ``retrying``, ``requeued`` or ``cancelled``."""

        def parse(reply: Any) -> str:
            outcome = text(reply[0])
            if outcome == "stale":
                raise StaleLease(job_id, text(reply[1]))
            return outcome

        return Call(
            "fail",
            (self.keys.job(job_id), self.keys.leases),
            (
                *self._base(),
                job_id,
                token,
                kind.value,
                error.to_json(),
                self.backoff_ms(attempts_so_far),
                self._retention_ms(),
                self.settings.max_infra_faults,
            ),
            parse,
        )

    def ack_cancel(self, job_id: str, token: str) -> Call[None]:
        def parse(reply: Any) -> None:
            if text(reply[0]) == "stale":
                raise StaleLease(job_id, text(reply[1]))

        return Call(
            "ack_cancel",
            (self.keys.job(job_id), self.keys.leases),
            (*self._base(), job_id, token, self._retention_ms()),
            parse,
        )

    def reap(
        self,
        owner: str,
        lock_ms: int = 1_000,
        batch: int = 200,
        gap_ms: int | None = None,
        grace_ms: int | None = None,
    ) -> Call[ReapOutcome]:
        """Recover expired leases. If no reaper ran for ``gap_ms`` (default a third of a lease,
        at least 2 s), Redis or the whole fleet was away: wait ``grace_ms`` (default one lease)
        so that live pullers renew first."""
        k = self.keys
        lease_ms = self.settings.lease_ms
        gap = max(2_000, lease_ms // 3) if gap_ms is None else gap_ms

        def parse(reply: Any) -> ReapOutcome:
            kind = text(reply[0])
            if kind == "busy":
                return ReapOutcome(ran=False)
            if kind == "grace":
                return ReapOutcome(ran=False, grace_until_ms=int(reply[1]))
            return ReapOutcome(True, *(int(x) for x in reply[1:5]))

        return Call(
            "reap",
            (k.leases, k.reaper_lock, k.reaper_last, k.reaper_grace, k.services),
            (
                *self._base(),
                owner,
                lock_ms,
                batch,
                self.settings.max_lost_leases,
                self._retention_ms(),
                gap,
                lease_ms if grace_ms is None else grace_ms,
            ),
            parse,
        )

    # -- helpers ------------------------------------------------------------------------------

    def backoff_ms(self, attempts_so_far: int) -> int:
        """Exponential backoff with jitter: base * 2^attempts, capped, times 0.5..1."""
        return round(self.settings.job_retry_backoff.delay_s(attempts_so_far + 1) * 1000)

    def _retention_ms(self) -> int:
        return self.settings.retention_s * 1000


def _who(by: str) -> str:
    """Who asked, as kept in the audit trail: text, cut to a bounded length."""
    if not isinstance(by, str):
        raise InvalidArgument(f"who asked must be text, not {type(by).__name__}")
    return by[:MAX_IDENTITY]


def _request_id() -> str:
    """A random id for one request, so that its resend (same arguments) is recognised."""
    return secrets.token_hex(8)


class _IdCollision(FleetqError):
    """A freshly drawn job id already exists; the caller draws another."""


def parse_status(values: Mapping[str, Any], position: Any) -> JobStatus:
    """Build a :class:`JobStatus` from raw hash values (as in :data:`STATUS_FIELDS`)."""
    return status_from_row([values.get(name) for name in STATUS_FIELDS], position)


def status_from_row(
    row: Sequence[Any],
    position: Any,
    timelines: dict[str, tuple[Attempt, ...]] | None = None,
) -> JobStatus:
    """Build a :class:`JobStatus` from the raw values of :data:`STATUS_FIELDS`, in that order
    (a row of the ``list_jobs`` and ``status`` replies).

    A dashboard parses a page of a few hundred jobs every second: the values are decoded in
    one pass, into locals, and the usual empty JSON values are not parsed. ``timelines``:
    timelines already parsed, by their JSON text (and the place to keep this one's): a running
    job's row changes with each progress report, its timeline only when it is claimed again.
    """
    (
        job_id, service, state, priority, progress, progress_text, attempts, max_attempts,
        claims, lost, infra, host, gpu, error, submitted_ms, enqueued_ms, started_ms,
        finished_ms, ready_ms, timeout_ms, cancel_requested, metadata, outputs, timeline,
        class_id, tenant,
    ) = [
        raw.decode("utf-8", "replace") if raw.__class__ is bytes
        else None if raw is None or raw is False else str(raw)
        for raw in row
    ]  # fmt: skip
    job_state = JobState(state)
    return JobStatus(
        id=job_id or "",
        service=service or "",
        state=job_state,
        priority=int(priority or 0),
        position=_position(position) if job_state is JobState.QUEUED else None,
        progress=float(progress or 0.0),
        progress_text=progress_text or "",
        attempts=int(attempts or 0),
        max_attempts=int(max_attempts or 0),
        claims=int(claims or 0),
        lost_leases=int(lost or 0),
        infra_faults=int(infra or 0),
        host=host or None,
        gpu=_opt_int_text(gpu),
        error=JobError.from_json(error),
        submitted_ms=int(submitted_ms or 0),
        enqueued_ms=_opt_int_text(enqueued_ms),
        started_ms=_opt_int_text(started_ms),
        finished_ms=_opt_int_text(finished_ms),
        ready_ms=_opt_int_text(ready_ms),
        timeout_ms=int(timeout_ms or 0),
        cancel_requested=cancel_requested == "1",
        metadata={} if not metadata or metadata == "{}" else json.loads(metadata),
        outputs=() if not outputs or outputs == "[]" else _outputs(outputs),
        timeline=_timeline_of(timeline, timelines),
        class_id=class_id or "",
        tenant=tenant or DEFAULT_TENANT,
    )


#: A listed page (see Protocol.list_jobs): statuses by raw row, by raw row less its progress,
#: and the timelines parsed, by their JSON text.
_Page = tuple[
    dict[tuple[Any, ...], JobStatus],
    dict[tuple[Any, ...], JobStatus],
    dict[str, tuple[Attempt, ...]],
]
_EMPTY_PAGE: _Page = ({}, {}, {})
#: Where a listed row (its position, then STATUS_FIELDS) holds the progress; its text follows.
_ROW_PROGRESS = 1 + STATUS_FIELDS.index("progress")
assert STATUS_FIELDS.index("progress_text") == STATUS_FIELDS.index("progress") + 1
_STATUS_FIELD_NAMES = tuple(f.name for f in fields(JobStatus))


def _with_progress(status: JobStatus, progress: Any, progress_text: Any) -> JobStatus:
    """``dataclasses.replace(status, progress=..., progress_text=...)`` from the raw values,
    as status_from_row reads them, in a third of the time (a dashboard does this for every
    running job each second)."""
    progress, progress_text = [
        raw.decode("utf-8", "replace") if raw.__class__ is bytes
        else None if raw is None or raw is False else str(raw)
        for raw in (progress, progress_text)
    ]  # fmt: skip
    new = object.__new__(JobStatus)
    set_field = object.__setattr__
    for name in _STATUS_FIELD_NAMES:
        set_field(new, name, getattr(status, name))
    set_field(new, "progress", float(progress or 0.0))
    set_field(new, "progress_text", progress_text or "")
    return new


def _opt_int_text(value: str | None) -> int | None:
    return int(float(value)) if value else None


def _outputs(raw: str) -> tuple[OutputFile, ...]:
    return tuple(
        OutputFile(
            str(o.get("filename", "")),
            str(o.get("content_type", "")),
            int(o.get("size", 0)),
            str(o.get("sha256", "")),
            str(o.get("location", "")),
        )
        for o in json.loads(raw)
    )


def _timeline_of(
    raw: str | None, timelines: dict[str, tuple[Attempt, ...]] | None
) -> tuple[Attempt, ...]:
    if not raw or raw == "[]":
        return ()
    if timelines is None:
        return _timeline(raw)
    parsed = timelines.get(raw)
    if parsed is None:
        parsed = timelines[raw] = _timeline(raw)
    return parsed


def _timeline(raw: str) -> tuple[Attempt, ...]:
    return tuple(
        Attempt(
            claim=int(a.get("claim", 0)),
            host=str(a.get("host", "")),
            gpu=None if a.get("gpu") is None else int(a["gpu"]),
            started_ms=int(a.get("started_ms", 0)),
            ended_ms=None if a.get("ended_ms") is None else int(a["ended_ms"]),
            outcome=a.get("outcome"),
            detail=a.get("detail"),
        )
        for a in json.loads(raw)
        if isinstance(a, dict)
    )
