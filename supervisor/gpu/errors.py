"""Errors raised by the GPU layer, rooted at ``GpuError`` under fleetq's ``FleetqError``."""

from __future__ import annotations

from fleetq.errors import FleetqError


class GpuError(FleetqError):
    """Base class of every error raised by ``supervisor.gpu``."""


class NvmlUnavailableError(GpuError):
    """NVML cannot be used on this machine (package, library or driver missing).

    ``reason`` says which; the supervisor turns this into
    "refusing to start: no NVML; use --simulate-gpus N".
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"NVML is not available: {reason}")
        self.reason = reason


class UnknownGpuError(GpuError, LookupError):
    """A GPU index that discovery did not report."""


class FaultSpecError(GpuError, ValueError):
    """A fault specification such as ``xid=79`` could not be parsed."""


class FaultNotApplicableError(GpuError):
    """A fault cannot be injected into this simulated GPU (e.g. ECC on a card without ECC)."""


class GpuBackendClosedError(GpuError):
    """The backend was used after ``close()``."""
