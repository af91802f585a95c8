"""One adapter per queue library: submit one job, run and stop a pool of in-process workers."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from typing import Any

from fleetbench.queue import workers
from fleetbench.queue.sizes import HOST, SERVICE, WORKFLOW
from fleetbench.queue.workers import arq_noop, bullmq_noop, saq_noop
from fleetq import AsyncClient, Settings
from fleetq.worker import WorkerQueue

# -- the systems ----------------------------------------------------------------------------------


class System:
    """One queue library: submit one job, run and stop a pool of in-process workers."""

    name = ""
    how = ""

    async def open(self) -> None: ...

    async def enqueue(self) -> None:
        raise NotImplementedError

    async def start_workers(self, concurrency: int, *, defaults: bool = False) -> None:
        raise NotImplementedError

    async def stop_workers(self) -> None: ...

    async def close(self) -> None: ...


class Fleetq(System):
    name = "fleetq"

    def __init__(self, url: str, namespace: str) -> None:
        self.settings = Settings(redis_url=url, namespace=namespace)
        self.client: AsyncClient | None = None
        self.queues: list[WorkerQueue] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.stop = asyncio.Event()

    async def open(self) -> None:
        self.client = AsyncClient(self.settings)

    async def enqueue(self) -> None:
        assert self.client is not None
        await self.client.submit(WORKFLOW, service=SERVICE)

    async def start_workers(self, concurrency: int, *, defaults: bool = False) -> None:
        self.stop.clear()
        self.queues = [WorkerQueue(self.settings) for _ in range(concurrency)]
        self.tasks = [
            asyncio.create_task(self._claimer(wq, gpu), name=f"claimer-{gpu}")
            for gpu, wq in enumerate(self.queues)
        ]

    async def _claimer(self, wq: WorkerQueue, gpu: int) -> None:
        while not self.stop.is_set():
            outcome = await wq.claim([SERVICE], HOST, gpu, timeout_s=0.5)
            if outcome.job is None:
                continue
            workers.PROBE.hit()  # counted at the claim: the same point as the others' job start
            await wq.complete(outcome.job, ())

    async def stop_workers(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)
        for wq in self.queues:
            await wq.aclose()
        self.queues, self.tasks = [], []

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def completed(self) -> int:
        assert self.client is not None
        stats = await self.client.stats()
        return sum(s.completed for s in stats.services if s.service == SERVICE)


class Arq(System):
    name = "arq"

    def __init__(self, url: str, port: int, poll_delay_s: float | None = None) -> None:
        from arq.connections import RedisSettings

        self.redis_settings = RedisSettings(host="127.0.0.1", port=port)
        self.poll_delay_s = poll_delay_s
        self.pool: Any = None
        self.worker: Any = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        from arq import create_pool

        self.pool = await create_pool(self.redis_settings)

    async def enqueue(self) -> None:
        await self.pool.enqueue_job("arq_noop")

    async def start_workers(self, concurrency: int, *, defaults: bool = False) -> None:
        from arq.worker import Worker, func

        options: dict[str, Any] = {}
        if not defaults:
            options["max_jobs"] = concurrency
            if self.poll_delay_s is not None:
                options["poll_delay"] = self.poll_delay_s
        self.worker = Worker(
            functions=[func(arq_noop, name="arq_noop")],
            redis_settings=self.redis_settings,
            handle_signals=False,
            **options,
        )
        self.task = asyncio.create_task(self.worker.async_run(), name="arq-worker")

    async def stop_workers(self) -> None:
        running = [t for t in self.worker.tasks.values() if not t.done()]
        if running:  # let the last jobs finish; close() cancels what still runs
            await asyncio.wait(running, timeout=30)
        await self.worker.close()  # cancels its main task
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task  # the cancellation we asked for, not ours

    async def close(self) -> None:
        await self.pool.aclose()


class Saq(System):
    name = "saq"

    def __init__(self, url: str) -> None:
        from saq import Queue

        self.queue = Queue.from_url(url, name="bench")
        self.worker: Any = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.queue.connect()

    async def enqueue(self) -> None:
        await self.queue.enqueue("saq_noop")

    async def start_workers(self, concurrency: int, *, defaults: bool = False) -> None:
        from saq import Worker

        self.worker = Worker(self.queue, functions=[saq_noop], concurrency=concurrency)
        self.worker.SIGNALS = []  # the benchmark owns the signals
        self.task = asyncio.create_task(self.worker.start(), name="saq-worker")
        await asyncio.sleep(0)

    async def stop_workers(self) -> None:
        await self.worker.stop()
        if self.task is not None:
            await self.task

    async def close(self) -> None:
        await self.queue.disconnect()


class Bullmq(System):
    name = "bullmq"

    def __init__(self, url: str) -> None:
        self.url = url
        self.queue: Any = None
        self.worker: Any = None

    async def open(self) -> None:
        from bullmq import Queue  # type: ignore[import-untyped,unused-ignore]

        self.queue = Queue("bench", {"connection": self.url})

    async def enqueue(self) -> None:
        await self.queue.add("noop", {})

    async def start_workers(self, concurrency: int, *, defaults: bool = False) -> None:
        from bullmq import Worker  # type: ignore[import-untyped,unused-ignore]

        opts: dict[str, Any] = {"connection": self.url}
        if not defaults:
            opts["concurrency"] = concurrency
        self.worker = Worker("bench", bullmq_noop, opts)
        await asyncio.sleep(0)

    async def stop_workers(self) -> None:
        # force: a blocked BZPOPMIN would otherwise wait out drainDelay (5 s).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            await self.worker.close(force=True)

    async def close(self) -> None:
        with warnings.catch_warnings():  # it calls redis-py's deprecated close()
            warnings.simplefilter("ignore", DeprecationWarning)
            await self.queue.close()
