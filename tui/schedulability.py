"""Which queued jobs of a refresh's page no live GPU can run (``JobStatus.unschedulable``), so
the jobs table can mark them.

Kept cheap, since it runs on every refresh: jobs are grouped by (service, requirement class), so
a page of 200 jobs costs one check per distinct class, not 200. Nothing is read unless queued jobs
with requirements are on the page. A class's requirements are read once (its id is the digest of
its requirements, so they never change), and so is each capabilities document (stored under the
digest of its content): at most one read of each kind per refresh, none once they are known. A
class's answer is kept while the capabilities of its service's live GPUs stay the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from fleetq.fleet import FleetView
from fleetq.model import JobState, JobStatus
from fleetq.requirements import Capabilities, Requirements
from fleetq.schedulable import live_gpus, unschedulable_classes
from fleetq.store import AsyncStore

#: What the live GPUs of one service offer, as far as an answer depends on it: the distinct
#: capability digests in GPU order, ``""`` for a GPU whose capabilities are unknown.
Offer = tuple[str, ...]


class Schedulability:
    """Marks the queued jobs that no live GPU can run; keeps what it read between refreshes."""

    def __init__(self, store: AsyncStore) -> None:
        self.store = store
        self._requirements: dict[tuple[str, str], Requirements] = {}
        self._documents: dict[str, Capabilities] = {}
        #: service -> (the offer the answers hold for, class id -> reason or None).
        self._answers: dict[str, tuple[Offer, dict[str, str | None]]] = {}

    @property
    def documents(self) -> Mapping[str, Capabilities]:
        """The capability documents read so far, by digest (the job detail's status reuses
        them)."""
        return self._documents

    async def mark(self, jobs: Sequence[JobStatus], fleet: FleetView) -> tuple[JobStatus, ...]:
        """``jobs`` with ``unschedulable`` set on each queued one that no live GPU can run."""
        wanted: dict[str, set[str]] = {}
        for job in jobs:
            if job.class_id and job.state is JobState.QUEUED:
                wanted.setdefault(job.service, set()).add(job.class_id)
        if not wanted:
            return tuple(jobs)
        reasons = await self.reasons(wanted, fleet)
        if not reasons:
            return tuple(jobs)
        return tuple(
            replace(job, unschedulable=reason)
            if job.state is JobState.QUEUED
            and (reason := reasons.get((job.service, job.class_id))) is not None
            else job
            for job in jobs
        )

    async def reasons(
        self, wanted: Mapping[str, Iterable[str]], fleet: FleetView
    ) -> dict[tuple[str, str], str]:
        """Why no live GPU can run each (service, class) of ``wanted`` (service -> class ids)
        that none can; the others are left out."""
        published = {service: _digests_of(fleet, service) for service in wanted}
        unknown = {d for offer in published.values() for d in offer if d}
        unknown -= self._documents.keys()
        missing = {
            service: sorted(c for c in class_ids if (service, c) not in self._requirements)
            for service, class_ids in wanted.items()
        }
        missing = {service: ids for service, ids in missing.items() if ids}
        if missing or unknown:  # else nothing to read: all known from earlier refreshes
            await asyncio.gather(
                self._read_classes(missing), self._read_documents(unknown, published)
            )
        out: dict[tuple[str, str], str] = {}
        for service, class_ids in wanted.items():
            # A document that could not be read leaves its GPUs unknown: able to run anything.
            offer = tuple(d if d in self._documents else "" for d in published[service])
            held, answers = self._answers.get(service, ((), {}))
            if held != offer:
                answers = {}
            todo = {
                c: self._requirements[(service, c)]
                for c in class_ids
                if c not in answers and (service, c) in self._requirements
            }
            if todo:
                found = unschedulable_classes(todo, service, fleet, self._documents)
                answers.update({c: found.get(c) for c in todo})
            self._answers[service] = (offer, answers)
            out.update(
                ((service, c), reason) for c in class_ids if (reason := answers.get(c)) is not None
            )
        return out

    async def _read_classes(self, missing: Mapping[str, Sequence[str]]) -> None:
        services = list(missing)
        found = await asyncio.gather(
            *(self.store.requirement_classes(s, missing[s]) for s in services)
        )
        for service, classes in zip(services, found, strict=True):
            self._requirements.update({(service, c): r for c, r in classes.items()})

    async def _read_documents(self, digests: set[str], published: Mapping[str, Offer]) -> None:
        if not digests:
            return
        found = await self.store.capability_documents(sorted(digests))
        # The GPUs' capabilities changed: keep only the documents they publish now.
        current = {d for offer in published.values() for d in offer}
        self._documents = {d: c for d, c in self._documents.items() if d in current}
        self._documents.update(found)


def _digests_of(fleet: FleetView, service: str) -> Offer:
    """The distinct capability digests of the live GPUs of ``service`` in GPU order (``""``
    for a GPU that published none for it)."""
    return tuple(dict.fromkeys(g.capabilities.get(service, "") for g in live_gpus(fleet, service)))
