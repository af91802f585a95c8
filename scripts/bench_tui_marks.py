"""Dashboard benchmark: the CPU cost of marking the queued jobs no live machine can run.

Starts a private ``redis-server``, publishes 240 GPUs on 30 hosts whose machines hold different
checkpoints (8 distinct capability documents), queues a page of 200 jobs spread over 1, 50 or 200
requirement classes (half of the classes on checkpoints no machine has), and measures with
``time.process_time`` what ``tui.schedulability.Schedulability.mark`` adds to one refresh: the
first refresh (it reads the classes and the capability documents) and the following ones
(nothing read; the answers kept while the GPUs publish the same capabilities). Prints a markdown
table.

    .venv/bin/python scripts/bench_tui_marks.py
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from fleetq import AsyncClient, Settings  # noqa: E402
from fleetq.demo.embedded import RedisServer  # noqa: E402
from fleetq.records import GpuRecord  # noqa: E402
from fleetq.requirements import Capabilities  # noqa: E402
from fleetq.schedulable import capabilities_document  # noqa: E402
from tui.schedulability import Schedulability  # noqa: E402

HOSTS, GPUS_PER_HOST, PAGE = 30, 8, 200
NODES = ("CheckpointLoaderSimple", "KSampler", "SaveImage")


def workflow(checkpoint: str, seed: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": seed}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}},
    }


async def publish_fleet(client: AsyncClient, classes: int) -> None:
    """Every machine holds the even-numbered checkpoints ``model0``, ``model2``... and one of
    its own (8 kinds of machine: 8 capability documents); no machine holds an odd one."""
    store = client.store
    for host in range(HOSTS):
        held = [f"model{k}.safetensors" for k in range(0, classes, 2)]
        held.append(f"extra{host % 8}.safetensors")
        digest, body = capabilities_document(
            Capabilities.make(nodes=NODES, models={"checkpoints": held})
        )
        await store.command("set", store.keys.capabilities(digest), body)
        gpus = [
            GpuRecord(i, services=("comfyui",), capabilities={"comfyui": digest}).to_json()
            for i in range(GPUS_PER_HOST)
        ]
        await store.publish_host(f"host-{host:02d}", {"version": "bench"}, gpus)


async def measure(url: str, classes: int, refreshes: int) -> dict[str, float]:
    client = AsyncClient(Settings(redis_url=url, namespace=f"bench-{uuid.uuid4().hex[:8]}"))
    try:
        await publish_fleet(client, classes)
        for i in range(PAGE):  # job i is of class i % classes: its checkpoint
            await client.submit(workflow(f"model{i % classes}.safetensors", i))
        jobs, fleet = await client.jobs("queued", limit=PAGE), await client.fleet()
        marks = Schedulability(client.store)
        started = time.process_time()
        marked = await marks.mark(jobs, fleet)
        first_ms = (time.process_time() - started) * 1000
        steady = []
        for _ in range(refreshes):
            started = time.process_time()
            await marks.mark(jobs, fleet)
            steady.append((time.process_time() - started) * 1000)
        return {
            "first_ms": first_ms,
            "median_ms": statistics.median(steady),
            "max_ms": max(steady),
            "marked": sum(1 for j in marked if j.unschedulable is not None),
        }
    finally:
        await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument("--refreshes", type=int, default=50)
    args = parser.parse_args()
    print("| classes on the page | jobs marked | first refresh CPU ms | then, median / max |")
    print("|---:|---:|---:|---:|")
    with RedisServer() as server:
        for classes in args.classes:
            r = asyncio.run(measure(server.url, classes, args.refreshes))
            print(f"| {classes} | {r['marked']:.0f} of {PAGE} | {r['first_ms']:.1f} | "
                  f"{r['median_ms']:.2f} / {r['max_ms']:.2f} |")  # fmt: skip
    print(f"\n{HOSTS * GPUS_PER_HOST} GPUs on {HOSTS} hosts, 8 capability documents; "
          f"{args.refreshes} refreshes each; Python {platform.python_version()}, "
          f"{platform.machine()}.")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
