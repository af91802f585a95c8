"""The AUTOMATIC1111 adapter (also Forge): one puller drives one A1111 process.

Endpoint choice: the job's workflow is an A1111 request body. It goes to
``POST /sdapi/v1/img2img`` when it has an ``init_images`` key (whatever its value, so an empty
list gets A1111's own error instead of silently becoming a txt2img), and to
``POST /sdapi/v1/txt2img`` otherwise. The body is sent as given, plus a ``force_task_id``
(``fleetq-<job_id>``, unless the body has one) so the job can be told from other clients'.
A body with ``send_images: false`` is refused: A1111 would answer with no images at all.

The request blocks until the images are made (queue wait plus generation), so it has no total
timeout by default (``run_timeout_s``): the puller enforces the job's timeout by cancelling the
run and calling :meth:`A1111Backend.interrupt`. Meanwhile ``GET /sdapi/v1/progress`` is polled
every ``poll_interval_s`` (with ``skip_current_image=false`` when the caller wants live
previews: A1111 then returns its ``current_image``, made every ``show_progress_every_n_steps``
steps while ``live_previews_enable`` is on; each new one goes to the preview sink); progress
is ``(job_no + sampling_step / sampling_steps) / job_count`` with the text ``"step 12/30"``
(plus ``" batch 2/4"`` for several batches and ``" hires"`` for a hires-fix pass), ignoring
the idle shape and the ``job_count`` -1 start (also a checkpoint switch). If the progress
endpoint stays unreachable for ``restart_grace_s`` the run gives up with
:class:`BackendUnavailable` rather than wait on a dead connection.

Shared instances: ``/sdapi/v1/progress`` describes whatever job holds A1111's lock, and
``/sdapi/v1/interrupt`` stops it, whoever sent it. An instance should be dedicated to fleetq;
when it is not, the adapter tells its own job from a foreign one, with ``POST
/internal/progress`` for its task id where the server has it (UI mode), else by the job that
was already running when it posted. While a foreign job runs it reports "waiting", logs it,
and sends no interrupt (one is sent once its own job runs).

``interrupt()`` is ``POST /sdapi/v1/interrupt``. A1111 drops an interrupt that arrives before
the job took the lock, so it is repeated while progress shows the job running and not
interrupted. An interrupted request still answers 200 with partial images: the run then
raises :class:`JobInterrupted`. After any other 200 the progress is read once more: A1111
keeps ``state.interrupted`` / ``skipped`` set after the job, so an interrupt or skip sent by
someone else (partly denoised images) is a :class:`JobRuntimeError` ``InterruptedElsewhere``,
not a success.

Outputs: only the generated images, told from a grid (first, with ``save_images``) and extras
(masks, ControlNet detect maps, Forge's ``extra_images``, appended) by ``info``'s
``index_of_first_image`` and ``all_seeds``; named ``<job_id>_<n>.<ext>`` (n from 0, in order;
the extension and content type from the magic bytes). With ``keep_extras`` (an adapter
option, or ``"fleetq_keep_extras": true`` in a job's body, removed before posting) the others
are kept too, as ``<job_id>_grid_<n>.<ext>`` and ``<job_id>_extra_<n>.<ext>``.
``BackendResult.details`` holds the endpoint, A1111's ``info`` (parsed from its JSON string)
and ``images``: ``[{filename, role, seed}]`` for every output. A job whose
``override_settings.sd_model_checkpoint`` names a checkpoint the server does not have runs on
the loaded model (A1111 and Forge drop it silently): ``info.sd_model_name`` /
``sd_model_hash`` are checked and such a job fails as a final ``CheckpointNotFound``.

Failures: 422 (the body does not fit the request model) and other 4xx with an error body
(``{"error": "HTTPException", "detail": "Sampler not found", ...}`` of A1111 or Forge's
``{"detail": ...}``) are :class:`JobRejected`, and so are 500s that are errors of the request
("Invalid encoded image", "Invalid image url", "Requests not allowed", an unknown upscaler,
"bad number of images passed"); other 500s are :class:`JobRuntimeError`, typed from the body's
``error`` (``RuntimeError``, ``OutOfMemoryError``; Forge's crash body ``{error, detail, body,
message}`` too) or, for an older Forge's plain-text 500, ``InternalServerError``; connection
errors, 502/503/504, 401/403 (credentials), 404 ``Not Found`` (API not enabled) and malformed
200s are :class:`BackendUnavailable`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from fleetq.model import FaultKind, JobError, Output
from fleetq.requirements import Capabilities
from fleetq.urls import safe_url

from .a1111_inputs import inline
from .a1111_protocol import (
    Malformed,
    checkpoint_mismatch,
    classify_images,
    current_image,
    decode_image,
    error_text,
    is_request_error,
    parse_info,
    progress_point,
    requested_checkpoint,
    sniff,
)
from .a1111_sharing import ForeignJobs, running
from .base import (
    BackendProbe,
    BackendResult,
    BackendUnavailable,
    InputFiles,
    JobInterrupted,
    JobRejected,
    JobRuntimeError,
    PreviewSink,
    ProgressSink,
)
from .http import Answer, HttpClient, Unreachable

__all__ = ["KEEP_EXTRAS_KEY", "A1111Backend", "sniff"]

#: A job body key (not sent to A1111) asking to keep grids, masks and detect maps as outputs.
KEEP_EXTRAS_KEY = "fleetq_keep_extras"

log = logging.getLogger(__name__)

_PROGRESS_PATH = "/sdapi/v1/progress"
_PROGRESS_PARAMS = {"skip_current_image": "true"}
_PROGRESS_WITH_IMAGE = {"skip_current_image": "false"}
_TASK_PROGRESS_PATH = "/internal/progress"
_WAITING_TEXT = "waiting: another client's job holds A1111"


@dataclass
class _Job:
    job_id: str
    endpoint: str
    task_id: str | None
    started: float
    keep_extras: bool = False
    hires: bool = False
    done: bool = False
    interrupt_requested: bool = False
    last_interrupt_at: float = float("-inf")
    #: Other clients' jobs on the same instance.
    foreign: ForeignJobs = field(default_factory=ForeignJobs)
    preview: PreviewSink | None = None
    #: The last preview handed on (A1111 repeats its current image until the next one).
    last_preview: bytes = b""


class A1111Backend:
    """One A1111 (or Forge) process (``url`` like ``http://127.0.0.1:7860``) behind one puller.

    ``session`` is used as given and not closed (else the adapter opens and closes its own).
    ``auth`` is ``(user, password)`` for ``--api-auth`` (HTTP Basic). Times in seconds:
    ``run_timeout_s`` for the whole generation request (None: no limit, the puller's job
    timeout applies),
    ``request_timeout_s`` for other calls and for connecting, ``probe_timeout_s``,
    ``poll_interval_s`` between progress polls, ``restart_grace_s`` of failed progress polls
    before a run is abandoned, ``interrupt_timeout_s`` per interrupt call and
    ``interrupt_retry_s`` between repeated interrupts. ``keep_extras`` keeps grids, masks and
    detect maps as outputs (labelled); by default only the generated images are outputs.
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
        keep_extras: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        #: The URL without credentials, for logs and the dashboard.
        self.display_url = safe_url(self.url)
        headers: dict[str, str] = {}
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            headers = {"Authorization": f"Basic {token}"}
        self._http = HttpClient(
            self.url, session, Answer, headers=headers, connect_timeout_s=request_timeout_s
        )
        self.run_timeout_s = run_timeout_s
        self.request_timeout_s = request_timeout_s
        self.probe_timeout_s = probe_timeout_s
        self.poll_interval_s = poll_interval_s
        self.restart_grace_s = restart_grace_s
        self.interrupt_timeout_s = interrupt_timeout_s
        self.interrupt_retry_s = interrupt_retry_s
        self.keep_extras = keep_extras
        #: Whether ``/internal/progress`` answers (UI mode); None until first asked.
        self._task_progress: bool | None = None
        self._job: _Job | None = None

    # -- Backend protocol -----------------------------------------------------------------

    async def probe(self) -> BackendProbe:
        """``GET /sdapi/v1/progress`` (both launch modes): alive when it answers, idle when
        ``state.job_count`` is 0 and this adapter runs nothing. Never raises."""
        try:
            answer = await self._get_progress(self.probe_timeout_s)
            data = answer.parsed()
            if answer.status in (401, 403):
                raise Malformed(f"HTTP {answer.status}: check the adapter's auth")
            state = data.get("state") if isinstance(data, Mapping) else None
            if answer.status != 200 or not isinstance(state, Mapping):
                raise Malformed(f"GET /sdapi/v1/progress answered HTTP {answer.status}")
        except (Unreachable, Malformed) as e:
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
        self,
        job_id: str,
        workflow: Mapping[str, Any],
        progress: ProgressSink,
        inputs: InputFiles | None = None,
        *,
        preview: PreviewSink | None = None,
    ) -> BackendResult:
        """Post the body to txt2img (img2img with ``init_images``) and wait for the images;
        fields that name one of ``inputs`` carry its bytes as base64 (:mod:`.a1111_inputs`).
        A1111's live previews go to ``preview``. Raises JobRejected, JobRuntimeError,
        JobInterrupted or BackendUnavailable; cancelling the calling task interrupts the
        generation (bounded) and propagates."""
        if self._job is not None:
            raise RuntimeError(f"a1111 {self.display_url} already runs job {self._job.job_id}")
        endpoint = "img2img" if "init_images" in workflow else "txt2img"
        if workflow.get("send_images") is False:
            message = "send_images is false: A1111 would return no images"
            raise JobRejected(JobError("invalid_request", message, kind=FaultKind.FINAL))
        body = inline(workflow, inputs) if inputs else dict(workflow)
        keep_extras = body.pop(KEEP_EXTRAS_KEY, None) is True or self.keep_extras
        if not body.get("force_task_id"):
            body["force_task_id"] = f"fleetq-{job_id}"
        task_id = body["force_task_id"] if isinstance(body["force_task_id"], str) else None
        try:
            data = json.dumps(body, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise JobRejected(
                JobError("invalid_request", f"not JSON: {e}", kind=FaultKind.FINAL)
            ) from e
        loop = asyncio.get_running_loop()
        job = _Job(job_id, endpoint, task_id, loop.time(), keep_extras=keep_extras, preview=preview)
        job.hires = endpoint == "txt2img" and bool(workflow.get("enable_hr"))
        self._job = job
        post: asyncio.Task[Answer] | None = None
        watch: asyncio.Task[None] | None = None
        try:
            await self._note_running_job(job)
            progress(0.0, "submitted")
            log.info("job %s posted to %s/sdapi/v1/%s", job_id, self.display_url, endpoint)
            post = asyncio.create_task(
                self._http.call("POST", f"/sdapi/v1/{endpoint}", self.run_timeout_s, data=data),
                name=f"a1111-{endpoint}-{job_id}",
            )
            watch = asyncio.create_task(self._watch(job, progress), name=f"a1111-progress-{job_id}")
            await asyncio.wait({post, watch}, return_when=asyncio.FIRST_COMPLETED)
            if not post.done():
                await watch  # the watcher only ends by raising BackendUnavailable
            try:
                answer = post.result()
            except Unreachable as e:
                if e.timed_out:  # it may still be generating
                    await self._send_interrupt(job)
                raise BackendUnavailable(str(e)) from e
            job.done = True
            result = self._result(job, workflow, answer)
            if not job.interrupt_requested:
                await self._check_not_interrupted_elsewhere(job)
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
            if post is not None and not job.done:
                if job.foreign.running:
                    log.warning(
                        "job %s: not interrupting: another client's job holds %s; the "
                        "cancelled request stays queued there",
                        job_id,
                        self.display_url,
                    )
                else:
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
            tasks = {task for task in (post, watch) if task is not None}
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)
            self._job = None

    async def clear(self) -> None:
        """``POST /sdapi/v1/interrupt`` (a generation left running by a dead supervisor); never
        raises. A1111 has no queue of its own to clear."""
        try:
            await self._http.call("POST", "/sdapi/v1/interrupt", self.interrupt_timeout_s)
        except Unreachable as e:
            log.info("a1111 %s: POST /sdapi/v1/interrupt at start: %s", self.display_url, e)
        except Exception:
            log.exception("a1111 %s: clearing left-over work failed", self.display_url)

    async def interrupt(self) -> None:
        """``POST /sdapi/v1/interrupt`` while a job runs; never raises. While another client's
        job holds the server, nothing is sent: the watch loop sends it once ours runs."""
        job = self._job
        if job is None or job.done:
            return
        try:
            job.interrupt_requested = True
            log.info("job %s: interrupt requested", job.job_id)
            if job.foreign.running:
                log.info("job %s: another client's job runs: interrupt deferred", job.job_id)
                return
            await self._send_interrupt(job)
        except Exception:
            log.exception("a1111 %s: interrupt failed", self.display_url)

    async def capabilities(self) -> Capabilities:
        """Checkpoints, LoRAs, scripts and samplers of this server; raises ``Unreachable`` or
        ``CapabilitiesUnreadable``."""
        from supervisor.capabilities import read_a1111_capabilities

        return await read_a1111_capabilities(self._http, self.request_timeout_s)

    async def loaded_models(self) -> frozenset[str] | None:
        """Every name of the checkpoint the server has loaded (``/sdapi/v1/options``)."""
        from supervisor.capabilities import read_a1111_loaded

        return await read_a1111_loaded(self._http, self.request_timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- steps of a run ---------------------------------------------------------------------

    async def _note_running_job(self, job: _Job) -> None:
        """Remember a job that holds the lock before ours is posted: it is not ours."""
        try:
            answer = await self._get_progress(self.request_timeout_s)
        except Unreachable as e:
            raise BackendUnavailable(str(e)) from e
        data = answer.parsed()
        state = data.get("state") if isinstance(data, Mapping) else None
        if answer.status == 200 and isinstance(state, Mapping) and running(state):
            job.foreign.running_at_post(data)
            self._report_foreign(job, state)

    def _result(self, job: _Job, workflow: Mapping[str, Any], answer: Answer) -> BackendResult:
        body = answer.parsed()
        if answer.status == 200:
            if job.interrupt_requested:
                log.info("job %s interrupted", job.job_id)
                raise JobInterrupted(f"{job.endpoint} was interrupted")
            try:
                return self._outputs(job, workflow, body)
            except Malformed as e:
                raise BackendUnavailable(f"/sdapi/v1/{job.endpoint}: {e}") from e
        error_type, message = error_text(body)
        status = answer.status
        what = f"/sdapi/v1/{job.endpoint} answered HTTP {status}"
        details = {"status": status}
        if status == 422:
            raise JobRejected(
                JobError("validation_error", message or what, kind=FaultKind.FINAL, details=details)
            )
        if status in (401, 403):
            raise BackendUnavailable(f"{what}: check the adapter's auth")
        if 400 <= status < 500:
            if body is None or (status == 404 and error_type is None and message == "Not Found"):
                raise BackendUnavailable(f"{what} (is the API enabled?)")
            error = JobError(
                error_type or "HTTPException",
                message or what,
                kind=FaultKind.FINAL,
                details=details,
            )
            raise JobRejected(error)
        if status == 500:
            if body is None:  # an older Forge: FastAPI's bare 500 hides the exception
                text = answer.body[:200].decode(errors="replace")
                message = f"{what} without details: {text}"
            if is_request_error(message):  # the request is wrong: retrying cannot help
                error = JobError(
                    error_type or "HTTPException", message, kind=FaultKind.FINAL, details=details
                )
                raise JobRejected(error)
            error = JobError(
                error_type or "InternalServerError",
                message or what,
                kind=FaultKind.JOB,
                details=details,
            )
            raise JobRuntimeError(error)
        raise BackendUnavailable(f"{what}: {answer.body[:200]!r}")

    def _outputs(self, job: _Job, workflow: Mapping[str, Any], body: Any) -> BackendResult:
        if not isinstance(body, Mapping) or not isinstance(body.get("images"), list):
            raise Malformed("200 without an 'images' list")
        items = body["images"]
        info = parse_info(body)
        wanted = requested_checkpoint(workflow)
        mismatch = checkpoint_mismatch(wanted, info) if wanted else None
        if mismatch:
            raise JobRejected(JobError("CheckpointNotFound", mismatch, kind=FaultKind.FINAL))
        outputs: list[Output] = []
        described: list[dict[str, Any]] = []
        counters = {"image": 0, "grid": 0, "extra": 0}
        for image in classify_images(len(items), info):
            if image.role != "image" and not job.keep_extras:
                continue
            data = decode_image(image.position, items[image.position])
            content_type, extension = sniff(data)
            n = counters[image.role]
            counters[image.role] += 1
            prefix = job.job_id if image.role == "image" else f"{job.job_id}_{image.role}"
            filename = f"{prefix}_{n}.{extension}"
            outputs.append(Output(filename, content_type, data))
            described.append({"filename": filename, "role": image.role, "seed": image.seed})
        if not any(d["role"] == "image" for d in described):
            log.warning("job %s: A1111 answered 200 without generated images", job.job_id)
        details: dict[str, Any] = {"endpoint": job.endpoint, "images": described}
        if info is not None:
            details["info"] = info
        if job.foreign.seen:
            details["foreign_jobs"] = list(job.foreign.seen)
        return BackendResult(tuple(outputs), details)

    async def _check_not_interrupted_elsewhere(self, job: _Job) -> None:
        """One progress read after a 200 we did not interrupt: A1111 leaves
        ``state.interrupted`` / ``skipped`` set after the job (until the next one begins)."""
        try:
            answer = await self._get_progress(self.request_timeout_s)
        except Unreachable as e:
            log.warning("job %s: cannot check for a foreign interrupt: %s", job.job_id, e)
            return
        data = answer.parsed()
        state = data.get("state") if isinstance(data, Mapping) else None
        if answer.status != 200 or not isinstance(state, Mapping) or running(state):
            return  # another job began since: its start cleared the flags
        stopped = [flag for flag in ("interrupted", "skipped") if state.get(flag) is True]
        if stopped:
            message = (
                f"{' and '.join(stopped)} by another client of A1111 (or its UI): the images "
                "are only partly denoised"
            )
            raise JobRuntimeError(JobError("InterruptedElsewhere", message, kind=FaultKind.JOB))

    async def _is_ours(self, job: _Job, data: Mapping[str, Any]) -> bool:
        """Is the job holding the lock ours? Asked only while one is running."""
        if job.task_id is not None and self._task_progress is not False:
            try:
                answer = await self._http.call(
                    "POST",
                    _TASK_PROGRESS_PATH,
                    self.request_timeout_s,
                    data=json.dumps(
                        {"id_task": job.task_id, "id_live_preview": -1, "live_preview": False}
                    ),
                )
            except Unreachable:
                answer = None
            if answer is not None:
                task = answer.parsed()
                if answer.status == 200 and isinstance(task, Mapping) and "active" in task:
                    self._task_progress = True
                    if task.get("active") is True:
                        return True
                    if task.get("queued") is True or task.get("completed") is True:
                        return False  # waiting behind it, or ours is over and it is next
                    # Neither: a server that does not track API task ids (before 1.6).
                else:  # API-only mode has no /internal routes (404); stop asking
                    self._task_progress = False
        return not job.foreign.still_running(data)

    def _report_foreign(self, job: _Job, state: Mapping[str, Any]) -> None:
        name = f"{state.get('job') or 'a job'} started {state.get('job_timestamp')}"
        if job.foreign.add(name):
            log.warning(
                "job %s: %s runs another client's job (%s); an A1111 instance should be "
                "dedicated to fleetq",
                job.job_id,
                self.display_url,
                name,
            )

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
                answer = await self._get_progress(self.request_timeout_s, job.preview is not None)
            except Unreachable as e:
                now = loop.time()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > self.restart_grace_s:
                    raise BackendUnavailable(
                        f"unreachable for more than {self.restart_grace_s:g} s: {e}"
                    ) from e
                continue
            unreachable_since = None
            data = answer.parsed()
            state = data.get("state") if isinstance(data, Mapping) else None
            if answer.status != 200 or not isinstance(state, Mapping):
                continue
            if not running(state):
                job.foreign.idle()  # between jobs: whatever runs next is ours
                continue
            if not await self._is_ours(job, data):
                job.foreign.running = True
                self._report_foreign(job, state)
                if last is None or last[1] != _WAITING_TEXT:
                    last = (best, _WAITING_TEXT)
                    sink(*last)
                continue
            job.foreign.running = False
            point = progress_point(data, hires=job.hires)
            if point is None and state.get("job_count") == -1:
                point = (best, "starting")  # also while A1111 loads another checkpoint
            if point is not None:
                best = max(best, point[0])
                if (best, point[1]) != last:
                    last = (best, point[1])
                    sink(*last)
            _hand_preview(job, data)
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
            await self._http.call("POST", "/sdapi/v1/interrupt", self.interrupt_timeout_s)
        except Unreachable as e:
            log.warning("job %s: POST /sdapi/v1/interrupt failed: %s", job.job_id, e)

    async def _get_progress(self, timeout_s: float, with_image: bool = False) -> Answer:
        params = _PROGRESS_WITH_IMAGE if with_image else _PROGRESS_PARAMS
        return await self._http.call("GET", _PROGRESS_PATH, timeout_s, params=params)


def _hand_preview(job: _Job, data: Any) -> None:
    """Pass on A1111's current image when it is a new one."""
    if job.preview is None:
        return
    image = current_image(data)
    if image is not None and image[0] != job.last_preview:
        job.last_preview = image[0]
        job.preview(*image)
