"""The global interrupt flag (``comfy.model_management.interrupt_processing``)."""

from __future__ import annotations

import asyncio
from typing import NoReturn

from supervisor.sim.comfyui.schema import InterruptProcessingError


class InterruptFlag:
    """Set by ``POST /interrupt``, cleared when a prompt starts and when it is acted on.

    Because a prompt start clears it, an interrupt sent while idle is lost, as in ComfyUI.
    """

    def __init__(self) -> None:
        self._requested = False
        self._event = asyncio.Event()

    @property
    def requested(self) -> bool:
        return self._requested

    def request(self) -> None:
        self._requested = True
        self._event.set()

    def clear(self) -> None:
        self._requested = False
        self._event.clear()

    def throw_if_requested(self) -> None:
        """``throw_exception_if_processing_interrupted``: consume the flag and raise."""
        if self._requested:
            self.clear()
            raise InterruptProcessingError

    async def wait(self) -> NoReturn:
        """Block until an interrupt is requested, then consume it and raise."""
        while True:
            await self._event.wait()
            self.throw_if_requested()
