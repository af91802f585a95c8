"""One wake-up waiter per process: a single blocking connection for every idle claimer in it.

A submit sets its service's wake-up marker (a one-member sorted set); one blocked BZPOPMIN
somewhere in the fleet pops it. Instead of one blocked connection per claimer (per GPU), a
supervisor holds one :class:`WakeupWaiter`: it blocks on the markers of the services its idle
claimers wait for, and hands each wake-up to the claimer of that service that has waited
longest (so idle GPUs of one machine take turns). A claimer that may not claim after all
(drained, unhealthy, its backend busy) passes the wake-up on: to the next idle claimer here,
or back to Redis, where another machine's waiter pops it. No wake-up is dropped.

The waiter only blocks on markers somebody here waits for: a machine whose GPUs are all busy or
drained leaves the markers to the rest of the fleet. A claimer that starts waiting for a service
the current BZPOPMIN does not cover is served from the next one (within ``block_timeout_s``);
the BZPOPMIN is never cut short, since a cancelled pop could lose the marker it took.

The same BZPOPMIN also covers the machine's signals (:meth:`WakeupWaiter.listen`): sorted sets
that the scripts set when something the machine must react to at once happened (a cancel of
its running job, an operator command, a drain). Redis cannot block on sorted sets and streams
in one command, so this is what lets one connection serve both: a signal stays set until
popped, and its handler then reads the streams (without blocking) over another connection.

Since the waiter then stays blocked on its signal while no claimer is idle, a claimer that
starts waiting for a service the BZPOPMIN in flight does not cover re-arms it: the waiter sets
its own signal with the member ``rearm`` (over the other connection), pops it at once and
blocks again with the new marker in. So a GPU that finishes a job waits for work at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis

from fleetq.config import Settings
from fleetq.connection import CONNECTION_ERRORS, raise_for_reply, unavailable
from fleetq.errors import FleetqError
from fleetq.keys import Keys
from fleetq.protocol import text
from fleetq.store import cancel_safe

log = logging.getLogger(__name__)

#: The member of a signal that only makes the waiter block again with the keys it needs now.
REARM = "rearm"

#: Backoff of the waiter while Redis is unreachable: from the first to the last value, doubling.
RECONNECT_FIRST_S = 0.1
RECONNECT_MAX_S = 5.0


@dataclass(frozen=True)
class Wakeup:
    """A wake-up popped from the marker of ``service``: one claim is owed to it."""

    service: str


#: What a claimer waits for: wake channels (a service, or ``service:class`` for the claimers
#: of one requirement class), fixed or computed anew each time (the classes a GPU serves
#: change while it waits; see :meth:`WakeupWaiter.rescope`).
Channels = Sequence[str] | Callable[[], Collection[str]]


@dataclass(eq=False)
class _Claimer:
    channels: Callable[[], Collection[str]]
    #: A wake-up, or None: check the gate again (a drain changed).
    handed: asyncio.Future[Wakeup | None] = field(repr=False)

    @property
    def services(self) -> Collection[str]:
        return self.channels()


#: Told the member of a popped signal, or None after the waiter lost Redis (whatever the
#: signal announces may have happened meanwhile). Must not block.
SignalHandler = Callable[[str | None], None]


class WakeupWaiter:
    """Blocks on Redis for the idle claimers of one process and hands out each wake-up.

    ``client`` is used for nothing but the BZPOPMIN (its pool holds one connection);
    ``rewake`` puts a marker back (over another connection) when nobody here may use it;
    ``set_signal(key, member)`` sets a signal (over another connection), to re-arm the waiter.
    """

    def __init__(
        self,
        settings: Settings,
        keys: Keys,
        client: aioredis.Redis,
        rewake: Callable[[str], Awaitable[None]],
        set_signal: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self._keys = keys
        self._client = client
        self._rewake = rewake
        self._set_signal = set_signal
        self._rearming: asyncio.Task[None] | None = None
        self._marker_prefix = keys.marker("")
        #: Idle claimers, longest-waiting first.
        self._waiting: list[_Claimer] = []
        #: Signal key -> its handler; covered by every BZPOPMIN.
        self._signals: dict[str, SignalHandler] = {}
        self._covering: frozenset[str] = frozenset()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._returns: set[asyncio.Task[None]] = set()
        #: Wake-ups popped from Redis, and those given back to it (for tests and benchmarks).
        self.popped = 0
        self.returned = 0
        #: Signals popped (for tests and benchmarks).
        self.signals = 0

    @property
    def idle_claimers(self) -> int:
        """How many claimers wait for a wake-up right now."""
        return len(self._waiting)

    @property
    def covering(self) -> frozenset[str]:
        """The keys of the BZPOPMIN in flight (empty between pops)."""
        return self._covering

    def listen(self, key: str, handler: SignalHandler) -> None:
        """Block on signal ``key`` too, from now on, and tell ``handler`` of each one popped.

        A key first listened to while a BZPOPMIN is in flight is covered from the next one."""
        if self._signals.get(key) is handler:
            return
        self._signals[key] = handler
        self._changed.set()
        self._start()
        self._rearm_if_needed()

    def recheck(self) -> None:
        """Wake every idle claimer without a wake-up, so it checks its gate again (a drain of
        its GPU or host changed)."""
        waiting, self._waiting = self._waiting, []
        for claimer in waiting:
            if not claimer.handed.done():
                claimer.handed.set_result(None)

    def rescope(self) -> None:
        """The channels of idle claimers changed (new requirement classes): block on the new
        set now, without making anyone lose its turn."""
        self._changed.set()
        self._rearm_if_needed()

    async def wait(
        self, services: Channels, timeout_s: float, stop: asyncio.Event | None = None
    ) -> Wakeup | None:
        """Wait up to ``timeout_s`` (or until ``stop`` is set) for a wake-up of one of
        ``services``. Whoever gets a :class:`Wakeup` owes it a claim, or :meth:`pass_on`.
        None: the time ran out, ``stop`` was set, or :meth:`recheck` asked for a new look."""
        if callable(services):
            channels = services
        else:
            fixed = frozenset(services)

            def channels() -> Collection[str]:
                return fixed

        claimer = _Claimer(channels, asyncio.get_running_loop().create_future())
        self._waiting.append(claimer)
        self._changed.set()
        self._start()
        self._rearm_if_needed()
        stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
        try:
            waits: set[asyncio.Future[Any]] = {claimer.handed}
            if stopped is not None:
                waits.add(stopped)
            await asyncio.wait(waits, timeout=max(0.0, timeout_s), return_when="FIRST_COMPLETED")
        except BaseException:
            try:
                held = self._withdraw(claimer)
            except FleetqError:
                held = None
            if held is not None:  # handed over just as this claimer was cancelled
                self.pass_on_soon(held)
            raise
        finally:
            if stopped is not None:
                stopped.cancel()
        return self._withdraw(claimer)

    def _withdraw(self, claimer: _Claimer) -> Wakeup | None:
        """Stop waiting; returns a wake-up handed over meanwhile."""
        if claimer in self._waiting:
            self._waiting.remove(claimer)
        handed = claimer.handed
        if not handed.done():
            handed.cancel()
            return None
        if handed.cancelled():
            return None
        return handed.result()  # raises what the waiter met (Redis unreachable)

    async def pass_on(self, wakeup: Wakeup) -> None:
        """Give a wake-up this claimer may not use to the next idle claimer of its service
        here, or back to Redis for another machine."""
        if not self._hand_out(wakeup.service):
            self.returned += 1
            await self._rewake(wakeup.service)

    def pass_on_soon(self, wakeup: Wakeup) -> None:
        """:meth:`pass_on` from code that cannot wait (a cancelled claimer)."""
        task = asyncio.ensure_future(self._pass_on_logged(wakeup))
        self._returns.add(task)
        task.add_done_callback(self._returns.discard)

    async def _pass_on_logged(self, wakeup: Wakeup) -> None:
        try:
            await self.pass_on(wakeup)
        except FleetqError as e:
            log.warning("wake-up of %s not passed on: %s", wakeup.service, e)

    def _hand_out(self, service: str) -> bool:
        for claimer in self._waiting:
            if service in claimer.services and not claimer.handed.done():
                self._waiting.remove(claimer)
                claimer.handed.set_result(Wakeup(service))
                return True
        return False

    def _rearm_if_needed(self) -> None:
        """Cut the BZPOPMIN in flight short, through one of its own signals, when it leaves
        out a key needed now (a cancelled pop could lose what it took; a signal cannot)."""
        covering = self._covering
        signals = sorted(k for k in covering if k in self._signals)
        if not signals or self._set_signal is None:
            return  # nothing in flight, or no way to end it early: the next one covers it
        if self._rearming is not None and not self._rearming.done():
            return
        needed = {self._keys.marker(s) for c in self._waiting for s in c.services}
        if needed <= covering and set(self._signals) <= covering:
            return
        self._rearming = asyncio.ensure_future(self._rearm(signals[0]))

    async def _rearm(self, key: str) -> None:
        assert self._set_signal is not None
        try:
            await self._set_signal(key, REARM)
        except FleetqError as e:  # the pop in flight ends with the same error
            log.debug("wake-up waiter: not re-armed: %s", e)

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="wakeup-waiter")

    async def _run(self) -> None:
        delay_s = RECONNECT_FIRST_S
        down = False
        while True:
            self._changed.clear()
            services = sorted({s for c in self._waiting for s in c.services})
            if not services and not self._signals:
                await self._changed.wait()
                continue
            timeout_s = max(0.01, self.settings.block_timeout_s)
            keys = [self._keys.marker(s) for s in services] + sorted(self._signals)
            self._covering = frozenset(keys)
            try:
                # redis-py can swallow a cancellation that arrives during a blocking read.
                reply = await cancel_safe(self._client.bzpopmin(keys, timeout=timeout_s))
                self._covering = frozenset()
                if down:
                    log.info("wake-up waiter: Redis is back")
                down, delay_s = False, RECONNECT_FIRST_S
                if reply is not None:
                    key = text(reply[0])
                    handler = self._signals.get(key)
                    member = text(reply[1])
                    if handler is not None and member != REARM:
                        self.signals += 1
                        handler(member)
                    elif handler is None:
                        self.popped += 1
                        await self.pass_on(Wakeup(key[len(self._marker_prefix) :]))
            except (*CONNECTION_ERRORS, redis.exceptions.ResponseError, FleetqError) as e:
                self._covering = frozenset()
                error = self._error(e)
                if not down:
                    log.warning("wake-up waiter: %s; reconnecting", error)
                down = True
                # The claimers waiting now hear of it, as they would from their own wait.
                for claimer in self._waiting:
                    if not claimer.handed.done():
                        claimer.handed.set_exception(error)
                self._waiting.clear()
                # A signal set meanwhile is popped once Redis is back; one lost with Redis's
                # data is not: its listeners look again themselves, from where they were.
                for handler in list(self._signals.values()):
                    handler(None)
                await asyncio.sleep(delay_s)  # reconnect backoff
                delay_s = min(RECONNECT_MAX_S, delay_s * 2)

    def _error(self, error: Exception) -> FleetqError:
        if isinstance(error, FleetqError):
            return error
        if isinstance(error, CONNECTION_ERRORS):
            return unavailable(self.settings, error)
        try:
            raise_for_reply(self.settings, error, "wait for work")  # type: ignore[arg-type]
        except FleetqError as translated:
            return translated
        return FleetqError(f"waiting for work failed: {error}")

    async def aclose(self) -> None:
        """Stop the waiter; wake-ups still held are given back to Redis."""
        tasks = [t for t in (self._task, self._rearming, *self._returns) if t is not None]
        if self._task is not None:
            self._task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
