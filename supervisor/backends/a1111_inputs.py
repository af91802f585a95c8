"""Deliver a job's input files to A1111: the fields that name an attachment (``init_images``,
``mask``, a ControlNet unit's ``image`` / ``input_image`` / ``mask``) get its bytes as base64.

Clients send names, not megabytes: the bytes travel once, in Redis with the job, and are
inlined here on the machine that runs it. A file A1111 cannot decode is refused by A1111 itself
("Invalid encoded image"), which the adapter reports as a rejection of the job.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from typing import Any

from fleetq.inputs import a1111_slots

from .base import InputFiles


def inline(body: Mapping[str, Any], inputs: InputFiles) -> dict[str, Any]:
    """A copy of ``body`` with every field that names an attachment replaced by its base64."""
    inlined = copy.deepcopy(dict(body))
    for slot in a1111_slots(inlined):
        data = inputs.get(slot.value)
        if data is not None:
            slot.set(base64.b64encode(data).decode("ascii"))
    return inlined
