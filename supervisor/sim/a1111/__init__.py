"""A fake AUTOMATIC1111 (``/sdapi/v1``, 1.10; optionally Forge's error bodies) for fleetq's
tests and demo: a real aiohttp server.

Behaviour (``reference/backends.md`` section 2): one FIFO queue lock, so a request blocks for
queue wait plus ``n_iter * steps * step_seconds``; ``GET /sdapi/v1/progress`` with A1111's
exact formula and idle shape, and its ``current_image`` live preview (unless
``skip_current_image``; a new one every ``show_progress_every_n_steps`` while
``live_previews_enable``); ``POST /sdapi/v1/interrupt`` makes the running request return
early with 200 and partial images (and is lost when idle); ``/skip``; ``info`` as a JSON
string; images as base64 PNG with the infotext in a ``parameters`` text chunk, a grid first
with ``save_images``, masks (``return_mask``) and ControlNet detect maps appended; errors in the
A1111 or Forge shape, including the 500s of undecodable ``init_images``; ``--nowebui`` mode
(default) or UI mode with ``/internal/*``. ``override_settings`` apply per request; a
checkpoint switch (first use, or another than the loaded one) holds the lock for
``model_load_s`` with ``job_count`` -1, and an unknown checkpoint is silently ignored, as in
A1111. Hires fix runs a second pass per batch; img2img samples ``denoising_strength * steps``.

Control through the prompt text:

==============  ===========================================================================
``fleetq:fail``  500 ``RuntimeError`` in the server's error shape, after half the steps
``fleetq:oom``   500 ``OutOfMemoryError`` (CUDA out of memory), after half the steps
``fleetq:hang``  each batch stops at its last step until ``/interrupt`` (200, partial images)
                 or ``/skip`` (on to the next batch)
==============  ===========================================================================

Faults: ``FakeA1111.configure`` / ``restart`` / ``state`` / ``wait_until``, or over HTTP
``/fake/config``, ``/fake/restart``, ``/fake/state``. Entry points: ``FakeA1111``,
``serve_a1111``, ``run_fake_a1111`` and ``python -m supervisor.sim.a1111 --port 7860``.
"""

from supervisor.sim.a1111.cli import main, run_fake_a1111, serve_a1111
from supervisor.sim.a1111.generate import CONTROL_FAIL, CONTROL_HANG, CONTROL_OOM
from supervisor.sim.a1111.options import A1111Options
from supervisor.sim.a1111.server import FakeA1111

__all__ = [
    "CONTROL_FAIL",
    "CONTROL_HANG",
    "CONTROL_OOM",
    "A1111Options",
    "FakeA1111",
    "main",
    "run_fake_a1111",
    "serve_a1111",
]
