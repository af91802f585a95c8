"""What one GPU can run and has loaded: its backends' capabilities (with the machine's labels and
the GPU's memory), the model each backend keeps warm, and from those the requirement classes
its puller claims from (docs/SCHEDULING.md).

Capabilities are read from each backend (``capabilities()``, ``loaded_models()``: the ComfyUI
and A1111 adapters have them) before the first claim, again every ``capabilities_refresh_s``
and when an operator asks (``fleetq refresh-capabilities HOST``). A backend that cannot
describe itself, or was never read, claims every class, as before capabilities existed; a
failed refresh keeps what was read last.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from fleetq.classes import ClassTable, ServiceScope, scope_for
from fleetq.requirements import Capabilities, Requirements, affinity_models
from fleetq.schedulable import capabilities_document
from supervisor.backends.base import Backend
from supervisor.backends.http import Unreachable
from supervisor.capabilities import CapabilitiesUnreadable

log = logging.getLogger(__name__)


@runtime_checkable
class Describes(Protocol):
    """A backend that can say what it runs and what it has loaded."""

    async def capabilities(self) -> Capabilities: ...

    async def loaded_models(self) -> frozenset[str] | None: ...


class GpuProfile:
    """Capabilities, warm models and claim scopes of one GPU's backends."""

    def __init__(
        self,
        where: str,
        backends: Mapping[str, Backend],
        labels: Mapping[str, str] | None = None,
        vram_gb: float | None = None,
    ) -> None:
        self.where = where
        self.backends = dict(backends)
        self.labels = dict(labels or {})
        self.vram_gb = vram_gb
        #: service -> capabilities with the machine's labels and memory; absent: not known.
        self.capabilities: dict[str, Capabilities] = {}
        #: service -> names of the model its backend has loaded (affinity matches on these).
        self.warm: dict[str, frozenset[str]] = {}
        #: Jobs that made a backend load another checkpoint (or diffusion model).
        self.model_loads = 0
        #: service -> why its capabilities could not be read the last time.
        self.unreadable: dict[str, str] = {}
        self._scopes: dict[str, tuple[tuple[Any, ...], ServiceScope]] = {}
        #: Moves whenever capabilities change (part of the scope cache key).
        self._generation = 0

    def known(self, service: str) -> bool:
        """Whether the capabilities of ``service`` were read (or cannot ever be)."""
        return service in self.capabilities or not isinstance(self.backends.get(service), Describes)

    async def refresh(self, services: Sequence[str] | None = None) -> bool:
        """Read the capabilities (and loaded model) of ``services`` (default: all) from their
        backends; True when any changed. Never raises: a read that fails keeps the last one."""
        changed = False
        for service in services if services is not None else list(self.backends):
            backend = self.backends.get(service)
            if not isinstance(backend, Describes):
                continue
            try:
                read = (await backend.capabilities()).with_machine(
                    labels=self.labels, vram_gb=self.vram_gb
                )
                loaded = await backend.loaded_models()
            except (Unreachable, CapabilitiesUnreadable, ValueError) as e:
                self.unreadable[service] = str(e)[:200]
                log.warning("%s: capabilities of %s not read: %s", self.where, service, e)
                continue
            self.unreadable.pop(service, None)
            if self.capabilities.get(service) != read:
                self.capabilities[service] = read
                self._generation += 1
                changed = True
            if loaded is not None and loaded != self.warm.get(service, frozenset()):
                self.warm[service] = loaded
                changed = True
        return changed

    def scopes(self, services: Sequence[str], classes: ClassTable) -> dict[str, ServiceScope]:
        """Per service, the classes this GPU meets (computed again only when the class set,
        the capabilities or the warm model changed)."""
        scoped = {}
        for service in services:
            class_set = classes.get(service)
            capabilities = self.capabilities.get(service)
            warm = self.warm.get(service, frozenset())
            key = (class_set.version, len(class_set.classes), self._generation, warm)
            cached = self._scopes.get(service)
            if cached is None or cached[0] != key:
                cached = (key, scope_for(class_set, capabilities, warm))
                self._scopes[service] = cached
            scoped[service] = cached[1]
        return scoped

    def note_job(self, service: str, requirements: Requirements) -> bool:
        """A job of ``requirements`` ran on this GPU: its checkpoint is now the warm one.
        True when running it made the backend load another model."""
        models = affinity_models(requirements)
        if not models:
            return False  # ran on whatever was loaded
        loaded = not (models & self.warm.get(service, frozenset()))
        if loaded:
            self.model_loads += 1
        self.warm[service] = models
        return loaded

    def forget_warm(self, service: str) -> None:
        """The backend of ``service`` went away mid-job (restarted, crashed, unreachable): what
        it holds now is not known, most likely nothing. No class is warm for it until its next
        job (or, for A1111, its next capability read), and that job counts as a model load."""
        self.warm.pop(service, None)

    def documents(self) -> dict[str, str]:
        """The capabilities to publish: digest -> JSON."""
        return dict(capabilities_document(c) for c in self.capabilities.values())

    def record(self) -> dict[str, Any]:
        """The fields this adds to the GPU's published record (``GpuRecord`` arguments)."""
        warm = {s: tuple(sorted(models)) for s, models in sorted(self.warm.items()) if models}
        first = next((models[0] for models in warm.values()), None)
        return {
            "capabilities": {
                s: capabilities_document(c)[0] for s, c in sorted(self.capabilities.items())
            },
            "capabilities_unreadable": dict(self.unreadable),
            "labels": dict(sorted(self.labels.items())),
            "vram_gb": self.vram_gb,
            "warm_model": first,
            "warm_models": warm,
            "model_loads": self.model_loads,
            "classes_served": {
                s: len(scope.classes) for s, (_, scope) in sorted(self._scopes.items())
            },
        }
