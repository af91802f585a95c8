"""The ComfyUI adapter's parsers against answers recorded from a real ComfyUI 0.3.64."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from backends_testkit import CAPTURES, ProgressLog, load_capture, nondecreasing

from supervisor.backends.comfyui_protocol import (
    FileRef,
    Malformed,
    ProgressTracker,
    accepted,
    extract_prompt,
    finished,
    output_files,
    queue_ids,
    queue_remaining,
    rejection,
)

REJECTIONS = sorted(
    path.stem
    for path in Path(CAPTURES).glob("post_prompt_invalid_*.json")
    if load_capture(path.name)["status"] == 400
)


def _history_entry(name: str) -> Any:
    [entry] = load_capture(f"{name}.json")["body_json"].values()
    return entry


def test_every_captured_error_type_is_covered() -> None:
    types = {load_capture(f"{n}.json")["body_json"]["error"]["type"] for n in REJECTIONS}
    assert types == {
        "invalid_prompt",
        "prompt_no_outputs",
        "no_prompt",
        "prompt_outputs_failed_validation",
    }


@pytest.mark.parametrize("name", REJECTIONS)
def test_rejection_of_each_captured_400(name: str) -> None:
    body = load_capture(f"{name}.json")["body_json"]
    error = rejection(body)
    assert error.type == body["error"]["type"] and error.kind == "final"
    assert error.message
    if body["node_errors"]:
        first = next(iter(body["node_errors"]))
        assert error.node == first
        assert set(error.details["node_errors"]) == set(body["node_errors"])
        assert error.details["reason"] == body["node_errors"][first]["errors"][0]["type"]


@pytest.mark.parametrize(
    ("name", "node", "message"),
    [
        ("post_prompt_invalid_value_out_of_range", "1", "Value 0 smaller than min of 1: width"),
        ("post_prompt_invalid_unknown_class", "1", "node NoSuchNode does not exist"),
        ("post_prompt_invalid_missing_class_type", "1", "missing the class_type property"),
        ("post_prompt_invalid_bad_combo_value", "2", "upscale_method: 'bogus' not in"),
        ("post_prompt_invalid_link_to_missing_node", "2", "Exception when validating node: '99'"),
        ("post_prompt_invalid_no_prompt_key", None, "No prompt provided"),
        ("post_prompt_invalid_no_output_node", None, "Prompt has no outputs"),
    ],
)
def test_rejection_names_node_and_message(name: str, node: str | None, message: str) -> None:
    error = rejection(load_capture(f"{name}.json")["body_json"])
    assert error.node == node
    assert message in error.message


def test_rejection_trims_tracebacks_and_input_configs() -> None:
    error = rejection(load_capture("post_prompt_invalid_link_to_missing_node.json")["body_json"])
    [reason] = error.details["node_errors"]["2"]["errors"]
    assert isinstance(reason["extra_info"]["traceback"], list)
    error = rejection(load_capture("post_prompt_invalid_bad_combo_value.json")["body_json"])
    assert "input_config" not in error.details["node_errors"]["2"]["errors"][0]["extra_info"]


def test_rejection_of_old_servers_string_error() -> None:
    error = rejection({"error": "no prompt", "node_errors": []})
    assert (error.type, error.message) == ("no_prompt", "no prompt")


@pytest.mark.parametrize("body", [None, [], {"node_errors": {}}, {"error": 3}])
def test_rejection_of_a_malformed_400(body: Any) -> None:
    with pytest.raises(Malformed):
        rejection(body)


def test_accepted_keeps_node_errors_of_a_200() -> None:
    body = load_capture("post_prompt_invalid_one_good_one_bad_output.json")["body_json"]
    ok = accepted(body, "mine")
    assert ok.prompt_id == body["prompt_id"] and ok.number == body["number"]
    assert list(ok.node_errors) == ["3"]
    assert ok.node_errors["3"]["errors"][0]["type"] == "required_input_missing"


def test_accepted_plain_success() -> None:
    ok = accepted(load_capture("post_prompt_success.json")["body_json"], "x")
    assert ok.node_errors == {}
    with pytest.raises(Malformed):
        accepted("not an object", "x")


def test_history_success_lists_the_saved_file() -> None:
    end = finished(_history_entry("get_history_id_after_completion"))
    assert end.outcome == "success"
    [ref] = end.files
    assert ref.type == "output" and ref.filename.endswith(".png")


def test_history_of_a_cached_resubmit_points_at_the_old_file() -> None:
    end = finished(_history_entry("get_history_identical_resubmit"))
    assert end.outcome == "success" and [r.filename for r in end.files] == ["probe_00001_.png"]


def test_history_runtime_error() -> None:
    end = finished(_history_entry("get_history_runtime_error"))
    assert end.outcome == "error" and end.error is not None
    assert end.error.type == "re.error" and end.error.node == "1" and end.error.kind == "job"
    assert end.error.message == "missing ), unterminated subpattern at position 0"
    assert end.error.details["node_type"] == "RegexReplace"
    assert end.error.details["traceback"]


def test_history_interrupted() -> None:
    assert finished(_history_entry("get_history_interrupted")).outcome == "interrupted"


@pytest.mark.parametrize("entry", [[], {"outputs": []}])
def test_malformed_history(entry: Any) -> None:
    with pytest.raises(Malformed):
        finished(entry)


def test_temp_previews_only_when_nothing_else() -> None:
    preview = {"filename": "ComfyUI_temp_x_00001_.png", "subfolder": "", "type": "temp"}
    saved = {"filename": "a_00001_.png", "subfolder": "jobs/j", "type": "output"}
    both = {"9": {"images": [preview]}, "3": {"images": [saved]}, "5": {"text": ["hello"]}}
    assert output_files(both) == (FileRef("a_00001_.png", "jobs/j", "output", "3"),)
    assert output_files({"9": {"images": [preview]}}) == (
        FileRef("ComfyUI_temp_x_00001_.png", "", "temp", "9"),
    )
    gif = {"filename": "anim.gif", "subfolder": "", "type": "output", "format": "image/gif"}
    assert [r.filename for r in output_files({"7": {"gifs": [gif], "animated": [True]}})] == [
        "anim.gif"
    ]


def test_queue_shapes() -> None:
    running, pending = queue_ids(
        {"queue_running": [[1, "a", {}, {}, []]], "queue_pending": [[2, "b", {}, {}, []]]}
    )
    assert (running, pending) == ({"a"}, {"b"})
    assert queue_remaining({"exec_info": {"queue_remaining": 2}}) == 2
    bad_queues: list[dict[str, Any]] = [{}, {"queue_running": None, "queue_pending": []}]
    for bad_queue in bad_queues:
        with pytest.raises(Malformed):
            queue_ids(bad_queue)
    with pytest.raises(Malformed):
        queue_remaining({"exec_info": {"queue_remaining": "1"}})


def test_extract_prompt_accepts_graph_or_body() -> None:
    graph = load_capture("post_prompt_success.json")["request"]["body"]["prompt"]
    assert extract_prompt(graph) == (graph, {})
    body = {"prompt": graph, "extra_data": {"k": 1}, "client_id": "x", "number": 3}
    assert extract_prompt(body) == (graph, {"extra_data": {"k": 1}})
    bad_workflows: list[dict[str, Any]] = [
        {"prompt": [1, 2]},
        {"1": "node"},
        {"1": {"class_type": "X", "inputs": []}},
    ]
    for bad in bad_workflows:
        with pytest.raises(ValueError):
            extract_prompt(bad)


def _replay(capture: str, request: str) -> ProgressLog:
    graph = load_capture(request)["request"]["body"]["prompt"]
    frames = [line["json"] for line in load_capture(capture) if "json" in line]
    prompt_ids = [f["data"]["prompt_id"] for f in frames if f["type"] == "execution_start"]
    progress = ProgressLog()
    tracker = ProgressTracker(graph, progress)
    for frame in frames:
        if frame["data"].get("prompt_id") == prompt_ids[0]:
            tracker.feed(frame["type"], frame["data"])
    tracker.done()
    return progress


def test_progress_replayed_from_a_real_upscale_run() -> None:
    progress = _replay("ws_progress_upscale_success.jsonl", "post_prompt_upscale_progress.json")
    assert nondecreasing(progress.fractions)
    assert "ImageUpscaleWithModel 1/25" in progress.texts
    assert "ImageUpscaleWithModel 25/25" in progress.texts
    assert progress.calls[-1] == (1.0, "done")
    # Inside the upscale node (node 3 of 4) the bar moves from 2/4 towards 3/4.
    inside = [f for f, t in progress.calls if t.startswith("ImageUpscaleWithModel ")]
    assert 0.5 <= inside[0] < inside[-1] <= 0.75


def test_progress_replayed_from_a_real_small_run() -> None:
    progress = _replay("ws_small_success.jsonl", "post_prompt_success.json")
    assert nondecreasing(progress.fractions)
    assert progress.texts[0] == "running" and "SaveImage" in progress.texts
    assert progress.calls[-1] == (1.0, "done")
