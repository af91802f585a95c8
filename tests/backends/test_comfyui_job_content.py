"""Job content cannot break the ComfyUI adapter's requests: output names with any characters
are fetched intact, and a name ComfyUI cannot serve fails the job, not the backend."""

from __future__ import annotations

from typing import Any

import pytest
from backends_testkit import PNG_MAGIC, ProgressLog, fake_graph

from supervisor.backends.base import JobRejected
from supervisor.backends.comfyui import ComfyUIBackend
from supervisor.sim.comfyui import FakeComfyUI


def saving_as(job_id: str, prefix: str) -> dict[str, Any]:
    graph = fake_graph(job_id)
    graph["3"]["inputs"]["filename_prefix"] = prefix
    return graph


@pytest.mark.parametrize(
    ("prefix", "filename"),
    [
        ("q/a&type=temp&filename=x", "a&type=temp&filename=x_00001_.png"),
        ("q/p q#frag?x=1", "p q#frag?x=1_00001_.png"),
        ("q/100%41", "100%41_00001_.png"),
        ("q/caf\u00e9 \u732b", "caf\u00e9 \u732b_00001_.png"),
        ("line\r\nbreak/sub/img", "img_00001_.png"),  # a line break in the subfolder is encoded
    ],
)
async def test_any_output_name_is_fetched_intact(
    comfyui: ComfyUIBackend, prefix: str, filename: str
) -> None:
    result = await comfyui.run("job-n", saving_as("job-n", prefix), ProgressLog())
    [output] = result.outputs
    assert output.filename == filename
    assert output.data.startswith(PNG_MAGIC)


@pytest.mark.parametrize("prefix", ["a\r\nb", "jobs/x\ny", "jobs/tab\tand\rcr"])
async def test_a_name_comfyui_cannot_serve_fails_the_job_not_the_backend(
    comfyui: ComfyUIBackend, comfy_server: FakeComfyUI, prefix: str
) -> None:
    with pytest.raises(JobRejected) as raised:
        await comfyui.run("job-x", saving_as("job-x", prefix), ProgressLog())
    error = raised.value.error
    assert (error.type, error.kind, error.node) == ("UnsafeOutputName", "final", "3")
    assert "filename_prefix" in error.message
    # The backend stayed healthy: no outage, the next job runs at once.
    assert (await comfyui.probe()).ready
    result = await comfyui.run("job-y", fake_graph("job-y"), ProgressLog())
    assert result.outputs[0].data.startswith(PNG_MAGIC)
