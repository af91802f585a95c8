"""A fake ComfyUI (0.3.64 API) for fleetq's tests and demo: a real aiohttp server.

It speaks the HTTP and WebSocket API recorded in ``reference/comfyui-captures`` (routes also
under ``/api``; message order; client_id routing including the duplicate-clientId bug;
validation bodies; caching; targeted and global interrupts; ``/queue`` delete; history
written between the terminal event and ``executing{node:null}``) without computing anything.

Jobs are steered through the workflow with the ``FakeWork`` node (see ``fakework`` for the
contract: ``seconds``, ``steps``, ``outcome`` = ok | error | hang, optional ``image``, ``seed``,
``error_message``, ``previews``). With ``preview_method`` other than ``none`` (ComfyUI's
``--preview-method``, or a prompt's ``extra_data.preview_method``) every KSampler step also
sends a binary preview frame, format 4 with metadata to sockets that announced
``supports_preview_metadata`` and format 1 otherwise. Faults are injected with the hooks of
``FakeComfyUI`` (``configure``, ``restart``, ``drop_websockets``, ``state``) or over HTTP
under ``/fake/*`` (see ``hooks``).

Entry points: ``FakeComfyUI`` (one instance, ``async with``), ``serve_comfyui`` (N instances
on consecutive ports), ``run_fake_comfyui`` (blocking, for ``fleetq fake-comfyui``) and
``python -m supervisor.sim.comfyui --port 8188 --count 4``.
"""

from supervisor.sim.comfyui.cli import main, run_fake_comfyui, serve_comfyui
from supervisor.sim.comfyui.fakework import OUTCOMES as FAKE_WORK_OUTCOMES
from supervisor.sim.comfyui.options import ComfyUIOptions
from supervisor.sim.comfyui.server import FakeComfyUI

__all__ = [
    "FAKE_WORK_OUTCOMES",
    "ComfyUIOptions",
    "FakeComfyUI",
    "main",
    "run_fake_comfyui",
    "serve_comfyui",
]
