"""Submit-time rules for A1111 bodies: refused with a clear error, before anything is written."""

from __future__ import annotations

from typing import Any

import pytest

from fleetq import Settings
from fleetq.errors import InvalidWorkflow
from fleetq.validation import build_spec

SETTINGS = Settings()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prompt": "x", "send_images": False}, "send_images"),
        ({"prompt": "x", "send_images": "false"}, "send_images"),
        ({"prompt": "x", "init_images": []}, "init_images is empty"),
        ({"prompt": "x", "override_settings": {"sd_model_checkpoint": ""}}, "checkpoint"),
        ({"prompt": "x", "override_settings": {"sd_model_checkpoint": 3}}, "checkpoint"),
        ({"prompt": "x", "fleetq_keep_extras": "yes"}, "fleetq_keep_extras"),
    ],
)
def test_bodies_that_cannot_succeed_are_refused(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidWorkflow, match=message):
        build_spec(body, SETTINGS, service="a1111")


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "x", "send_images": True, "fleetq_keep_extras": True},
        {"prompt": "x", "override_settings": {"sd_model_checkpoint": "sdxl.safetensors"}},
        {"prompt": "x", "override_settings": {"CLIP_stop_at_last_layers": 2}},
    ],
)
def test_ordinary_bodies_pass(body: dict[str, Any]) -> None:
    build_spec(body, SETTINGS, service="a1111")
