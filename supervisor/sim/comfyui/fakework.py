"""``FakeWork``: the node through which a workflow tells the fake ComfyUI how to behave.

Contract (relied on by the demo and by the supervisor's adapter tests):

==============  ========  =========  ==========================================================
input           type      default    meaning
==============  ========  =========  ==========================================================
seconds         FLOAT     1.0        how long the node runs (>= 0)
steps           INT       0          ``progress`` frames sent evenly over ``seconds``: frame
                                     ``i`` (1..steps) at ``i * seconds / steps``. 0 = none.
outcome         combo     "ok"       ``"ok"``: pass the image on. ``"error"``: after
                                     ``seconds``, raise ``RuntimeError`` (reported as
                                     ``execution_error`` with ``exception_type``
                                     ``"RuntimeError"``, message, traceback, current_inputs).
                                     ``"hang"``: after ``seconds`` (and its frames), block
                                     until interrupted.
image           IMAGE     optional   passed through; without it a 64x64 grey image is output
seed            INT       optional   ignored; vary it to defeat the output cache
error_message   STRING    optional   the exception message for ``outcome="error"``
previews        BOOLEAN   optional   with each progress frame also send a binary preview
                                     (event 4 with metadata to sockets that negotiated
                                     ``supports_preview_metadata``, else event 1, PNG)
model           MODEL     optional   ignored; linking a loader here makes the job use (and,
                                     on an instance with another model loaded, load) that
                                     checkpoint, as a real sampler does
==============  ========  =========  ==========================================================

Interrupts behave as in ComfyUI: a pending interrupt is seen when the node starts, at each
progress frame (so a node with ``steps`` stops within ``seconds / steps``), and while it
hangs; a node with ``steps=0`` runs its ``seconds`` to the end and the interrupt lands at the
next node. The output is cached like any node's: resubmitting an identical graph executes
nothing (change ``seed`` to force work). Typical graph::

    {"1": {"class_type": "EmptyImage",
           "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
     "2": {"class_type": "FakeWork",
           "inputs": {"image": ["1", 0], "seconds": 0.5, "steps": 5, "outcome": "ok"}},
     "3": {"class_type": "SaveImage",
           "inputs": {"images": ["2", 0], "filename_prefix": "jobs/JOB_ID/img"}}}
"""

from __future__ import annotations

import asyncio

from supervisor.sim.comfyui.schema import FakeImage, InputSpec, NodeCall, NodeClass, NodeResult

OUTCOMES = ("ok", "error", "hang")
DEFAULT_IMAGE = FakeImage(64, 64, 1, 0x808080)
DEFAULT_ERROR = "FakeWork failed as requested (outcome=error)"


async def run_fake_work(call: NodeCall) -> NodeResult:
    """Sleep, report progress, then succeed, fail or hang as the inputs say."""
    seconds = float(call.inputs["seconds"])
    steps = int(call.inputs["steps"])
    outcome = call.inputs["outcome"]
    image = call.inputs.get("image") or DEFAULT_IMAGE
    previews = bool(call.inputs.get("previews", False))
    loop = asyncio.get_running_loop()
    started = loop.time()
    if steps > 0:
        for step in range(1, steps + 1):
            # Sleep to an absolute deadline so the frames do not drift behind ``seconds``.
            await asyncio.sleep(max(0.0, started + seconds * step / steps - loop.time()))
            await call.runtime.progress(step, steps, image if previews else None)
    elif seconds > 0:
        await asyncio.sleep(seconds)
    if outcome == "error":
        raise RuntimeError(call.inputs.get("error_message") or DEFAULT_ERROR)
    if outcome == "hang":
        await call.runtime.wait_for_interrupt()
    return NodeResult((image,))


FAKE_WORK = NodeClass(
    name="FakeWork",
    inputs=(
        InputSpec(
            "seconds",
            "FLOAT",
            {
                "default": 1.0,
                "min": 0.0,
                "max": 86400.0,
                "step": 0.01,
                "tooltip": "How long the node runs.",
            },
        ),
        InputSpec(
            "steps",
            "INT",
            {
                "default": 0,
                "min": 0,
                "max": 100000,
                "tooltip": "Progress frames sent evenly over the run time.",
            },
        ),
        InputSpec(
            "outcome",
            OUTCOMES,
            {"default": "ok", "tooltip": "ok, error (raise) or hang (until interrupted)."},
        ),
        InputSpec("image", "IMAGE", {"tooltip": "Passed through."}, category="optional"),
        InputSpec(
            "seed",
            "INT",
            {
                "default": 0,
                "min": 0,
                "max": 0xFFFFFFFFFFFFFFFF,
                "tooltip": "Ignored; change it to defeat the cache.",
            },
            category="optional",
        ),
        InputSpec(
            "error_message",
            "STRING",
            {"default": "", "tooltip": "Exception message for outcome=error."},
            category="optional",
        ),
        InputSpec(
            "previews",
            "BOOLEAN",
            {"default": False, "tooltip": "Send a binary preview with each progress frame."},
            category="optional",
        ),
        InputSpec(
            "model",
            "MODEL",
            {"tooltip": "Ignored; a loader linked here runs (and loads its model) first."},
            category="optional",
        ),
    ),
    return_types=("IMAGE",),
    run=run_fake_work,
    display_name="Fake Work (fleetq)",
    description="Test node of the fleetq fake ComfyUI: runs for a while, reports progress, "
    "then succeeds, fails or hangs.",
    python_module="custom_nodes.fleetq_fake",
    category="fleetq/testing",
)
