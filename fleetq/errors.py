"""The one error hierarchy of fleetq.

Every error a user can cause or meet derives from :class:`FleetqError` and carries a message
they can act on. Validation errors are raised before anything is written to Redis.
"""

from __future__ import annotations

from typing import Any


class FleetqError(Exception):
    """Base class of every error fleetq raises on purpose."""


class ValidationError(FleetqError):
    """An input was refused at the edge; nothing was written."""


class InvalidWorkflow(ValidationError):
    """The workflow is not a JSON object the target backend can run."""


class UnknownService(ValidationError):
    """The service name is not one of the registered services."""


class InvalidPriority(ValidationError):
    """The priority is not an integer in the allowed range."""


class PayloadTooLarge(ValidationError):
    """The encoded workflow and metadata exceed the payload cap."""


class InvalidJobId(ValidationError):
    """The text given as a job id cannot be a fleetq job id."""


class InvalidArgument(ValidationError):
    """Some other argument (attempts, timeout, metadata, names) is out of range or malformed."""


class Unschedulable(ValidationError):
    """A submit that asked for a runnable job (``require_schedulable``) names requirements no
    live GPU meets; nothing was written."""


class InvalidInput(ValidationError):
    """An input file of a submit is refused: its name, its type, or how the workflow names it."""


class InputsMissing(FleetqError):
    """A claimed job's input files are not in Redis any more (evicted by a ``maxmemory``
    policy, or deleted by hand): the job cannot run."""


class JobNotFound(FleetqError):
    """No job with this id exists (it never did, or it expired after its retention)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id} (unknown, or expired after its retention)")
        self.job_id = job_id


class InvalidTransition(FleetqError):
    """The job is not in a state that allows the requested change."""

    def __init__(self, job_id: str, state: str, action: str) -> None:
        super().__init__(f"cannot {action} job {job_id}: it is {state}")
        self.job_id = job_id
        self.state = state
        self.action = action


class StaleLease(FleetqError):
    """A write came with a lease token that is no longer current; it was refused."""

    def __init__(self, job_id: str, state: str) -> None:
        super().__init__(f"lease on job {job_id} is no longer held (job is now {state})")
        self.job_id = job_id
        self.state = state


class OutputTooLarge(FleetqError):
    """The outputs of a job exceed the configured size cap."""


class OutputsExpired(FleetqError):
    """The job completed, but its output files are past their time to live."""


class OutputsInRedis(FleetqError):
    """URLs were asked of outputs kept in Redis, which have none."""


class OutputStoreError(FleetqError):
    """The output store (a shared folder or S3) is unreachable, refused a write or a read, or
    holds a file that does not match its record. A supervisor that meets it while storing a
    job's outputs gives the job back to the queue without charging an attempt."""


class RedisUnavailable(FleetqError):
    """Redis could not be reached or answered with a connection-level error."""


class NotReplicated(RedisUnavailable):
    """A write reached the primary, but fewer replicas than ``wait_replicas`` confirmed it in
    time, so a failover could still lose it. Retrying is safe for a supervisor's writes (the
    lease token makes them idempotent) and for a submit with an idempotency key."""

    def __init__(self, message: str, job_id: str, replicas: int) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.replicas = replicas


class PermissionDenied(FleetqError):
    """The Redis user of this connection lacks the ACL permission for the action (NOPERM)."""


class JobFailed(FleetqError):
    """Raised by ``wait()`` when the job ended in the failed state."""

    def __init__(self, job_id: str, error: Any) -> None:
        detail = getattr(error, "describe", lambda: str(error))()
        super().__init__(f"job {job_id} failed: {detail}")
        self.job_id = job_id
        self.error = error


class JobCancelled(FleetqError):
    """Raised by ``wait()`` when the job was cancelled."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} was cancelled")
        self.job_id = job_id
