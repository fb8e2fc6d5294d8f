"""The ceiling for the poller: a bare aiohttp GET loop over the same device URLs.

No scheduling, no parsing, no publishing: `concurrency` workers GET
`<url>/api/system/info` round-robin and read the body, for `seconds`, either
as fast as possible or at a fixed total `rate`. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

import aiohttp

from benchmarks.common import cpu_seconds
from shared import runtime


async def run(urls: list[str], seconds: float, concurrency: int, rate: float | None) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    done = 0
    errors = 0
    next_index = 0
    loop = asyncio.get_running_loop()
    # The benchmark measures its other processes over the same window, between this
    # line and the result line.
    print("started", flush=True)
    start = loop.time()
    cpu_start = cpu_seconds(os.getpid())
    deadline = start + seconds

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal done, errors, next_index
        while loop.time() < deadline:
            if rate:  # pace the whole loop at `rate` GETs per second
                due = start + (done + errors) / rate
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
            url = urls[next_index % len(urls)]
            next_index += 1
            try:
                async with http.get(url) as resp:
                    await resp.read()
                    done += 1
            except aiohttp.ClientError:
                errors += 1

    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    elapsed = loop.time() - start
    cpu = cpu_seconds(os.getpid()) - cpu_start
    return {
        "gets": done,
        "errors": errors,
        "seconds": elapsed,
        "gets_per_s": done / elapsed,
        "cpu_s_per_1000": 1000 * cpu / max(done, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-urls-file", required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=None)
    args = parser.parse_args()
    with open(args.base_urls_file) as f:
        urls = [line.strip().rstrip("/") + "/api/system/info" for line in f if line.strip()]
    # The same event loop as the services (uvloop), so the ratio compares code, not loops.
    result = runtime.run(run(urls, args.seconds, args.concurrency, args.rate))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
