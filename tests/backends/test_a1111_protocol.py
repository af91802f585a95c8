"""Reading A1111 answers (pure functions) and telling foreign jobs apart, with A1111's own
shapes as input."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.backends.a1111_protocol import (
    checkpoint_mismatch,
    classify_images,
    error_text,
    is_request_error,
    progress_point,
)
from supervisor.backends.a1111_sharing import ForeignJobs

INFO = {"sd_model_name": "sub_xl", "sd_model_hash": "31e35c80fc"}


@pytest.mark.parametrize(
    "wanted",
    ["sub/xl.safetensors [31e35c80fc]", "sub/xl.safetensors", "sub_xl", "other [31e35c80fc]",
     "sub\\xl.ckpt"],
)  # fmt: skip
def test_checkpoint_asked_by_title_file_or_name_matches(wanted: str) -> None:
    assert checkpoint_mismatch(wanted, INFO) is None


@pytest.mark.parametrize("wanted", ["xl.safetensors", "sub_xl [aaaaaaaaaa]", "v1-5"])
def test_another_checkpoint_is_a_mismatch(wanted: str) -> None:
    reason = checkpoint_mismatch(wanted, INFO)
    assert reason is not None and "sub_xl [31e35c80fc]" in reason


def test_no_model_in_info_cannot_be_checked() -> None:
    assert checkpoint_mismatch("xl", {"seed": 1}) is None
    assert checkpoint_mismatch("xl", "not json") is None


def test_grid_images_and_extras_are_told_apart() -> None:
    info = {"index_of_first_image": 1, "all_seeds": [5, 6]}
    roles = [(i.position, i.role, i.seed) for i in classify_images(5, info)]
    assert roles == [(0, "grid", None), (1, "image", 5), (2, "image", 6), (3, "extra", None),
                     (4, "extra", None)]  # fmt: skip
    # An interrupted job returns fewer images than seeds; no info: all are images.
    assert [i.role for i in classify_images(1, {"all_seeds": [1, 2]})] == ["image"]
    assert [i.role for i in classify_images(2, None)] == ["image", "image"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": "RuntimeError", "detail": "", "body": "", "errors": "boom"},
         ("RuntimeError", "boom")),
        ({"error": "OutOfMemoryError", "detail": "", "body": "", "message": "CUDA out of memory"},
         ("OutOfMemoryError", "CUDA out of memory")),
        ({"detail": "Invalid encoded image"}, (None, "Invalid encoded image")),
        ({"detail": [{"loc": ["body", "steps"], "msg": "not an int"}]},
         (None, "steps: not an int")),
    ],
)  # fmt: skip
def test_error_bodies_of_a1111_and_forge(body: dict[str, Any], expected: tuple[Any, str]) -> None:
    assert error_text(body) == expected


def test_request_errors_are_recognised() -> None:
    assert is_request_error("Invalid image url")
    assert is_request_error("could not find upscaler named 4x-Foo")
    assert not is_request_error("CUDA out of memory. Tried to allocate 2.00 GiB")


def _progress(job_count: int, job_no: int, step: int, steps: int, **more: Any) -> dict[str, Any]:
    state = {"job_count": job_count, "job_no": job_no, "sampling_step": step,
             "sampling_steps": steps, "job": "scripts_txt2img",
             "job_timestamp": "20261202"}  # fmt: skip
    return {"state": {**state, **more}}


def test_hires_passes_are_not_batches() -> None:
    assert progress_point(_progress(2, 1, 3, 6), hires=True) == (0.75, "step 3/6 hires")
    assert progress_point(_progress(2, 1, 3, 6)) == (0.75, "step 3/6 batch 2/2")
    text = progress_point(_progress(4, 2, 1, 4), hires=True)
    assert text is not None and text[1] == "step 1/4 batch 2/2"


def test_the_job_running_at_post_time_is_followed_until_it_ends() -> None:
    foreign = ForeignJobs()
    foreign.running_at_post(_progress(1, 0, 3, 20))
    assert foreign.still_running(_progress(1, 0, 9, 20))
    assert not foreign.still_running(_progress(1, 0, 2, 20))  # counters went back: a new job
    assert not foreign.still_running(_progress(1, 0, 12, 20))  # stays over


def test_a_start_time_far_apart_is_another_job() -> None:
    foreign = ForeignJobs()
    foreign.running_at_post({**_progress(1, 0, 3, 20), "progress": 0.5, "eta_relative": 10.0})
    # elapsed = eta * progress / (1 - progress): 10 s in both answers.
    same_job = {**_progress(1, 0, 4, 20), "progress": 0.55, "eta_relative": 10.0 * 0.45 / 0.55}
    assert foreign.still_running(same_job)
    later = {**_progress(1, 0, 5, 20), "progress": 0.5, "eta_relative": 2.0}
    assert not foreign.still_running(later)
