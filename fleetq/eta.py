"""The estimated start and finish of a queued job. No I/O: the numbers come from one read-only
script (``lua/eta.lua``: the jobs ahead in each requirement class, the run times on record)
and from the fleet records (which live GPUs can run which classes, which of them are busy).

The model. A queued job waits for the GPUs able to run it (``gpus``, of which ``busy`` run a
job now). It competes with the queued jobs that rank before it in every requirement class
those GPUs serve; a class that other GPUs serve too is shared out in proportion, so only
``ahead x shared / servers`` of its jobs count. With ``k`` jobs counted ahead, each taking the
mean run time ``m`` of the work ahead (claim to finish, model loads included):

- ``k < idle`` (idle = gpus - busy): an idle GPU takes it at once;
- otherwise the free-ups are taken in turn: the running jobs end at the order statistics of a
  uniform spread over one run time (the r-th of ``busy`` at ``m x (r + 1) / (busy + 1)``), the
  GPUs that were idle end their first job at ``m``, and every later round adds ``m``. With
  ``q, r = divmod(k - idle, gpus)``: ``wait = q x m + (m x (r + 1) / (busy + 1) if r < busy
  else m)``.

The finish is the start plus the mean run time of the job's own class. Run times are a bounded
record per (service, class), updated in O(1) by each completion (:data:`ALPHA`). The estimate
is a mean-value one: it ignores priority changes and submits still to come, and heavy-tailed
run times make single estimates noisy; ``scripts/bench_fleet_sim.py`` measures its error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleetq.errors import InvalidArgument
from fleetq.records import GpuHealth, GpuRecord
from fleetq.requirements import Capabilities, Requirements, meets

if TYPE_CHECKING:  # fleetq.fleet imports the protocol, which imports this module
    from fleetq.fleet import FleetView

#: Weight of the newest run in a class's mean run time once it has ``1 / ALPHA`` runs (before
#: that, the plain mean of the runs so far): about the last 32 runs count.
ALPHA = 1 / 32
#: The run time assumed for a class (and a service) with no completed run on record.
DEFAULT_RUN_MS = 10_000


@dataclass(frozen=True)
class ClassLoad:
    """One requirement class that competes for the GPUs able to run the job (its own too)."""

    class_id: str
    #: Its queued jobs that rank before the job (for the job's own class: its rank).
    ahead: int
    #: Live GPUs able to run this class.
    servers: int
    #: Of them, those that can also run the job.
    shared: int
    #: Mean run time of the class (claim to finish), None when none is on record.
    mean_run_ms: float | None


@dataclass(frozen=True)
class Eta:
    """When a queued job is expected to start and finish (Redis clock, ms)."""

    #: When the estimate was made.
    now_ms: int
    start_ms: int
    finish_ms: int
    #: Jobs counted ahead of it on the GPUs able to run it.
    ahead: float
    #: GPUs able to run it, and how many of them were running a job.
    gpus: int
    busy: int
    #: The run time assumed for the job itself.
    run_ms: int
    #: No run of the service was on record: the run times are :data:`DEFAULT_RUN_MS`, a guess.
    guess: bool = False

    def to_dict(self) -> dict[str, float | int]:
        """The JSON form (gateway, ``fleetq status --json``)."""
        return {
            "now_ms": self.now_ms,
            "start_ms": self.start_ms,
            "finish_ms": self.finish_ms,
            "ahead": round(self.ahead, 2),
            "gpus": self.gpus,
            "busy": self.busy,
            "run_ms": self.run_ms,
            "guess": self.guess,
        }


def updated_mean(mean_ms: float | None, runs: int, run_ms: float) -> tuple[float, int]:
    """The class's mean run time after one more run: the plain mean of the first ``1 / ALPHA``
    runs, then an exponentially weighted one (the Lua twin is ``lib/runtimes.lua``)."""
    runs += 1
    if mean_ms is None:
        return float(run_ms), runs
    weight = max(ALPHA, 1 / runs)
    return mean_ms + weight * (run_ms - mean_ms), runs


def estimate(
    now_ms: int,
    own_class: str,
    loads: Sequence[ClassLoad],
    gpus: int,
    busy: int,
    default_run_ms: float | None = None,
) -> Eta | None:
    """The ETA of a queued job of class ``own_class``; None when no live GPU can run it.

    ``loads`` lists the classes served by the job's GPUs (its own class among them); ``gpus``
    is how many live GPUs can run it and ``busy`` how many of them run a job now.
    ``default_run_ms`` is the run time for a class without history (the service's mean, say);
    without it :data:`DEFAULT_RUN_MS`.
    """
    if gpus <= 0:
        return None
    busy = max(0, min(busy, gpus))
    fallback = float(default_run_ms) if default_run_ms else float(DEFAULT_RUN_MS)
    guess = not default_run_ms and not any(c.mean_run_ms for c in loads)
    own = next((c for c in loads if c.class_id == own_class), None)
    own_ms = own.mean_run_ms if own is not None and own.mean_run_ms else fallback
    ahead = 0.0
    work_ms = 0.0
    for c in loads:
        if c.ahead <= 0 or c.servers <= 0:
            continue
        share = 1.0 if c.class_id == own_class else min(1.0, max(0, c.shared) / c.servers)
        count = c.ahead * share
        ahead += count
        work_ms += count * (c.mean_run_ms or own_ms)
    mean_ms = work_ms / ahead if ahead > 0 else own_ms
    wait_ms = _wait_ms(math.floor(ahead + 0.5), gpus, busy, mean_ms)
    start = now_ms + round(wait_ms)
    return Eta(now_ms, start, start + round(own_ms), ahead, gpus, busy, round(own_ms), guess)


def _wait_ms(ahead: int, gpus: int, busy: int, mean_ms: float) -> float:
    idle = gpus - busy
    if ahead < idle:
        return 0.0
    rounds, r = divmod(ahead - idle, gpus)
    in_round = mean_ms * (r + 1) / (busy + 1) if r < busy else mean_ms
    return rounds * mean_ms + in_round


@dataclass(frozen=True)
class ClassRow:
    """One requirement class of the service, as ``lua/eta.lua`` reads it for a job."""

    class_id: str
    #: Its queued jobs ranked before the job (the job's own class: its rank; -1: none, the job
    #: waits out a retry backoff).
    ahead: int
    mean_run_ms: float | None
    #: Its canonical requirements (``Requirements.canonical``); '' for the empty class.
    requirements: str = ""


@dataclass(frozen=True)
class EtaRead:
    """What ``lua/eta.lua`` read for one queued job."""

    now_ms: int
    service: str
    class_id: str
    #: The service's mean run time (every class), None when none is on record.
    service_mean_ms: float | None
    #: Every requirement class of the service, the job's own first.
    classes: tuple[ClassRow, ...]


class _Serving:
    """Which classes a GPU can run, from the capabilities its supervisor published: a digest
    per service in its record (``capabilities``), the documents by digest. A GPU without
    published capabilities claims from every class (as a claimer that knows none does)."""

    def __init__(self, read: EtaRead, documents: Mapping[str, Capabilities]) -> None:
        self.service = read.service
        self.documents = documents
        self.requirements: dict[str, Requirements] = {}
        for row in read.classes:
            if row.class_id and row.requirements:
                try:
                    self.requirements[row.class_id] = Requirements.from_canonical(row.requirements)
                except (ValueError, TypeError, InvalidArgument):
                    continue  # unreadable: treated as servable by all, like the empty class
        self._by_digest: dict[str, frozenset[str]] = {}

    def classes(self, gpu: GpuRecord) -> frozenset[str] | None:
        """The classes ``gpu`` can run (None: every class)."""
        digest = gpu.capabilities.get(self.service)
        capabilities = self.documents.get(digest) if isinstance(digest, str) else None
        if capabilities is None or not isinstance(digest, str):
            return None
        served = self._by_digest.get(digest)
        if served is None:
            served = frozenset(
                [""] + [c for c, r in self.requirements.items() if meets(r, capabilities) is None]
            )
            self._by_digest[digest] = served
        return served

    def serves(self, served: frozenset[str] | None, class_id: str) -> bool:
        return served is None or class_id in served or class_id not in self.requirements


def _claims(gpu: GpuRecord, service: str) -> bool:
    """The GPU claims from ``service``, now or once a passing state is over: it lists the
    service, is not drained, and is not unhealthy or lost (a busy backend or a puller between
    jobs still counts)."""
    if service not in gpu.services:
        return False
    return not gpu.drained and gpu.health not in (GpuHealth.UNHEALTHY, GpuHealth.LOST)


def estimate_from(
    read: EtaRead, fleet: FleetView, documents: Mapping[str, Capabilities] | None = None
) -> Eta | None:
    """The ETA of the job ``read`` describes, on the live GPUs of ``fleet`` (``documents``: the
    published capabilities by digest); None when no live GPU can run it (the job is
    unschedulable for now) or when it waits out a retry backoff (it is in no queue then)."""
    if not read.classes or read.classes[0].ahead < 0:
        return None
    serving = _Serving(read, documents or {})
    serves = serving.serves
    gpus = [
        (serving.classes(g), g.job is not None)
        for h in fleet.hosts
        if h.online
        for g in h.gpus
        if _claims(g, read.service)
    ]

    capable = [(s, busy) for s, busy in gpus if serves(s, read.class_id)]
    loads = []
    for row in read.classes:
        servers = sum(1 for s, _ in gpus if serves(s, row.class_id))
        shared = sum(1 for s, _ in capable if serves(s, row.class_id))
        loads.append(ClassLoad(row.class_id, row.ahead, servers, shared, row.mean_run_ms))
    return estimate(
        read.now_ms, read.class_id, loads, len(capable), sum(1 for _, busy in capable if busy),
        read.service_mean_ms,
    )  # fmt: skip
