"""The AUTOMATIC1111 adapter (also Forge): one puller drives one A1111 process.

Endpoint choice: the job's workflow is an A1111 request body. It goes to
``POST /sdapi/v1/img2img`` when it has an ``init_images`` key (whatever its value, so an empty
list gets A1111's own "Init image not found" instead of silently becoming a txt2img), and to
``POST /sdapi/v1/txt2img`` otherwise. The body is sent as given.

The request blocks until the images are made (queue wait plus generation), so it has no total
timeout by default (``run_timeout_s``): the puller enforces the job's timeout by cancelling the
run and calling :meth:`A1111Backend.interrupt`. Meanwhile ``GET /sdapi/v1/progress`` is polled
every ``poll_interval_s``; progress is ``(job_no + sampling_step / sampling_steps) /
job_count`` with the text ``"step 12/30"`` (plus ``" batch 2/4"`` for several batches),
ignoring the idle shape (``job_count`` 0, also left behind after the job) and the
``job_count`` -1 start. If the progress endpoint stays unreachable for ``restart_grace_s`` the
run gives up with :class:`BackendUnavailable` rather than wait on a dead connection.

``interrupt()`` is ``POST /sdapi/v1/interrupt``, which is global (fine: one process per GPU
runs one job). A1111 drops an interrupt that arrives before the job took the lock, so it is
repeated while progress shows the job running and not interrupted. An interrupted request
still answers 200 with partial images: the run then raises :class:`JobInterrupted`.

Outputs: the base64 ``images`` decoded, named ``<job_id>_<n>.<ext>`` (n from 0, in response
order; the extension and content type from the magic bytes, ``png`` by default settings).
``BackendResult.details`` holds the endpoint and A1111's ``info`` (parsed from its JSON string).

Failures: 422 (the body does not fit the request model) and other 4xx with an error body
(``{"error": "HTTPException", "detail": "Sampler not found", ...}`` of A1111 or Forge's
``{"detail": ...}``) are :class:`JobRejected`; a 500 is :class:`JobRuntimeError`, typed from
A1111's ``error`` (``RuntimeError``, ``OutOfMemoryError``) or, for Forge's plain-text 500
(which hides the exception), ``InternalServerError``; connection errors, 502/503/504, 401/403
(credentials), 404 ``Not Found`` (API not enabled) and malformed 200s are
:class:`BackendUnavailable`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from fleetq.model import JobError, Output
from fleetq.urls import safe_url

from .base import (
    BackendProbe,
    BackendResult,
    BackendUnavailable,
    JobInterrupted,
    JobRejected,
    JobRuntimeError,
    ProgressSink,
)

log = logging.getLogger(__name__)

_NETWORK_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)
_PROGRESS_PATH = "/sdapi/v1/progress?skip_current_image=true"
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"GIF8", "image/gif", "gif"),
)


class _Unreachable(Exception):
    """No usable answer: refused, reset, timed out, or 502/503/504."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        #: No answer in time: the request may still have reached the server.
        self.timed_out = timed_out


class _Malformed(Exception):
    """An answer that does not have A1111's shape."""


@dataclass(frozen=True)
class _Answer:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class _Job:
    job_id: str
    endpoint: str
    started: float
    done: bool = False
    interrupt_requested: bool = False
    last_interrupt_at: float = float("-inf")


def sniff(data: bytes) -> tuple[str, str]:
    """``(content_type, extension)`` of an image from its first bytes."""
    for magic, content_type, extension in _MAGIC:
        if data.startswith(magic):
            return content_type, extension
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    return "application/octet-stream", "bin"


def _describe(e: BaseException, timeout_s: float | None) -> str:
    if isinstance(e, asyncio.TimeoutError):
        return f"no answer within {timeout_s:g} s" if timeout_s else "timed out"
    if isinstance(e, aiohttp.ClientConnectorError):
        return f"cannot connect: {e.os_error.strerror or e}"
    return str(e) or type(e).__name__


def _error_text(body: Any) -> tuple[str | None, str]:
    """``(error type, message)`` of an A1111 ``{error, detail, body, errors}`` or Forge
    ``{detail}`` body."""
    if not isinstance(body, Mapping):
        return None, ""
    error = body.get("error")
    detail = body.get("detail")
    if isinstance(detail, list):  # FastAPI 422: [{"loc": [...], "msg": ..., "type": ...}]
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
        detail = "; ".join(parts)
    message = str(detail or body.get("errors") or "")
    return (str(error) if error else None), message


