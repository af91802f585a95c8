"""Ready-made API-format workflows for the fake ComfyUI (see ``fakework`` for ``FakeWork``)."""

from __future__ import annotations

from typing import Any


def fake_work_workflow(
    seconds: float = 1.0,
    steps: int = 0,
    outcome: str = "ok",
    *,
    seed: int = 0,
    filename_prefix: str = "fleetq",
    width: int = 64,
    height: int = 64,
    color: int = 0x336699,
    **fake_work_inputs: Any,
) -> dict[str, Any]:
    """EmptyImage (node "1") -> FakeWork ("2") -> SaveImage ("3").

    ``seed`` (or a job id in ``filename_prefix``) keeps the output cache from serving a
    resubmission without running it. Extra keyword arguments become ``FakeWork`` inputs
    (``error_message``, ``previews``).
    """
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": height, "batch_size": 1, "color": color},
        },
        "2": {
            "class_type": "FakeWork",
            "inputs": {
                "image": ["1", 0],
                "seconds": seconds,
                "steps": steps,
                "outcome": outcome,
                "seed": seed,
                **fake_work_inputs,
            },
        },
        "3": {
            "class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": filename_prefix},
        },
    }


def checkpoint_work_workflow(
    checkpoint: str,
    seconds: float = 1.0,
    steps: int = 0,
    outcome: str = "ok",
    *,
    seed: int = 0,
    filename_prefix: str = "fleetq",
    **fake_work_inputs: Any,
) -> dict[str, Any]:
    """CheckpointLoaderSimple ("4") -> FakeWork ("2", its ``model``) -> SaveImage ("3"), with
    EmptyImage ("1") as FakeWork's image.

    The job needs ``checkpoint`` (fleetq derives it from the loader) and runs for ``seconds``
    after the load, which an instance charges (``model_load_s``) when another model, or none,
    is loaded: the shape of a real text-to-image job, cheap to run by the thousand.
    """
    graph = fake_work_workflow(
        seconds, steps, outcome, seed=seed, filename_prefix=filename_prefix, **fake_work_inputs
    )
    graph["4"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}}
    graph["2"]["inputs"]["model"] = ["4", 0]
    return graph
