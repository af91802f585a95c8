"""Requirement classes on the claiming side: the classes of each service as last read from
Redis, and which of them one GPU can run.

Submit records each new class in ``classes:<svc>`` (class id -> canonical requirements) and
moves ``classver:<svc>``. A claimer passes the classes its GPU meets (a :class:`ServiceScope`)
with the version they were computed from; the claim script answers "reload" when the version
moved, so a claimer never overlooks a class it could run for longer than one round trip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fleetq.keys import wake_channel
from fleetq.requirements import Capabilities, Requirements, affinity_models, meets

log = logging.getLogger(__name__)

#: The version of a class set not read yet: never a real one (those count from "0").
UNREAD = "unread"


@dataclass(frozen=True)
class ClassSet:
    """The requirement classes of one service at one version."""

    version: str
    classes: Mapping[str, Requirements] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceScope:
    """What one GPU claims from one service: the classes it meets (besides the empty class,
    always served), each with whether it uses the GPU's warm model, and the class-set
    version they were computed from."""

    version: str
    classes: tuple[tuple[str, bool], ...] = ()

    def claim_args(self) -> tuple[str | int, ...]:
        """The claim script's arguments for this service (after its name)."""
        args: list[str | int] = [self.version, len(self.classes)]
        for class_id, warm in self.classes:
            args += [class_id, "1" if warm else "0"]
        return tuple(args)

    def channels(self, service: str) -> list[str]:
        """The wake channels a claimer of this scope waits on."""
        return [service, *(wake_channel(service, class_id) for class_id, _ in self.classes)]


def scope_for(
    classes: ClassSet, capabilities: Capabilities | None, warm: Iterable[str] = ()
) -> ServiceScope:
    """The classes a machine with ``capabilities`` meets; None (capabilities unknown) meets
    every class, as a claimer did before capabilities existed. A class is warm when it loads
    one of the ``warm`` models."""
    loaded = frozenset(warm)
    served = []
    for class_id, requirements in sorted(classes.classes.items()):
        if capabilities is None or meets(requirements, capabilities) is None:
            served.append((class_id, bool(loaded & affinity_models(requirements))))
    return ServiceScope(classes.version, tuple(served))


class ClassTable:
    """The class sets of the services one process claims for, shared by its GPUs."""

    def __init__(self) -> None:
        self._sets: dict[str, ClassSet] = {}
        self._every: dict[str, ServiceScope] = {}

    def get(self, service: str) -> ClassSet:
        """The classes of ``service`` as last read (none before the first read, with a
        version no set has, so the first claim asks for a read)."""
        return self._sets.get(service) or ClassSet(UNREAD)

    def every_class(self, service: str) -> ServiceScope:
        """The scope of a claimer that runs every class (computed once per class set)."""
        classes = self.get(service)
        scope = self._every.get(service)
        if scope is None or scope.version != classes.version:
            scope = self._every[service] = scope_for(classes, None)
        return scope

    def version(self, service: str) -> str:
        return self.get(service).version

    def update(self, service: str, version: str, raw: Mapping[str, str]) -> bool:
        """Take a fresh read (``raw``: class id -> canonical JSON); True if it changed.
        Classes already known are kept as parsed; an unreadable entry is skipped (logged)."""
        current = self.get(service)
        if version == current.version and len(raw) == len(current.classes):
            return False
        parsed: dict[str, Requirements] = {}
        for class_id, canonical in raw.items():
            known = current.classes.get(class_id)
            if known is not None:
                parsed[class_id] = known
                continue
            try:
                parsed[class_id] = Requirements.from_canonical(canonical)
            except (ValueError, TypeError, AttributeError) as e:
                log.warning("requirement class %s of %s is unreadable: %s", class_id, service, e)
        self._sets[service] = ClassSet(version, parsed)
        return True