def _progress_point(data: Any) -> tuple[float, str] | None:
    """``(fraction, text)`` from a ``/sdapi/v1/progress`` answer; None while idle/starting."""
    state = data.get("state") if isinstance(data, Mapping) else None
    if not isinstance(state, Mapping):
        return None
    job_count, job_no = state.get("job_count"), state.get("job_no")
    step, steps = state.get("sampling_step"), state.get("sampling_steps")
    numbers = (job_count, job_no, step, steps)
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        return None
    assert isinstance(job_count, int) and isinstance(job_no, int)
    assert isinstance(step, int) and isinstance(steps, int)
    if job_count <= 0 or steps <= 0:
        return None
    fraction = min(0.99, max(0.0, (job_no + min(step, steps) / steps) / job_count))
    text = f"step {step}/{steps}"
    if job_count > 1:
        text += f" batch {min(job_no + 1, job_count)}/{job_count}"
    return fraction, text


class A1111Backend:
    """One A1111 (or Forge) process (``url`` like ``http://127.0.0.1:7860``) behind one puller.

    ``session`` is used as given and not closed (else the adapter opens and closes its own).
    ``auth`` is ``(user, password)`` for ``--api-auth`` (HTTP Basic). Times in seconds:
    ``run_timeout_s`` for the whole generation request (None: no limit, the puller's job
    timeout applies),
    ``request_timeout_s`` for other calls and for connecting, ``probe_timeout_s``,
    ``poll_interval_s`` between progress polls, ``restart_grace_s`` of failed progress polls
    before a run is abandoned, ``interrupt_timeout_s`` per interrupt call and
    ``interrupt_retry_s`` between repeated interrupts.
    """

    service = "a1111"

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession | None = None,
        *,
        auth: tuple[str, str] | None = None,
        run_timeout_s: float | None = None,
        request_timeout_s: float = 10.0,
        probe_timeout_s: float = 2.0,
        poll_interval_s: float = 0.5,
        restart_grace_s: float = 15.0,
        interrupt_timeout_s: float = 3.0,
        interrupt_retry_s: float = 1.0,
    ) -> None:
        self.url = url.rstrip("/")
        #: The URL without credentials, for logs and the dashboard.
        self.display_url = safe_url(self.url)
        self._session = session
        self._owns_session = session is None
        self._auth_header: dict[str, str] = {}
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            self._auth_header = {"Authorization": f"Basic {token}"}
        self.run_timeout_s = run_timeout_s
        self.request_timeout_s = request_timeout_s
        self.probe_timeout_s = probe_timeout_s
        self.poll_interval_s = poll_interval_s
        self.restart_grace_s = restart_grace_s
        self.interrupt_timeout_s = interrupt_timeout_s
        self.interrupt_retry_s = interrupt_retry_s
        self._job: _Job | None = None

    # -- Backend protocol -----------------------------------------------------------------

    async def probe(self) -> BackendProbe:
        """``GET /sdapi/v1/progress`` (both launch modes): alive when it answers, idle when
        ``state.job_count`` is 0 and this adapter runs nothing. Never raises."""
        try:
            answer = await self._call("GET", _PROGRESS_PATH, self.probe_timeout_s)
            data = answer.json()
            if answer.status in (401, 403):
                raise _Malformed(f"HTTP {answer.status}: check the adapter's auth")
            state = data.get("state") if isinstance(data, Mapping) else None
            if answer.status != 200 or not isinstance(state, Mapping):
                raise _Malformed(f"GET /sdapi/v1/progress answered HTTP {answer.status}")
        except (_Unreachable, _Malformed) as e:
            return BackendProbe(alive=False, idle=False, detail=str(e))
        except Exception as e:  # never raise from a probe
            log.exception("a1111 %s: probe failed", self.display_url)
            return BackendProbe(alive=False, idle=False, detail=f"probe failed: {e!r}")
        job_count = state.get("job_count")
        info = {"job": state.get("job"), "job_count": job_count}
        job = self._job
        if job is not None:
            return BackendProbe(True, False, f"running job {job.job_id}", info)
        if job_count != 0:
            return BackendProbe(True, False, f"busy with {state.get('job') or 'a job'}", info)
        return BackendProbe(True, True, "", info)

    async def run(
        self, job_id: str, workflow: Mapping[str, Any], progress: ProgressSink
    ) -> BackendResult:
        """Post the body to txt2img (img2img with ``init_images``) and wait for the images.
        Raises JobRejected, JobRuntimeError, JobInterrupted or BackendUnavailable; cancelling
        the calling task interrupts the generation (bounded) and propagates."""
        if self._job is not None:
            raise RuntimeError(f"a1111 {self.display_url} already runs job {self._job.job_id}")
        endpoint = "img2img" if "init_images" in workflow else "txt2img"
        try:
            data = json.dumps(dict(workflow), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise JobRejected(JobError("invalid_request", f"not JSON: {e}", kind="final")) from e
        loop = asyncio.get_running_loop()
        job = _Job(job_id, endpoint, loop.time())
        self._job = job
        progress(0.0, "submitted")
        log.info("job %s posted to %s/sdapi/v1/%s", job_id, self.display_url, endpoint)
        post = asyncio.create_task(
            self._call("POST", f"/sdapi/v1/{endpoint}", self.run_timeout_s, data=data),
            name=f"a1111-{endpoint}-{job_id}",
        )
        watch = asyncio.create_task(self._watch(job, progress), name=f"a1111-progress-{job_id}")
        try:
            await asyncio.wait({post, watch}, return_when=asyncio.FIRST_COMPLETED)
            if not post.done():
                await watch  # the watcher only ends by raising BackendUnavailable
            try:
                answer = post.result()
            except _Unreachable as e:
                if e.timed_out:  # it may still be generating
                    await self._send_interrupt(job)
                raise BackendUnavailable(str(e)) from e
            job.done = True
            result = self._result(job, answer)
            progress(1.0, "done")
            log.info(
                "job %s completed: %d image(s) in %.2f s",
                job_id,
                len(result.outputs),
                loop.time() - job.started,
            )
            return result
        except asyncio.CancelledError:
            log.info("job %s: run cancelled", job_id)
            if not job.done:
                await self._send_interrupt(job)
            raise
        except (JobRejected, JobRuntimeError, JobInterrupted) as e:
            log.info("job %s failed: %s: %s", job_id, type(e).__name__, e)
            raise
        except BackendUnavailable as e:
            log.warning("job %s: backend unavailable: %s", job_id, e)
            raise
        except (RecursionError, OverflowError) as e:  # absurd JSON: nested too deep, huge numbers
            log.warning("job %s: malformed answer: %r", job_id, e)
            # Charged to the job (bounded by its attempts): it may be what the job produced.
            error = JobError("MalformedAnswer", f"absurd answer from A1111: {type(e).__name__}")
            raise JobRuntimeError(error) from e
        finally:
            job.done = True
            for task in (post, watch):
                task.cancel()
            await asyncio.wait({post, watch})
            self._job = None

    async def clear(self) -> None:
        """``POST /sdapi/v1/interrupt`` (a generation left running by a dead supervisor); never
        raises. A1111 has no queue of its own to clear."""
        try:
            await self._call("POST", "/sdapi/v1/interrupt", self.interrupt_timeout_s)
        except _Unreachable as e:
            log.info("a1111 %s: POST /sdapi/v1/interrupt at start: %s", self.display_url, e)
        except Exception:
            log.exception("a1111 %s: clearing left-over work failed", self.display_url)

    async def interrupt(self) -> None:
        """``POST /sdapi/v1/interrupt`` while a job runs; never raises."""
        job = self._job
        if job is None or job.done:
            return
        try:
            job.interrupt_requested = True
            log.info("job %s: interrupt requested", job.job_id)
            await self._send_interrupt(job)
        except Exception:
            log.exception("a1111 %s: interrupt failed", self.display_url)

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- steps of a run ---------------------------------------------------------------------

    def _result(self, job: _Job, answer: _Answer) -> BackendResult:
        body = answer.json()
        if answer.status == 200:
            if job.interrupt_requested:
                log.info("job %s interrupted", job.job_id)
                raise JobInterrupted(f"{job.endpoint} was interrupted")
            try:
                return self._outputs(job, body)
            except _Malformed as e:
                raise BackendUnavailable(f"/sdapi/v1/{job.endpoint}: {e}") from e
        error_type, message = _error_text(body)
        status = answer.status
        what = f"/sdapi/v1/{job.endpoint} answered HTTP {status}"
        if status == 422:
            error = JobError(
                "validation_error", message or what, kind="final", details={"status": status}
            )
            raise JobRejected(error)
        if status in (401, 403):
            raise BackendUnavailable(f"{what}: check the adapter's auth")
        if 400 <= status < 500:
            if body is None or (status == 404 and error_type is None and message == "Not Found"):
                raise BackendUnavailable(f"{what} (is the API enabled?)")
            error = JobError(
                error_type or "HTTPException",
                message or what,
                kind="final",
                details={"status": status},
            )
            raise JobRejected(error)
        if status == 500:
            if body is None:  # Forge: FastAPI's bare 500 hides the exception
                error = JobError(
                    "InternalServerError",
                    f"{what} without details: {answer.body[:200].decode(errors='replace')}",
                    kind="job",
                    details={"status": status},
                )
            else:
                error = JobError(
                    error_type or "InternalServerError",
                    message or what,
                    kind="job",
                    details={"status": status},
                )
            raise JobRuntimeError(error)
        raise BackendUnavailable(f"{what}: {answer.body[:200]!r}")

    def _outputs(self, job: _Job, body: Any) -> BackendResult:
        if not isinstance(body, Mapping) or not isinstance(body.get("images"), list):
            raise _Malformed("200 without an 'images' list")
        outputs = []
        for n, item in enumerate(body["images"]):
            if not isinstance(item, str):
                raise _Malformed(f"image {n} is not a base64 string")
            encoded = item.split(",", 1)[1] if item.startswith("data:") else item
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as e:
                raise _Malformed(f"image {n} is not valid base64") from e
            content_type, extension = sniff(data)
            outputs.append(Output(f"{job.job_id}_{n}.{extension}", content_type, data))
        details: dict[str, Any] = {"endpoint": job.endpoint}
        info = body.get("info")
        if isinstance(info, str):
            with contextlib.suppress(ValueError):
                info = json.loads(info)
        if info is not None:
            details["info"] = info
        return BackendResult(tuple(outputs), details)

    async def _watch(self, job: _Job, sink: ProgressSink) -> None:
        """Poll progress until cancelled; raise BackendUnavailable after ``restart_grace_s``
        without an answer."""
        loop = asyncio.get_running_loop()
        best = 0.0
        last: tuple[float, str] | None = None
        unreachable_since: float | None = None
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                answer = await self._call("GET", _PROGRESS_PATH, self.request_timeout_s)
            except _Unreachable as e:
                now = loop.time()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > self.restart_grace_s:
                    raise BackendUnavailable(
                        f"unreachable for more than {self.restart_grace_s:g} s: {e}"
                    ) from e
                continue
            unreachable_since = None
            data = answer.json()
            point = _progress_point(data) if answer.status == 200 else None
            if point is None:
                continue
            best = max(best, point[0])
            if (best, point[1]) != last:
                last = (best, point[1])
                sink(*last)
            state = data["state"]
            # An interrupt sent before the job took the lock is lost: send it again.
            if (
                job.interrupt_requested
                and not state.get("interrupted")
                and loop.time() - job.last_interrupt_at >= self.interrupt_retry_s
            ):
                await self._send_interrupt(job)

    async def _send_interrupt(self, job: _Job) -> None:
        job.last_interrupt_at = asyncio.get_running_loop().time()
        try:
            await self._call("POST", "/sdapi/v1/interrupt", self.interrupt_timeout_s)
        except _Unreachable as e:
            log.warning("job %s: POST /sdapi/v1/interrupt failed: %s", job.job_id, e)

    # -- HTTP -----------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _call(
        self, method: str, path: str, timeout_s: float | None, *, data: str | None = None
    ) -> _Answer:
        headers = dict(self._auth_header)
        if data is not None:
            headers["Content-Type"] = "application/json"
        timeout = aiohttp.ClientTimeout(total=timeout_s, connect=self.request_timeout_s)
        try:
            async with self._http().request(
                method, self.url + path, data=data, headers=headers, timeout=timeout,
            ) as response:  # fmt: skip
                body = await response.read()
        except _NETWORK_ERRORS as e:
            timed_out = isinstance(e, asyncio.TimeoutError)
            where = f"{method} {path.split('?')[0]}"
            raise _Unreachable(f"{where}: {_describe(e, timeout_s)}", timed_out=timed_out) from e
        if response.status in (502, 503, 504):
            raise _Unreachable(f"{method} {path.split('?')[0]}: HTTP {response.status}")
        return _Answer(response.status, response.content_type, body)
