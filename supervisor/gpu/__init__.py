"""The supervisor's GPU layer: discovery, readings, XID events, health policy.

Only ``supervisor.gpu.nvml`` imports pynvml, and only when a real backend is opened; importing
this package never loads it. The simulated GPUs live in ``supervisor.sim.gpu``, loaded only by
``open_gpu_backend`` when the supervisor is asked to simulate.
"""

from supervisor.gpu.backend import GpuBackend, SimulatedBackend, open_gpu_backend
from supervisor.gpu.errors import (
    FaultNotApplicableError,
    FaultSpecError,
    GpuBackendClosedError,
    GpuError,
    NvmlUnavailableError,
    UnknownGpuError,
)
from supervisor.gpu.faults import Fault, parse_fault
from supervisor.gpu.health import (
    GpuHealthTracker,
    HealthStatus,
    HealthThresholds,
    HealthVerdict,
    judge,
)
from supervisor.gpu.monitor import GpuMonitor, GpuStatus
from supervisor.gpu.readings import GpuIdentity, GpuReading, XidEvent

__all__ = [
    "Fault",
    "FaultNotApplicableError",
    "FaultSpecError",
    "GpuBackend",
    "GpuBackendClosedError",
    "GpuError",
    "GpuHealthTracker",
    "GpuIdentity",
    "GpuMonitor",
    "GpuReading",
    "GpuStatus",
    "HealthStatus",
    "HealthThresholds",
    "HealthVerdict",
    "NvmlUnavailableError",
    "SimulatedBackend",
    "UnknownGpuError",
    "XidEvent",
    "judge",
    "open_gpu_backend",
    "parse_fault",
]
