"""Every bad input raises a specific error and writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from fleetq import Client, Settings
from fleetq.errors import (
    InvalidArgument,
    InvalidJobId,
    InvalidPriority,
    InvalidWorkflow,
    PayloadTooLarge,
    UnknownService,
    ValidationError,
)
from fleetq.validation import build_spec

SETTINGS = Settings()
GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {}}}


def test_ui_save_format_is_refused_with_export_hint() -> None:
    ui_graph = {"last_node_id": 9, "nodes": [{"id": 1, "type": "KSampler"}], "links": []}
    with pytest.raises(InvalidWorkflow, match="API format"):
        build_spec(ui_graph, SETTINGS)


@pytest.mark.parametrize(
    ("workflow", "message"),
    [
        ([], "JSON object"),
        ("not json", "not valid JSON"),
        ({}, "empty"),
        ({"1": "EmptyImage"}, "class_type"),
        ({"1": {"inputs": {}}}, "no class_type"),
        ({"1": {"class_type": "X", "inputs": []}}, "inputs"),
        ({"1": {"class_type": "X", "inputs": {"v": float("nan")}}}, "plain JSON"),
    ],
)
def test_malformed_comfyui_graphs(workflow: Any, message: str) -> None:
    with pytest.raises(InvalidWorkflow, match=message):
        build_spec(workflow, SETTINGS)


def test_prompt_wrapper_is_unwrapped() -> None:
    spec = build_spec({"prompt": GRAPH, "client_id": "abc"}, SETTINGS)
    assert json.loads(spec.workflow_json) == GRAPH


@pytest.mark.parametrize(
    "body", [{"steps": "20"}, {"width": 0}, {"prompt": 5}, {"init_images": [1]}, {"steps": True}]
)
def test_bad_a1111_bodies(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidWorkflow):
        build_spec(body, SETTINGS, service="a1111")


def test_comfy_graph_sent_to_a1111_is_refused() -> None:
    with pytest.raises(InvalidWorkflow, match="service 'comfyui'"):
        build_spec(GRAPH, SETTINGS, service="a1111")


@pytest.mark.parametrize("service", ["nope", "", None, 3, "ComfyUI"])
def test_unknown_services(service: Any) -> None:
    with pytest.raises(UnknownService, match="registered services: comfyui, a1111"):
        build_spec(GRAPH, SETTINGS, service=service)


def test_payload_cap() -> None:
    small = Settings(max_payload_bytes=1024)
    big = {"1": {"class_type": "X", "inputs": {"text": "a" * 2000}}}
    with pytest.raises(PayloadTooLarge, match=r"the limit is 1\.0 KiB"):
        build_spec(big, small)


@given(st.integers().filter(lambda p: not -1000 <= p <= 1000))
def test_priorities_out_of_range(priority: int) -> None:
    with pytest.raises(InvalidPriority):
        build_spec(GRAPH, SETTINGS, priority=priority)


@given(st.integers(-1000, 1000))
def test_priorities_in_range(priority: int) -> None:
    assert build_spec(GRAPH, SETTINGS, priority=priority).priority == priority


@given(st.one_of(st.floats(), st.text(), st.booleans(), st.none(), st.lists(st.integers())))
def test_non_integer_priorities(priority: Any) -> None:
    with pytest.raises(InvalidPriority):
        build_spec(GRAPH, SETTINGS, priority=priority)


@given(st.text(max_size=40))
def test_job_id_format(text: str) -> None:
    from fleetq.validation import check_job_id

    if len(text) == 16 and all(c in "0123456789abcdef" for c in text):
        assert check_job_id(text) == text
    else:
        with pytest.raises(InvalidJobId):
            check_job_id(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_arbitrary_json_is_accepted_or_refused_with_a_validation_error(value: Any) -> None:
    try:
        spec = build_spec(value, SETTINGS)
    except ValidationError:
        return
    graph = json.loads(spec.workflow_json)
    assert all("class_type" in node for node in graph.values())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0}, {"max_attempts": 101}, {"max_attempts": "3"},
        {"timeout_s": 0}, {"timeout_s": -1}, {"timeout_s": float("inf")}, {"timeout_s": "10"},
        {"metadata": "x"}, {"metadata": {"k": object()}}, {"metadata": {"": 1}},
        {"metadata": {"k": "v" * 20_000}}, {"idempotency_key": "has space"},
        {"idempotency_key": ""}, {"idempotency_key": "x" * 201},
    ],
)  # fmt: skip
def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        build_spec(GRAPH, SETTINGS, **kwargs)


@hyp_settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    workflow=json_values,
    service=st.sampled_from(["comfyui", "a1111", "bogus"]),
    priority=st.integers(-2000, 2000),
)
def test_refused_submits_write_nothing(
    client: Client, workflow: Any, service: str, priority: int
) -> None:
    before = _namespace_contents(client)
    try:
        client.submit(workflow, service=service, priority=priority)
    except ValidationError:
        assert _namespace_contents(client) == before


def _namespace_contents(client: Client) -> dict[bytes, bytes]:
    """Every key of the test's namespace with its serialized value: what a submit could write.
    (A count of the whole server also moves when keys of earlier tests expire meanwhile.)"""
    redis = client.store.redis
    return {key: redis.dump(key) for key in redis.scan_iter(match=client.store.keys.prefix + "*")}
