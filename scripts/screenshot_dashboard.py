#!/usr/bin/env python3
"""Take the README's dashboard screenshot from a real run of the demo fleet.

Starts the demo fleet (embedded Redis, simulated machines on fake backends, load, a GPU fault),
runs the dashboard headless against it for a while so the sparklines fill, and saves an SVG:

    .venv/bin/python scripts/screenshot_dashboard.py docs/dashboard.svg [--seconds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleetq.client import Client
from fleetq.config import Settings
from fleetq.demo.embedded import start_embedded_redis
from fleetq.demo.run import NAMESPACE, Demo, DemoOptions, LoadGenerator
from fleetq.demo.workload import Workload
from tui.app import create_app


async def capture(
    settings: Settings, path: str, seconds: float, midway: Callable[[], None]
) -> None:
    app = create_app(settings, readonly=True)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(seconds / 2)
        await asyncio.to_thread(midway)
        await pilot.pause(seconds / 2)
        app.save_screenshot(path)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    demo = Demo(DemoOptions())
    redis = start_embedded_redis()
    settings = Settings(redis_url=redis.url, namespace=NAMESPACE)
    client = Client(settings)
    load = None
    try:
        demo.start_fleet(redis.url)
        demo.wait_until_online(client)
        load = LoadGenerator(client, Workload(7, True), demo.default_rate() * 1.3, 7)
        for _ in range(20):
            load.submit_one()
        load.start()
        asyncio.run(capture(settings, args.path, args.seconds, lambda: demo.inject_fault(client)))
        print(f"saved {args.path}")
        return 0
    finally:
        if load is not None:
            load.stop.set()
        demo.group.stop_all()
        client.close()
        redis.close()


if __name__ == "__main__":
    sys.exit(main())
