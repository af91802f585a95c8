"""The ComfyUI adapter: one puller drives one ComfyUI instance through its HTTP and WS API.

How a run goes (ComfyUI 0.3.64, see ``reference/backends.md`` and the captures):

1. The adapter keeps one WebSocket (``/ws``) with its own ``clientId`` (a new uuid4 hex for
   every connection, so the duplicate-clientId bug cannot strike) and posts
   ``POST /prompt {"prompt", "client_id", "prompt_id"}`` with a fresh uuid4 ``prompt_id``.
   ``number`` is never used. A 400 is :class:`JobRejected` (type, node and message from
   ``error`` / ``node_errors``); a 200 with ``node_errors`` is a success whose invalid outputs
   were dropped: they are logged and returned in ``BackendResult.details["node_errors"]``.
2. Progress comes from the prompt's ``execution_cached``, ``executing``, ``progress`` and
   ``progress_state`` frames (see :class:`~.comfyui_protocol.ProgressTracker`); live previews
   from its binary preview frames (:mod:`.comfyui_previews`: those naming another prompt are
   ignored). ComfyUI sends previews only when started with ``--preview-method`` other than
   ``none`` (newer versions also honour ``extra_data.preview_method`` in the workflow).
3. The prompt is done only on ``executing`` with ``node: null`` and our ``prompt_id`` (history
   is written just before it; ``execution_success`` comes earlier, before history). Then
   ``GET /history/{prompt_id}`` (retried briefly while ``{}``) gives the outcome and output
   files, fetched with ``GET /view``. ``execution_error`` is :class:`JobRuntimeError`,
   ``execution_interrupted`` :class:`JobInterrupted`.
4. If the socket drops (or was never up), the run follows the prompt by polling ``GET /queue``
   then ``GET /history/{id}`` every ``poll_interval_s`` while the socket is reconnected with
   backoff (under a new ``clientId``, so this prompt's frames are lost and it finishes by
   polling). While the socket is up, the same check runs every ``check_interval_s`` as a
   safety net against sockets that go silent.
5. A prompt missing from both ``/queue`` and ``/history`` means the server restarted (it
   keeps both in memory): :class:`BackendUnavailable`, as is a server that cannot be reached
   for longer than ``restart_grace_s``, or that answers something malformed.

Decision on HTTP 500 for ``POST /prompt``: ComfyUI answers a bare ``text/plain`` 500 when it
cannot parse the body (invalid JSON, ``prompt`` not an object of objects). The adapter checks
those shapes itself before posting (:class:`JobRejected` ``invalid_prompt``) and serialises
the JSON itself, so a 500 that still comes is the server's fault: :class:`BackendUnavailable`
(the job is requeued without a charge and the puller waits for a passing probe).

``interrupt()`` deletes the prompt from the pending queue (``POST /queue {"delete": [id]}``)
and then interrupts it if it runs (``POST /interrupt {"prompt_id": id}``), in that order so a
prompt moving from pending to running in between is still caught; it is sent again when the
prompt is seen starting a node, because ComfyUI clears the flag when a prompt starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from fleetq.backoff import BackoffPolicy
from fleetq.model import FaultKind, JobError, Output
from fleetq.requirements import Capabilities
from fleetq.urls import safe_url

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
from .comfyui_http import NETWORK_ERRORS, ComfyHttp, Unreachable, describe
from .comfyui_inputs import deliver, remove_uploads
from .comfyui_previews import PreviewFrame
from .comfyui_protocol import (
    FileRef,
    Finished,
    Malformed,
    ProgressTracker,
    accepted,
    extract_prompt,
    finished,
    node_error_summary,
    queue_ids,
    queue_remaining,
    rejection,
    system_info,
    unfetchable,
    view_query,
)
from .comfyui_socket import CLOSED, PREVIEW, EventSocket, Inbox

log = logging.getLogger(__name__)

#: Event a run receives when ``interrupt()`` wants it to look at the server now.
_WAKE = "fleetq.wake"


@dataclass
class _Job:
    job_id: str
    prompt_id: str
    started: float
    events: Inbox = field(default_factory=Inbox)
    submitted: bool = False
    done: bool = False
    interrupt_requested: bool = False
    last_interrupt_at: float = float("-inf")
    unreachable_since: float | None = None
    node_errors: Mapping[str, Any] = field(default_factory=dict)
    #: ``execution_error`` / ``execution_interrupted`` seen; ``executing{null}`` comes next.
    terminal: Finished | None = None
    terminal_at: float = 0.0
    preview: PreviewSink | None = None


class ComfyUIBackend:
    """One ComfyUI instance (``url`` like ``http://127.0.0.1:8188``) behind one puller.

    ``session`` is used as given and not closed (else the adapter opens and closes its own).
    All times are seconds: ``request_timeout_s`` for API calls, ``probe_timeout_s`` for
    :meth:`probe`, ``view_timeout_s`` per output download, ``connect_timeout_s`` for the
    WebSocket handshake, ``heartbeat_s`` WebSocket pings, ``poll_interval_s`` between polls
    once the socket is lost, ``check_interval_s`` between safety checks while it is up,
    ``history_retries`` x ``history_retry_delay_s`` for a history still ``{}`` after the
    done signal, ``terminal_grace_s`` to wait for ``executing{null}`` after an error frame,
    ``restart_grace_s`` of unreachability before the run gives up, ``reconnect_min_s`` ..
    ``reconnect_max_s`` WebSocket reconnect backoff, ``interrupt_timeout_s`` per interrupt
    call and ``interrupt_retry_s`` between repeated interrupts of a prompt that still runs.
    ``input_dir`` is the instance's input folder, if this machine can reach it: uploads of a
    job's input files are removed from it after the job (:mod:`.comfyui_inputs`).
    """

    service = "comfyui"

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession | None = None,
        *,
        request_timeout_s: float = 10.0,
        probe_timeout_s: float = 2.0,
        view_timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        heartbeat_s: float = 15.0,
        poll_interval_s: float = 0.25,
        check_interval_s: float = 5.0,
        history_retries: int = 20,
        history_retry_delay_s: float = 0.05,
        terminal_grace_s: float = 2.0,
        restart_grace_s: float = 15.0,
        reconnect_min_s: float = 0.2,
        reconnect_max_s: float = 5.0,
        interrupt_timeout_s: float = 3.0,
        interrupt_retry_s: float = 1.0,
        input_dir: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        #: The URL without credentials, for logs and the dashboard.
        self.display_url = safe_url(self.url)
        self._http = ComfyHttp(self.url, session)
        self.request_timeout_s = request_timeout_s
        self.probe_timeout_s = probe_timeout_s
        self.view_timeout_s = view_timeout_s
        self.poll_interval_s = poll_interval_s
        self.check_interval_s = check_interval_s
        self.history_retries = history_retries
        self.history_retry_delay_s = history_retry_delay_s
        self.terminal_grace_s = terminal_grace_s
        self.restart_grace_s = restart_grace_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.interrupt_timeout_s = interrupt_timeout_s
        self.interrupt_retry_s = interrupt_retry_s
        #: The instance's input folder, when the supervisor can reach it: a job's uploads
        #: are removed from it after the job.
        self.input_dir = input_dir
        ws_base = "ws" + self.url[len("http") :] if self.url.startswith("http") else self.url
        self._connect_timeout_s = connect_timeout_s
        self._socket = EventSocket(
            ws_base + "/ws", heartbeat_s=heartbeat_s, connect_timeout_s=connect_timeout_s
        )
        self._job: _Job | None = None

    @property
    def client_id(self) -> str | None:
        """The ``clientId`` of the open WebSocket (None while it is not connected)."""
        return self._socket.client_id

    # -- Backend protocol -----------------------------------------------------------------

    async def probe(self) -> BackendProbe:
        """``GET /system_stats`` (alive, version, devices) and ``GET /prompt`` (idle when
        ``queue_remaining`` is 0 and this adapter runs nothing). Never raises."""
        try:
            stats = await self._http.call("GET", "/system_stats", self.probe_timeout_s)
            info = system_info(stats.json("GET /system_stats"))
            answer = await self._http.call("GET", "/prompt", self.probe_timeout_s)
            remaining = queue_remaining(answer.json("GET /prompt"))
        except (Unreachable, Malformed) as e:
            return BackendProbe(alive=False, idle=False, detail=str(e))
        except Exception as e:  # never raise from a probe
            log.exception("comfyui %s: probe failed", self.display_url)
            return BackendProbe(alive=False, idle=False, detail=f"probe failed: {e!r}")
        info["queue_remaining"] = remaining
        job = self._job
        if job is not None:
            return BackendProbe(True, False, f"running job {job.job_id}", info)
        if remaining:
            return BackendProbe(True, False, f"{remaining} prompt(s) queued or running", info)
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
        """Run ``workflow`` (an API-format graph, or a ``/prompt`` body with ``prompt``) to
        its end, uploading ``inputs`` first (:mod:`.comfyui_inputs`) and handing its live
        previews to ``preview``. Raises JobRejected, JobRuntimeError, JobInterrupted or
        BackendUnavailable; cancelling the calling task interrupts the prompt (bounded) and
        propagates."""
        if self._job is not None:
            raise RuntimeError(f"comfyui {self.display_url} already runs job {self._job.job_id}")
        try:
            graph, extra = extract_prompt(workflow)
        except ValueError as e:
            log.info("job %s rejected before submitting: %s", job_id, e)
            raise JobRejected(JobError("invalid_prompt", str(e), kind=FaultKind.FINAL)) from e
        loop = asyncio.get_running_loop()
        job = _Job(job_id, str(uuid.uuid4()), loop.time(), preview=preview)
        tracker = ProgressTracker(graph, progress)
        self._job = job
        try:
            if inputs:
                graph = await deliver(self._http, job_id, graph, inputs, self.request_timeout_s)
            await self._ensure_socket()
            self._socket.listen(job.events)
            await self._submit(job, graph, extra)
            tracker.status("queued")
            return await self._complete(job, await self._follow(job, tracker), tracker)
        except asyncio.CancelledError:
            log.info("job %s prompt %s: run cancelled", job_id, job.prompt_id)
            if job.submitted and not job.done:
                await self._stop_remote(job)
            raise
        except (JobRejected, JobRuntimeError) as e:
            log.info("job %s prompt %s failed: %s", job_id, job.prompt_id, e)
            raise
        except BackendUnavailable as e:
            log.warning("job %s prompt %s: backend unavailable: %s", job_id, job.prompt_id, e)
            raise
        except Malformed as e:  # e.g. a history entry of the wrong shape
            log.warning("job %s prompt %s: malformed answer: %s", job_id, job.prompt_id, e)
            raise BackendUnavailable(str(e)) from e
        except (RecursionError, OverflowError) as e:  # absurd JSON: nested too deep, huge numbers
            log.warning("job %s prompt %s: malformed answer: %r", job_id, job.prompt_id, e)
            # Charged to the job (bounded by its attempts): it may be what the job produced.
            error = JobError("MalformedAnswer", f"absurd answer from ComfyUI: {type(e).__name__}")
            raise JobRuntimeError(error) from e
        finally:
            self._socket.unlisten(job.events)
            self._job = None
            if inputs and self.input_dir:
                await remove_uploads(self.input_dir, job_id)

    async def clear(self) -> None:
        """``POST /queue {"clear": true}`` then a global ``POST /interrupt``; never raises."""
        for path, payload in (("/queue", {"clear": True}), ("/interrupt", {})):
            try:
                await self._http.call(
                    "POST", path, self.interrupt_timeout_s, data=json.dumps(payload)
                )
            except Unreachable as e:
                log.info("comfyui %s: POST %s at start: %s", self.display_url, path, e)
            except Exception:
                log.exception("comfyui %s: clearing left-over work failed", self.display_url)
                return

    async def interrupt(self) -> None:
        """Stop the running job: delete it if pending, interrupt it if running. Never raises."""
        job = self._job
        if job is None or job.done:
            return
        try:
            job.interrupt_requested = True
            log.info("job %s prompt %s: interrupt requested", job.job_id, job.prompt_id)
            if job.submitted:
                await self._stop_remote(job)
            job.events.put_nowait((_WAKE, {}))
        except Exception:
            log.exception("comfyui %s: interrupt failed", self.display_url)

    async def capabilities(self) -> Capabilities:
        """Node classes and model files of this instance (``GET /object_info``); raises
        ``Unreachable`` or ``CapabilitiesUnreadable``."""
        from supervisor.capabilities import read_comfyui_capabilities

        return await read_comfyui_capabilities(self._http)

    async def loaded_models(self) -> frozenset[str] | None:
        """ComfyUI does not say which checkpoint it holds: None (the last job's is used)."""
        return None

    async def aclose(self) -> None:
        await self._socket.close()
        await self._http.aclose()

    # -- steps of a run ---------------------------------------------------------------------

    async def _ensure_socket(self) -> None:
        if self._socket.connected:
            return
        try:
            await self._socket.connect(self._http.session())
        except NETWORK_ERRORS as e:
            log.warning(
                "comfyui %s: websocket unavailable (%s)",
                self.url,
                describe(e, self._connect_timeout_s),
            )

    async def _submit(self, job: _Job, graph: dict[str, Any], extra: dict[str, Any]) -> None:
        client_id = self._socket.client_id or uuid.uuid4().hex
        body = {"prompt": graph, **extra, "client_id": client_id, "prompt_id": job.prompt_id}
        try:
            data = json.dumps(body, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise JobRejected(
                JobError("invalid_prompt", f"not JSON: {e}", kind=FaultKind.FINAL)
            ) from e
        # From here on the prompt may exist on the server (an answer can be lost), so a
        # cancel or an interrupt must reach it.
        job.submitted = True
        try:
            answer = await self._http.call("POST", "/prompt", self.request_timeout_s, data=data)
        except Unreachable as e:
            if e.timed_out:  # it may have been queued all the same
                await self._stop_remote(job)
            raise BackendUnavailable(str(e)) from e
        try:
            if answer.status == 400:
                raise JobRejected(rejection(answer.json("POST /prompt", ok_only=False)))
            if answer.status != 200:
                raise BackendUnavailable(
                    f"POST /prompt answered HTTP {answer.status}: {answer.body[:200]!r}"
                )
            ok = accepted(answer.json("POST /prompt"), job.prompt_id)
        except Malformed as e:
            raise BackendUnavailable(str(e)) from e
        finally:
            job.submitted = answer.status == 200
        if ok.prompt_id != job.prompt_id:  # a server older than 2025-07 picks its own
            log.info(
                "job %s: server renamed prompt %s to %s", job.job_id, job.prompt_id, ok.prompt_id
            )
            job.prompt_id = ok.prompt_id
        job.node_errors = ok.node_errors
        log.info(
            "job %s submitted as prompt %s to %s (client %s)",
            job.job_id,
            job.prompt_id,
            self.display_url,
            client_id,
        )
        if ok.node_errors:
            log.warning(
                "job %s prompt %s: outputs dropped by validation, the rest runs: %s",
                job.job_id,
                job.prompt_id,
                node_error_summary(ok.node_errors),
            )
        if job.interrupt_requested:
            await self._stop_remote(job)

    async def _follow(self, job: _Job, tracker: ProgressTracker) -> Finished:
        """Wait for the prompt's end from its frames, or by polling while the socket is lost."""
        loop = asyncio.get_running_loop()
        polling = False
        next_poll = loop.time() + self.check_interval_s
        reconnect = BackoffPolicy(self.reconnect_min_s, self.reconnect_max_s)
        failed_reconnects = 0
        next_reconnect = loop.time()
        while True:
            now = loop.time()
            terminal = job.terminal
            if terminal is not None and now >= job.terminal_at + self.terminal_grace_s:
                return terminal
            if now >= next_poll:
                result = await self._poll(job)
                if result is not None:
                    return result
                next_poll = loop.time() + (
                    self.poll_interval_s if polling else self.check_interval_s
                )
            if polling and not self._socket.connected and loop.time() >= next_reconnect:
                reconnected = await self._reconnect(job)
                failed_reconnects = 0 if reconnected else failed_reconnects + 1
                # After a success wait reconnect_min_s, after the first failure twice that, ...
                next_reconnect = loop.time() + reconnect.delay_s(failed_reconnects + 1)
            wait_s = next_poll - loop.time()
            if terminal is not None:
                wait_s = min(wait_s, job.terminal_at + self.terminal_grace_s - loop.time())
            if polling and not self._socket.connected:
                wait_s = min(wait_s, next_reconnect - loop.time())
            event = await job.events.get(wait_s)
            if event is None:
                continue
            kind, data = event
            if kind == CLOSED:
                if not polling:
                    log.warning(
                        "job %s prompt %s: websocket lost; following by polling",
                        job.job_id,
                        job.prompt_id,
                    )
                polling = True
                next_poll = loop.time()
            elif kind == _WAKE:
                next_poll = loop.time()
            elif kind == PREVIEW:
                _hand_preview(job, data["frame"])
            elif data.get("prompt_id") == job.prompt_id:
                result = await self._on_frame(job, tracker, kind, data)
                if result is not None:
                    return result
                if kind == "executing" and data.get("node") is None:
                    polling, next_poll = True, loop.time()  # done, yet history is empty

    async def _on_frame(
        self, job: _Job, tracker: ProgressTracker, kind: str, data: Mapping[str, Any]
    ) -> Finished | None:
        if kind == "executing" and data.get("node") is None:
            if job.terminal is not None:
                return job.terminal
            return await self._history_when_done(job)
        tracker.feed(kind, data)
        if kind == "execution_start":
            log.info("job %s prompt %s running", job.job_id, job.prompt_id)
        if kind in ("execution_start", "executing"):
            await self._repeat_interrupt(job)
        elif kind in ("execution_error", "execution_interrupted"):
            job.terminal = finished({"status": {"messages": [[kind, dict(data)]]}})
            job.terminal_at = asyncio.get_running_loop().time()
        return None

    async def _history_when_done(self, job: _Job) -> Finished | None:
        """History after ``executing{null}``: there by then, but retried while ``{}``."""
        for attempt in range(self.history_retries + 1):
            if attempt:
                await asyncio.sleep(self.history_retry_delay_s)
            try:
                entry = await self._history(job)
            except Unreachable:
                return None  # the polling path applies the restart grace
            if entry is not None:
                return finished(entry)
        log.warning(
            "job %s prompt %s: done, but its history is still empty; polling",
            job.job_id,
            job.prompt_id,
        )
        return None

    async def _poll(self, job: _Job) -> Finished | None:
        """``GET /queue`` then ``GET /history/{id}``: None while queued or running (or briefly
        unreachable); raises BackendUnavailable when the prompt vanished (restart)."""
        loop = asyncio.get_running_loop()
        try:
            answer = await self._http.call("GET", "/queue", self.request_timeout_s)
            running, pending = queue_ids(answer.json("GET /queue"))
            if job.prompt_id in running or job.prompt_id in pending:
                job.unreachable_since = None
                await self._repeat_interrupt(job)
                return None
            entry = await self._history(job)
        except Unreachable as e:
            now = loop.time()
            if job.unreachable_since is None:
                job.unreachable_since = now
                log.warning(
                    "job %s prompt %s: %s unreachable (%s)", job.job_id, job.prompt_id, self.url, e
                )
            if now - job.unreachable_since > self.restart_grace_s:
                raise BackendUnavailable(
                    f"unreachable for more than {self.restart_grace_s:g} s: {e}"
                ) from e
            return None
        except Malformed as e:
            raise BackendUnavailable(str(e)) from e
        job.unreachable_since = None
        if entry is not None:
            return finished(entry)
        if job.interrupt_requested:  # deleted from the pending queue by interrupt()
            return Finished("interrupted")
        raise BackendUnavailable(
            f"prompt {job.prompt_id} vanished from /queue and /history: the backend restarted"
        )

    async def _history(self, job: _Job) -> Any | None:
        answer = await self._http.call("GET", f"/history/{job.prompt_id}", self.request_timeout_s)
        body = answer.json("GET /history")
        if not isinstance(body, Mapping):
            raise Malformed(f"GET /history answered {str(body)[:200]}")
        return body.get(job.prompt_id)

    async def _reconnect(self, job: _Job) -> bool:
        try:
            await self._socket.connect(self._http.session())
        except NETWORK_ERRORS as e:
            log.debug(
                "comfyui %s: websocket reconnect failed: %s",
                self.url,
                describe(e, self._connect_timeout_s),
            )
            return False
        self._socket.listen(job.events)
        log.info(
            "job %s prompt %s: websocket reconnected as %s (this prompt finishes by polling)",
            job.job_id,
            job.prompt_id,
            self._socket.client_id,
        )
        return True

    async def _complete(self, job: _Job, end: Finished, tracker: ProgressTracker) -> BackendResult:
        job.done = True
        elapsed_s = asyncio.get_running_loop().time() - job.started
        if end.outcome == "interrupted":
            by = "" if job.interrupt_requested else " (not requested by fleetq)"
            log.info(
                "job %s prompt %s interrupted%s after %.2f s",
                job.job_id,
                job.prompt_id,
                by,
                elapsed_s,
            )
            raise JobInterrupted(f"prompt {job.prompt_id} was interrupted{by}")
        if end.outcome == "error":
            assert end.error is not None
            raise JobRuntimeError(end.error)
        outputs = tuple([await self._fetch(ref) for ref in end.files])
        tracker.done()
        details: dict[str, Any] = {"prompt_id": job.prompt_id}
        if job.node_errors:
            details["node_errors"] = dict(job.node_errors)
        if end.texts:
            details["texts"] = list(end.texts)
        log.info(
            "job %s prompt %s completed: %d output(s) in %.2f s",
            job.job_id,
            job.prompt_id,
            len(outputs),
            elapsed_s,
        )
        return BackendResult(outputs, details)

    async def _fetch(self, ref: FileRef) -> Output:
        unsafe = unfetchable(ref)
        if unsafe is not None:
            # The job named the file; asking ComfyUI for it would look like a backend outage.
            raise JobRejected(unsafe)
        try:
            answer = await self._http.call(
                "GET", "/view", self.view_timeout_s, params=view_query(ref)
            )
        except Unreachable as e:
            raise BackendUnavailable(f"GET /view {ref.filename}: {e}") from e
        if answer.status == 404:
            where = f"{ref.subfolder}/{ref.filename}" if ref.subfolder else ref.filename
            error = JobError(
                "OutputMissing",
                f"{where} ({ref.type}) is listed in history but /view answered 404",
                node=ref.node,
                kind=FaultKind.JOB,
            )
            raise JobRuntimeError(error)
        if answer.status != 200:
            raise BackendUnavailable(f"GET /view {ref.filename} answered HTTP {answer.status}")
        content_type = answer.content_type
        if not content_type or content_type == "application/octet-stream":
            content_type = mimetypes.guess_type(ref.filename)[0] or "application/octet-stream"
        return Output(ref.filename, content_type, answer.body)

    async def _stop_remote(self, job: _Job) -> None:
        """Delete the prompt if pending, then interrupt it if running; failures only logged."""
        job.last_interrupt_at = asyncio.get_running_loop().time()
        for path, payload in (
            ("/queue", {"delete": [job.prompt_id]}),
            ("/interrupt", {"prompt_id": job.prompt_id}),
        ):
            try:
                await self._http.call(
                    "POST", path, self.interrupt_timeout_s, data=json.dumps(payload)
                )
            except Unreachable as e:
                log.warning(
                    "job %s prompt %s: POST %s failed: %s", job.job_id, job.prompt_id, path, e
                )

    async def _repeat_interrupt(self, job: _Job) -> None:
        """ComfyUI clears the interrupt flag when a prompt starts: repeat it while it runs."""
        if not job.interrupt_requested or job.done:
            return
        if asyncio.get_running_loop().time() - job.last_interrupt_at >= self.interrupt_retry_s:
            await self._stop_remote(job)


def _hand_preview(job: _Job, frame: PreviewFrame) -> None:
    """Pass on a preview of this prompt. A frame without metadata (an older server) has no
    prompt id: on a socket of its own, with one prompt at a time, it is this prompt's."""
    if job.preview is not None and frame.prompt_id in (None, job.prompt_id):
        job.preview(frame.data, frame.content_type)
