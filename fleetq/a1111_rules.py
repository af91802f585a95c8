"""Submit-time rules for A1111 request bodies that a type check cannot see: bodies A1111
accepts but that can never give fleetq a useful result, refused before anything is written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetq.errors import InvalidWorkflow

#: What pydantic v1 (A1111's request models) reads as false for a bool field.
_FALSE = (False, 0, "0", "off", "f", "false", "n", "no")


def check_a1111_rules(body: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidWorkflow` for a body that would run but cannot succeed:

    - ``send_images`` false: A1111 answers with no images, so the job would complete with no
      files;
    - an empty ``init_images`` list: A1111 fails it with a 500 ("bad number of images");
    - an ``override_settings.sd_model_checkpoint`` that is not a non-empty string: A1111 would
      run on whatever model is loaded;
    - ``fleetq_keep_extras`` (fleetq's own key: keep grids, masks and detect maps as outputs;
      removed before the body is sent) that is not a boolean.
    """
    keep_extras = body.get("fleetq_keep_extras", False)
    if not isinstance(keep_extras, bool):
        raise InvalidWorkflow(f"fleetq_keep_extras must be true or false, not {keep_extras!r:.60}")
    send_images = body.get("send_images", True)
    if isinstance(send_images, str):
        send_images = send_images.strip().lower()
    if send_images in _FALSE:
        raise InvalidWorkflow("A1111 send_images must not be false: the job would return no images")
    if body.get("init_images") == []:
        raise InvalidWorkflow("A1111 init_images is empty: give at least one image")
    overrides = body.get("override_settings")
    if isinstance(overrides, Mapping) and "sd_model_checkpoint" in overrides:
        checkpoint = overrides["sd_model_checkpoint"]
        if not isinstance(checkpoint, str) or not checkpoint.strip():
            raise InvalidWorkflow(
                "A1111 override_settings.sd_model_checkpoint must name a checkpoint "
                f"(a title, file or model name), not {checkpoint!r:.60}"
            )
