"""Can any live GPU run a job? And if not, why not, in words.

Each supervisor publishes, in every GPU record, a digest of that GPU's capabilities per service
(``capabilities: {service: digest}``); the capabilities themselves are stored once per digest
under ``caps:<digest>`` (GPUs with the same backends and labels share one document). A job is
*unschedulable* when no GPU of a live host that runs its service meets its requirements; the
reason given is :func:`fleetq.requirements.meets` against the closest GPU (the fewest unmet
parts), e.g. ``needs checkpoint flux1-dev.safetensors``.

A GPU that runs the service but published no capabilities for it (its backend cannot describe
itself, or has not yet) claims jobs of every class, so it makes every job schedulable.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TypeVar

from fleetq.errors import Unschedulable
from fleetq.fleet import FleetView
from fleetq.model import JobSpec, JobState, JobStatus
from fleetq.records import GpuRecord
from fleetq.requirements import Capabilities, Requirements, meets

log = logging.getLogger(__name__)
T = TypeVar("T")


def capabilities_document(capabilities: Capabilities) -> tuple[str, str]:
    """The digest and JSON text under which ``capabilities`` are published."""
    body = json.dumps(capabilities.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:16], body


def live_gpus(fleet: FleetView, service: str) -> list[GpuRecord]:
    """The GPU records of online hosts whose puller claims for ``service``."""
    return [
        gpu for host in fleet.hosts if host.online for gpu in host.gpus if service in gpu.services
    ]


def digests(gpus: Iterable[GpuRecord], service: str) -> set[str]:
    """The capability digests these GPUs published for ``service``."""
    return {gpu.capabilities[service] for gpu in gpus if gpu.capabilities.get(service)}


def parse_documents(raw: Mapping[str, str | None]) -> dict[str, Capabilities]:
    """Capabilities by digest from the stored JSON (missing or unreadable ones left out)."""
    return _parse_each(raw, lambda body: Capabilities.from_dict(json.loads(body)), "capabilities")


def parse_classes(raw: Mapping[str, str | None]) -> dict[str, Requirements]:
    """Requirements by class id from ``classes:<svc>`` (canonical JSON; missing or unreadable
    ones left out)."""
    return _parse_each(raw, Requirements.from_canonical, "requirement class")


def _parse_each(
    raw: Mapping[str, str | None], parse: Callable[[str], T], what: str
) -> dict[str, T]:
    """``parse`` of each stored text by key; missing ones left out, unreadable ones logged."""
    out = {}
    for key, body in raw.items():
        if not body:
            continue
        try:
            out[key] = parse(body)
        except (ValueError, TypeError, AttributeError) as e:
            log.warning("%s %s is unreadable: %s", what, key, e)
    return out


def why_unschedulable(
    requirements: Requirements,
    service: str,
    fleet: FleetView,
    documents: Mapping[str, Capabilities],
) -> str | None:
    """None when some live GPU can run a job with ``requirements``; else why not."""
    return unschedulable_classes({"": requirements}, service, fleet, documents).get("")


def unschedulable_classes(
    classes: Mapping[str, Requirements],
    service: str,
    fleet: FleetView,
    documents: Mapping[str, Capabilities],
) -> dict[str, str]:
    """:func:`why_unschedulable` of many requirement classes of one service (class id ->
    requirements) at once: the classes no live GPU can run, each with its reason. Each
    distinct capabilities document is checked once per class, however many GPUs share it."""
    candidates = distinct_capabilities(service, fleet, documents)
    if candidates is None:
        return {}
    if not candidates:
        return dict.fromkeys(classes, f"no live machine runs service {service}")
    reasons = {}
    for class_id, requirements in classes.items():
        reason = _closest(requirements, candidates)
        if reason is not None:
            reasons[class_id] = reason
    return reasons


def distinct_capabilities(
    service: str, fleet: FleetView, documents: Mapping[str, Capabilities]
) -> list[Capabilities] | None:
    """The distinct capabilities of the live GPUs of ``service``, in GPU order; None when one
    of them publishes none for it or its document is missing: nothing is known of that GPU,
    so it claims every class."""
    seen: dict[str, Capabilities] = {}
    for gpu in live_gpus(fleet, service):
        digest = gpu.capabilities.get(service)
        if not digest or digest not in documents:
            return None
        seen.setdefault(digest, documents[digest])
    return list(seen.values())


def _closest(requirements: Requirements, candidates: Iterable[Capabilities]) -> str | None:
    """None when one of ``candidates`` meets ``requirements``; else the reason against the
    closest (the fewest unmet parts; the first of equals)."""
    closest: tuple[int, str] | None = None
    for capabilities in candidates:
        reason = meets(requirements, capabilities)
        if reason is None:
            return None
        unmet = reason.count("; ") + 1
        if closest is None or unmet < closest[0]:
            closest = (unmet, reason)
    return None if closest is None else closest[1]


def explain(
    status: JobStatus, fleet: FleetView, documents: Mapping[str, Capabilities]
) -> JobStatus:
    """``status`` with :attr:`~fleetq.model.JobStatus.unschedulable` set when it is a queued
    job no live GPU can run."""
    if status.state is not JobState.QUEUED or not status.class_id:
        return status
    try:
        requirements = Requirements.from_canonical(json.dumps(status.requirements))
    except (ValueError, TypeError, AttributeError):
        return status
    reason = why_unschedulable(requirements, status.service, fleet, documents)
    return replace(status, unschedulable=reason)


def needs_explaining(status: JobStatus) -> bool:
    """Whether :func:`explain` has anything to look at (a queued job with requirements)."""
    return status.state is JobState.QUEUED and bool(status.class_id)


def spec_requirements(spec: JobSpec) -> Requirements:
    """The requirements of a job about to be submitted."""
    if not spec.class_id:
        return Requirements()
    return Requirements.from_canonical(spec.requirements_json)


def refuse_unschedulable(reason: str | None) -> None:
    """Raise :class:`~fleetq.errors.Unschedulable` for a submit that asked for a runnable job."""
    if reason is not None:
        raise Unschedulable(f"no live GPU can run this job: {reason}; nothing was submitted")
