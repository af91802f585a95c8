"""The seam between the supervisor and NVML: one protocol, a real and a simulated implementation.

Every method is blocking and may be called from any thread (the monitor calls them from its own
threads, never from the event loop). ``wait_event`` is called from one dedicated thread only.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from supervisor.gpu.errors import NvmlUnavailableError
from supervisor.gpu.faults import Fault
from supervisor.gpu.readings import GpuIdentity, GpuReading, XidEvent


@runtime_checkable
class GpuBackend(Protocol):
    """What the monitor needs from NVML, real (``NvmlBackend``) or simulated (``FakeNvml``)."""

    @property
    def simulated(self) -> bool:
        """True for the fake, so dashboards can label simulated GPUs."""
        ...

    def driver_version(self) -> str | None:
        """The driver version string, or ``None`` if NVML cannot say."""
        ...

    def discover(self) -> list[GpuIdentity]:
        """Enumerate the GPUs; called once, before anything else but ``driver_version``."""
        ...

    def read(self, index: int) -> GpuReading:
        """Sample one GPU. Never raises for a lost GPU: returns a reading with ``lost`` set."""
        ...

    def open_events(self) -> dict[int, bool]:
        """Register for XID events; return, per GPU index, whether it will deliver them."""
        ...

    def wait_event(self, timeout_ms: int) -> XidEvent | None:
        """Block up to ``timeout_ms`` for the next XID; ``None`` on timeout."""
        ...

    def close(self) -> None:
        """Free the event set and shut NVML down. Idempotent."""
        ...


@runtime_checkable
class SimulatedBackend(GpuBackend, Protocol):
    """A backend whose GPUs follow the supervisor's jobs and accept injected faults."""

    def set_busy(self, index: int, busy: bool) -> None:
        """Tell the simulation whether a job is running on GPU ``index``."""
        ...

    def inject(self, index: int, fault: Fault) -> None:
        """Apply ``fault`` (see ``supervisor.gpu.faults``) to GPU ``index``."""
        ...


def open_gpu_backend(simulate_gpus: int | None) -> GpuBackend:
    """Return ``FakeNvml(simulate_gpus)`` when asked to simulate, else an initialised NVML backend.

    Raises ``NvmlUnavailableError`` when NVML cannot be used (package, library or driver missing);
    the message says which.
    """
    if simulate_gpus is not None:
        from supervisor.sim.gpu import FakeNvml

        return FakeNvml(simulate_gpus)
    try:
        from supervisor.gpu.nvml import NvmlBackend
    except ImportError as e:
        raise NvmlUnavailableError(
            f"the nvidia-ml-py package (module pynvml) cannot be imported: {e}"
        ) from e
    return NvmlBackend.open()
