"""fleetq: one Redis queue in front of a fleet of GPU machines running ComfyUI or A1111.

The public API::

    from fleetq import Client, AsyncClient, Settings
    from fleetq import FleetqError, JobFailed, JobCancelled
"""

from fleetq.aclient import AsyncClient, AsyncJob
from fleetq.client import Client, Job
from fleetq.config import Settings
from fleetq.errors import (
    FleetqError,
    InvalidInput,
    InvalidJobId,
    InvalidPriority,
    InvalidTransition,
    InvalidWorkflow,
    JobCancelled,
    JobFailed,
    JobNotFound,
    NotReplicated,
    OutputsExpired,
    PayloadTooLarge,
    PermissionDenied,
    RedisUnavailable,
    StaleLease,
    UnknownService,
    ValidationError,
)
from fleetq.model import JobError, JobResult, JobState, JobStatus, Output, OutputFile, Stats
from fleetq.previews import Preview

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AsyncJob",
    "Client",
    "FleetqError",
    "InvalidInput",
    "InvalidJobId",
    "InvalidPriority",
    "InvalidTransition",
    "InvalidWorkflow",
    "Job",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "JobNotFound",
    "JobResult",
    "JobState",
    "JobStatus",
    "NotReplicated",
    "Output",
    "OutputFile",
    "OutputsExpired",
    "PayloadTooLarge",
    "PermissionDenied",
    "Preview",
    "RedisUnavailable",
    "Settings",
    "StaleLease",
    "Stats",
    "UnknownService",
    "ValidationError",
    "__version__",
]
