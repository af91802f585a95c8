"""``make_backend`` picks the adapter by service name and passes options through."""

from __future__ import annotations

import aiohttp
import pytest

from fleetq.errors import InvalidArgument
from supervisor.backends.a1111 import A1111Backend
from supervisor.backends.base import Backend
from supervisor.backends.comfyui import ComfyUIBackend
from supervisor.backends.factory import make_backend
from supervisor.sim.comfyui import FakeComfyUI


@pytest.mark.parametrize(
    ("service", "adapter"), [("comfyui", ComfyUIBackend), ("a1111", A1111Backend)]
)
async def test_picks_the_adapter_by_service(service: str, adapter: type[Backend]) -> None:
    backend = make_backend(service, "http://127.0.0.1:8188/", poll_interval_s=0.1)
    assert isinstance(backend, adapter)
    assert backend.service == service and backend.url == "http://127.0.0.1:8188"
    await backend.aclose()


def test_unknown_service_or_option() -> None:
    with pytest.raises(InvalidArgument, match="comfyui, a1111"):
        make_backend("invokeai", "http://127.0.0.1:9090")
    with pytest.raises(TypeError):
        make_backend("comfyui", "http://127.0.0.1:8188", no_such_option=1)


async def test_a_shared_session_is_used_and_left_open(comfy_server: FakeComfyUI) -> None:
    async with aiohttp.ClientSession() as session:
        backend = make_backend("comfyui", comfy_server.url, session)
        assert (await backend.probe()).ready
        await backend.aclose()
        assert not session.closed
        assert comfy_server.state()["sockets"] == []
