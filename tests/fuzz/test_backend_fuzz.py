"""Fuzz the backend adapters with what broken servers and proxies send: random bytes, odd JSON,
50 MB and truncated bodies, WebSocket noise. A run ends with a result or a ``BackendError``
subclass (never another exception, never a hang); progress stays in 0..1 and never goes back;
the same adapter then runs a clean job (nothing else disturbed).

tests/backends/test_malformed.py covers well-formed JSON of the wrong shape on each route;
this covers the bytes underneath. Failures found are pinned as strict xfails (reported).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fuzz_servers import (
    GRAPH,
    PNG,
    FakeA1111,
    FakeComfy,
    Frame,
    Handler,
    huge,
    raw,
    serving,
    truncated,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.backends.a1111 import A1111Backend
from supervisor.backends.base import BackendError, BackendResult
from supervisor.backends.comfyui import ComfyUIBackend

FAST_COMFY: dict[str, Any] = {
    "poll_interval_s": 0.02, "check_interval_s": 0.3, "restart_grace_s": 0.3,
    "reconnect_min_s": 0.02, "reconnect_max_s": 0.1, "history_retry_delay_s": 0.01,
    "history_retries": 3, "connect_timeout_s": 2.0, "request_timeout_s": 5.0,
    "terminal_grace_s": 0.2, "interrupt_retry_s": 0.1, "view_timeout_s": 20.0,
}  # fmt: skip
FAST_A1111: dict[str, Any] = {"poll_interval_s": 0.02, "restart_grace_s": 0.3,
                              "request_timeout_s": 5.0, "run_timeout_s": 20.0}  # fmt: skip
FIFTY_MB = 50 * 1024 * 1024
RUN_LIMIT_S = 30.0
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class Progress:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    def __call__(self, fraction: float, text: str) -> None:
        self.calls.append((fraction, text))

    def check(self) -> None:
        fractions = [f for f, _ in self.calls]
        assert all(0.0 <= f <= 1.0 for f in fractions), fractions
        assert fractions == sorted(fractions), "progress never goes back"
        assert all(isinstance(t, str) and len(t) < 1000 for _, t in self.calls)


async def outcome(backend: Any, workflow: Any, progress: Progress) -> BackendResult | BackendError:
    """Run one job; a BackendError is an outcome, anything else fails the test."""
    try:
        return await asyncio.wait_for(backend.run("fuzz-job", workflow, progress), RUN_LIMIT_S)
    except BackendError as e:
        return e


async def clean_run_works(backend: Any, overrides: dict[Any, Any], workflow: Any) -> None:
    """The garbage stops; the same adapter runs the next job to success."""
    overrides.clear()
    result = await outcome(backend, workflow, Progress())
    assert isinstance(result, BackendResult), result
    assert result.outputs and result.outputs[0].data == PNG


def adapter_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(("comfyui-ws-", "a1111-"))
            and not t.done()]  # fmt: skip


# -- ComfyUI: WebSocket noise ----------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=15,
)
FRAME_TYPES = ["status", "progress", "executing", "executed", "execution_cached",
               "progress_state", "execution_start", "execution_success", "crystools.monitor",
               "", "😀"]  # fmt: skip


@st.composite
def noise_frames(draw: st.DrawFn) -> Frame:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return Frame(draw(st.binary(max_size=2000)))
    if kind == 1:
        return Frame(draw(st.text(max_size=200)))
    if kind == 2:
        return Frame(json.dumps(draw(JSON)))
    # A frame of a known type with hostile data; about our prompt (the placeholder) or not.
    data = draw(st.dictionaries(
        st.sampled_from(["node", "value", "max", "nodes", "prompt_id", "output", "display_node"])
        | st.text(max_size=5), JSON, max_size=5,
    ))  # fmt: skip
    if draw(st.booleans()):
        data["prompt_id"] = "{PROMPT}"
    message = {"type": draw(st.sampled_from(FRAME_TYPES)), "data": data}
    return Frame(json.dumps(message))


@settings(FUZZ, max_examples=150)
@given(noise=st.lists(noise_frames(), max_size=25))
async def test_comfyui_survives_websocket_noise(noise: list[Frame]) -> None:
    fake = FakeComfy(noise=noise)
    async with serving(fake.app()) as url:
        backend = ComfyUIBackend(url, **FAST_COMFY)
        try:
            progress = Progress()
            result = await outcome(backend, GRAPH, progress)
            progress.check()
            # Noise alone never fails a job: frames about other prompts, binary previews and
            # junk are ignored; the prompt's own end decides.
            assert isinstance(result, BackendResult), result
            assert result.outputs[0].data == PNG
        finally:
            await backend.aclose()
    assert adapter_tasks() == []


# -- ComfyUI: garbage on every route ---------------------------------------------------------

COMFY_ROUTES = [("POST", "/prompt"), ("GET", "/queue"), ("GET", "/history/{id}"),
                ("GET", "/view"), ("GET", "/ws")]  # fmt: skip
BODIES = st.one_of(
    st.binary(max_size=3000),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"", b"null", b"{}", b"[]", b'"x"', b"NaN", b"{" * 1000, b"\x00" * 100]),
)
STATUSES = st.sampled_from([200, 200, 200, 201, 204, 301, 400, 401, 404, 413, 500, 502, 503])


@FUZZ
@given(route=st.sampled_from(COMFY_ROUTES), status=STATUSES, body=BODIES)
async def test_comfyui_garbage_answers_are_backend_errors(
    route: tuple[str, str], status: int, body: bytes
) -> None:
    fake = FakeComfy(overrides={route: raw(status, body)})
    async with serving(fake.app()) as url:
        backend = ComfyUIBackend(url, **FAST_COMFY)
        try:
            progress = Progress()
            await outcome(backend, GRAPH, progress)
            progress.check()
            probe = await backend.probe()  # never raises
            assert isinstance(probe.detail, str)
            await clean_run_works(backend, fake.overrides, GRAPH)
        finally:
            await backend.aclose()


COMFY_BIG_AND_BROKEN: dict[str, tuple[tuple[str, str], Handler, type | None]] = {
    "prompt-50MB-garbage": (("POST", "/prompt"), huge(FIFTY_MB), BackendError),
    "history-50MB-garbage": (("GET", "/history/{id}"), huge(FIFTY_MB), BackendError),
    "queue-50MB-garbage": (("GET", "/queue"), huge(FIFTY_MB), None),
    "view-50MB-image": (("GET", "/view"), huge(FIFTY_MB, PNG * 1000), BackendResult),
    "prompt-truncated": (("POST", "/prompt"), truncated(10_000, b'{"prompt_id": "'), BackendError),
    "history-truncated": (("GET", "/history/{id}"), truncated(10_000, b"{"), BackendError),
    "view-truncated": (("GET", "/view"), truncated(10_000, PNG), BackendError),
    "ws-truncated": (("GET", "/ws"), truncated(10_000, b"HTTP"), BackendResult),
}


@pytest.mark.parametrize("case", list(COMFY_BIG_AND_BROKEN))
async def test_comfyui_huge_and_truncated_bodies(case: str) -> None:
    route, handler, expected = COMFY_BIG_AND_BROKEN[case]
    fake = FakeComfy(overrides={route: handler})
    async with serving(fake.app()) as url:
        backend = ComfyUIBackend(url, **FAST_COMFY)
        try:
            result = await outcome(backend, GRAPH, Progress())
            if expected is not None:
                assert isinstance(result, expected), result
            if case == "view-50MB-image":
                assert isinstance(result, BackendResult)
                assert len(result.outputs[0].data) == FIFTY_MB
            await clean_run_works(backend, fake.overrides, GRAPH)
        finally:
            await backend.aclose()


async def test_comfyui_probe_of_huge_and_truncated_answers() -> None:
    for handler in (huge(FIFTY_MB), truncated(10_000, b"{")):
        fake = FakeComfy(overrides={("GET", "/system_stats"): handler})
        async with serving(fake.app()) as url:
            backend = ComfyUIBackend(url, **FAST_COMFY)
            try:
                assert not (await backend.probe()).alive
            finally:
                await backend.aclose()


# -- A1111 ---------------------------------------------------------------------------------

PROGRESS_ANSWERS = st.one_of(
    JSON,
    st.binary(max_size=200),
    st.fixed_dictionaries({"progress": JSON, "state": st.dictionaries(
        st.sampled_from(["job_count", "job_no", "sampling_step", "sampling_steps", "interrupted",
                         "job"]), st.integers(-5, 10**6) | JSON, max_size=6)}),
)  # fmt: skip


@FUZZ
@given(answers=st.lists(PROGRESS_ANSWERS, max_size=12))
async def test_a1111_survives_garbage_progress_answers(answers: list[Any]) -> None:
    fake = FakeA1111(progress=list(answers), delay_s=0.3)
    async with serving(fake.app()) as url:
        backend = A1111Backend(url, **FAST_A1111)
        try:
            progress = Progress()
            result = await outcome(backend, {"prompt": "x"}, progress)
            progress.check()
            assert isinstance(result, BackendResult), result
        finally:
            await backend.aclose()
    assert adapter_tasks() == []


@FUZZ
@given(status=STATUSES, body=BODIES)
async def test_a1111_garbage_generation_answers_are_backend_errors(
    status: int, body: bytes
) -> None:
    fake = FakeA1111(overrides={("POST", "/sdapi/v1/txt2img"): raw(status, body)})
    async with serving(fake.app()) as url:
        backend = A1111Backend(url, **FAST_A1111)
        try:
            await outcome(backend, {"prompt": "x"}, Progress())
            assert isinstance((await backend.probe()).detail, str)
            await clean_run_works(backend, fake.overrides, {"prompt": "x"})
        finally:
            await backend.aclose()


@pytest.mark.parametrize(
    ("route", "handler"),
    [
        (("POST", "/sdapi/v1/txt2img"), huge(FIFTY_MB)),
        (("POST", "/sdapi/v1/txt2img"), truncated(10_000, b'{"images": ["')),
        (("GET", "/sdapi/v1/progress"), huge(FIFTY_MB)),
        (("GET", "/sdapi/v1/progress"), truncated(10_000, b"{")),
    ],
    ids=["txt2img-50MB", "txt2img-truncated", "progress-50MB", "progress-truncated"],
)
async def test_a1111_huge_and_truncated_bodies(route: tuple[str, str], handler: Handler) -> None:
    fake = FakeA1111(overrides={route: handler}, delay_s=0.2)
    async with serving(fake.app()) as url:
        backend = A1111Backend(url, **FAST_A1111)
        try:
            result = await outcome(backend, {"prompt": "x"}, Progress())
            if route[1] == "/sdapi/v1/txt2img":
                assert isinstance(result, BackendError), result
            await clean_run_works(backend, fake.overrides, {"prompt": "x"})
        finally:
            await backend.aclose()


# -- known failures (reported) ---------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000


async def _comfy_case(overrides: dict[Any, Any], noise: list[Frame]) -> object:
    fake = FakeComfy(overrides=overrides, noise=noise)
    async with serving(fake.app()) as url:
        backend = ComfyUIBackend(url, **FAST_COMFY)
        try:
            return await outcome(backend, GRAPH, Progress())
        finally:
            await backend.aclose()


async def _a1111_case(fake: FakeA1111) -> object:
    async with serving(fake.app()) as url:
        backend = A1111Backend(url, **FAST_A1111)
        try:
            return await outcome(backend, {"prompt": "x"}, Progress())
        finally:
            await backend.aclose()


KNOWN = {
    "comfyui-deep-json-answer": lambda: _comfy_case({("POST", "/prompt"): raw(200, DEEP)}, []),
    "comfyui-huge-int-progress": lambda: _comfy_case({}, [Frame(
        '{"type": "progress", "data": {"prompt_id": "{PROMPT}", "node": "1", "value": 1'
        + "0" * 400 + ', "max": 2}}')]),
    "a1111-deep-json-info": lambda: _a1111_case(FakeA1111(overrides={
        ("POST", "/sdapi/v1/txt2img"): raw(200, json.dumps(
            {"images": [], "info": DEEP.decode()}).encode())})),
    "a1111-huge-int-progress": lambda: _a1111_case(FakeA1111(delay_s=0.3, progress=[
        {"state": {"job_count": 1, "job_no": 10**400, "sampling_step": 1,
                   "sampling_steps": 2}}])),
}  # fmt: skip


@pytest.mark.parametrize("case", list(KNOWN))
async def test_absurd_json_answers_are_backend_errors(case: str) -> None:
    """Deeply nested JSON and integers too large for a float end as a BackendError."""
    result = await KNOWN[case]()
    assert isinstance(result, (BackendResult, BackendError))
