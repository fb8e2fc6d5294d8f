"""How many devices one poller process keeps at a 5 s interval, against a bare aiohttp loop.

    .venv/bin/python -m benchmarks.bench_poller [--levels 5000,10000,12500,15000] [--measure 15]

Processes, all on loopback: nats-server, the simulator (one process serving
every device), the poller (one process), and this observer, which subscribes
to `pluto.readings.*` and samples each device's reading age (now minus the
arrival of its latest reading) every 0.5 s. A level passes when the p99 age
stays under 6 s. The baseline is a bare aiohttp GET loop (no scheduling, no
parsing, no publishing) run in its own process against the same simulator in
the same run, at the same request rate: CPU seconds per 1,000 requests for both,
and the ratio of the throughput each could reach on one core (1 / CPU per request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
import nats
from nats.aio.msg import Msg

from benchmarks.common import cpu_seconds, percentile, row, rss_mib, start_python
from pluto.natsd import NatsServer
from shared.ids import device_id_from_mac
from shared.models import DeviceAdded
from shared.registry import publish_added
from shared.streams import ensure_streams

INTERVAL = 5.0


class AgeObserver:
    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.count = 0
        self.errors = 0
        self.error_kinds: Counter[str] = Counter()

    async def on_reading(self, msg: Msg) -> None:
        self.last[msg.subject] = time.monotonic()
        self.count += 1
        if b'"ok":false' in msg.data:
            self.errors += 1
            self.error_kinds[json.loads(msg.data)["error"]] += 1

    async def sample_ages(self, subjects: list[str], seconds: float) -> list[float]:
        ages: list[float] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            ages.extend(now - self.last.get(s, 0.0) for s in subjects)
        return ages


async def _bare_loop(urls_file: Path, seconds: float, rate: float | None = None) -> dict[str, float]:
    """The baseline, in its own process: 32 workers, paced at `rate` GETs/s or flat out."""
    args = ["--base-urls-file", str(urls_file), "--seconds", str(seconds), "--concurrency", "32"]
    if rate is not None:
        args += ["--rate", str(rate)]
    bare = await start_python("benchmarks.bare_get_loop", *args, ready=r"gets_per_s")
    await bare.stop()
    result: dict[str, float] = json.loads(bare.ready_line)
    return result


async def main(levels: list[int], measure_s: float, out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-poller-"))
    server = NatsServer(work / "nats")
    await server.start()
    sim = await start_python(
        "services.simulator",
        "--devices",
        str(max(levels)),
        "--port",
        "0",
        "--seed",
        "1",
        ready=r"simulator listening on",
        log=work / "sim.log",
    )
    sim_url = re.search(r"(http://\S+)", sim.ready_line).group(1)  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as http, http.get(f"{sim_url}/control/devices") as resp:
        listing = await resp.json()
    devices = [
        DeviceAdded(id=device_id_from_mac(d["mac"]) or f"dev-{i}", url=d["url"], at=time.time())
        for i, d in enumerate(listing)
    ]

    client = await nats.connect(server.url)
    js = client.jetstream()
    await ensure_streams(js)
    observer = AgeObserver()
    await client.subscribe("pluto.readings.*", cb=observer.on_reading)
    poller = await start_python(
        "services.poller",
        env={
            "PLUTO_NATS_URL": server.url,
            "PLUTO_POLLER_INTERVAL_S": str(INTERVAL),
            "PLUTO_LOG_LEVEL": "WARNING",
        },
        log=work / "poller.log",
    )

    lines = [f"poller benchmark, interval {INTERVAL:g} s, levels {levels}, {measure_s:g} s per level"]
    print(lines[0], flush=True)
    registered = 0
    best_level = 0
    best_rate = 0.0
    poller_cpu_per_1000 = float("nan")
    try:
        for level in levels:
            for device in devices[registered:level]:
                await publish_added(js, device)
            registered = level
            # One full interval (plus jitter) for the new devices' first polls to land.
            await asyncio.sleep(INTERVAL * 1.2)
            subjects = [f"pluto.readings.{d.id}" for d in devices[:level]]
            count0, errors0, cpu0, t0 = (
                observer.count,
                observer.errors,
                cpu_seconds(poller.pid),
                time.monotonic(),
            )
            ages = await observer.sample_ages(subjects, measure_s)
            elapsed = time.monotonic() - t0
            polls = observer.count - count0
            errors = observer.errors - errors0
            cpu = cpu_seconds(poller.pid) - cpu0
            p50, p99 = percentile(ages, 50), percentile(ages, 99)
            passed = p99 < 6.0 and errors == 0
            per_1000 = 1000 * cpu / max(polls, 1)
            kinds = ", ".join(f"{k} {n}" for k, n in observer.error_kinds.items())
            observer.error_kinds.clear()
            line = (
                f"{level:>6} devices: {polls / elapsed:8.1f} polls/s, reading age p50 {p50:.2f} s "
                f"p99 {p99:.2f} s, {errors} error readings ({kinds or 'none'}), "
                f"poller CPU {per_1000:.3f} s/1000 polls, "
                f"RSS {rss_mib(poller.pid):.0f} MiB -> {'PASS' if passed else 'FAIL'}"
            )
            print(line, flush=True)
            lines.append(line)
            if passed:
                best_level, best_rate, poller_cpu_per_1000 = level, polls / elapsed, per_1000
            else:
                break
    finally:
        await poller.stop()

    urls_file = work / "urls.txt"
    urls_file.write_text("\n".join(d["url"] for d in listing[: max(best_level, 1000)]))
    paced = await _bare_loop(urls_file, measure_s, rate=max(best_rate, 200.0))
    flat_out = await _bare_loop(urls_file, measure_s)
    await client.close()
    await sim.stop()
    server.stop()

    poller_capacity = 1000 / poller_cpu_per_1000
    bare_capacity = 1000 / paced["cpu_s_per_1000"]
    summary = [
        row("devices kept at 5 s with p99 age < 6 s", best_level, "devices"),
        row("polls/s at that level", best_rate, "polls/s", paced["gets_per_s"], "bare loop, same rate"),
        row("CPU per 1,000 polls", poller_cpu_per_1000, "s", paced["cpu_s_per_1000"], "bare loop"),
        row("one-core capacity (1 / CPU per poll)", poller_capacity, "polls/s", bare_capacity, "bare loop"),
        row("bare loop flat out (simulator-bound ceiling)", flat_out["gets_per_s"], "GET/s"),
    ]
    for line in summary:
        print(line, flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines + summary) + "\n")  # noqa: ASYNC240 - once, at the end


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", default="5000,10000,12500,15000")
    parser.add_argument("--measure", type=float, default=15.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/poller.txt"))
    args = parser.parse_args()
    asyncio.run(main([int(x) for x in args.levels.split(",")], args.measure, args.out))
