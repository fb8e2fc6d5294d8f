"""How many devices one poller process keeps at a 5 s interval, against a bare aiohttp loop.

    .venv/bin/python -m benchmarks.bench_poller [--levels 5000,10000,12500,15000] [--measure 15]

Processes, all on loopback: nats-server, the simulator (one process serving
every device), the poller (one process), and this observer, which subscribes
to `pluto.readings.*` and samples each device's reading age (now minus the
arrival of its latest reading) every 0.5 s. Three phases:

1. Efficiency, at the first level (default 5,000 devices, the target): while the
   poller keeps them at 5 s, a bare aiohttp GET loop (no scheduling, no parsing,
   no publishing) runs alongside it in its own process against the same
   simulator at the same request rate, so both are measured over the same window
   on the same loaded machine. CPU seconds per 1,000 requests for both, and the
   ratio of what each could do on one core (1 / CPU per request); three windows,
   the median reported.
2. Capacity: more devices, level by level, until the p99 reading age reaches 6 s
   or a poll fails.
3. Overload: the same devices at a 1 s interval, far beyond one process; readings
   without error per second, beside the bare loop flat out. Both share the
   machine with the simulator, so on few cores these ceilings are bound by the
   simulator as much as by the code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from benchmarks.common import Proc, cpu_seconds, percentile, row, rss_mib, start_python
from pluto.natsd import NatsServer
from shared.ids import device_id_from_mac
from shared.models import DeviceAdded
from shared.registry import publish_added
from shared.streams import ensure_streams

INTERVAL = 5.0
OVERLOAD_INTERVAL = 1.0
EFFICIENCY_WINDOWS = 3


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

    @property
    def ok(self) -> int:
        return self.count - self.errors

    async def sample_ages(self, subjects: list[str], seconds: float) -> list[float]:
        ages: list[float] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            ages.extend(now - self.last.get(s, 0.0) for s in subjects)
        return ages


@dataclass
class Bench:
    """What every phase uses: the devices, the bus, the observer, the work folder."""

    nats_url: str
    js: JetStreamContext
    devices: list[DeviceAdded]
    observer: AgeObserver
    work: Path
    registered: int = 0

    async def register_up_to(self, count: int) -> None:
        for device in self.devices[self.registered : count]:
            await publish_added(self.js, device)
        self.registered = max(self.registered, count)

    async def start_poller(self, interval_s: float) -> Proc:
        return await start_python(
            "services.poller",
            env={
                "PLUTO_NATS_URL": self.nats_url,
                "PLUTO_POLLER_INTERVAL_S": str(interval_s),
                "PLUTO_LOG_LEVEL": "WARNING",
            },
            log=self.work / "poller.log",
        )

    def urls_file(self, count: int) -> Path:
        path = self.work / f"urls-{count}.txt"
        path.write_text("\n".join(str(d.url) for d in self.devices[:count]))
        return path


async def start_bare_loop(urls_file: Path, seconds: float, rate: float | None = None) -> Proc:
    """The baseline, in its own process: 32 workers, paced at `rate` GETs/s or flat out.

    Returns once it has started measuring; `bare_loop_result` waits for its figures.
    """
    args = ["--base-urls-file", str(urls_file), "--seconds", str(seconds), "--concurrency", "32"]
    if rate is not None:
        args += ["--rate", str(rate)]
    return await start_python("benchmarks.bare_get_loop", *args, ready=r"^started")


async def bare_loop_result(bare: Proc) -> dict[str, float]:
    assert bare.process.stdout is not None
    line = await bare.process.stdout.readline()
    await bare.stop()
    result: dict[str, float] = json.loads(line)
    return result


async def efficiency(bench: Bench, level: int, seconds: float) -> tuple[float, float, list[str]]:
    """Median CPU s per 1,000 polls of the poller and of the bare loop beside it."""
    await bench.register_up_to(level)
    poller = await bench.start_poller(INTERVAL)
    rate = level / INTERVAL
    urls = bench.urls_file(level)
    pairs: list[tuple[float, float]] = []
    lines: list[str] = []
    try:
        await asyncio.sleep(INTERVAL * 1.2)  # every device's first poll has landed
        for window in range(EFFICIENCY_WINDOWS):
            bare = await start_bare_loop(urls, seconds, rate)
            count0, cpu0 = bench.observer.ok, cpu_seconds(poller.pid)
            result = await bare_loop_result(bare)
            polls, cpu = bench.observer.ok - count0, cpu_seconds(poller.pid) - cpu0
            pair = (1000 * cpu / max(polls, 1), result["cpu_s_per_1000"])
            pairs.append(pair)
            line = (
                f"efficiency window {window + 1}, {level} devices: poller {polls / seconds:.0f} polls/s "
                f"{pair[0]:.3f} CPU s/1000, bare loop beside it {result['gets_per_s']:.0f} GET/s "
                f"{pair[1]:.3f} CPU s/1000 -> ratio {pair[1] / pair[0]:.2f}"
            )
            print(line, flush=True)
            lines.append(line)
    finally:
        await poller.stop()
    poller_cpu, bare_cpu = _median_pair(pairs)
    return poller_cpu, bare_cpu, lines


def _median_pair(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """The window with the median ratio (so the two figures shown belong together)."""
    ordered = sorted(pairs, key=lambda p: p[1] / p[0])
    return ordered[len(ordered) // 2]


@dataclass
class Capacity:
    devices: int = 0
    polls_per_s: float = 0.0
    cpu_per_1000: float = float("nan")


async def capacity(bench: Bench, levels: list[int], seconds: float) -> tuple[Capacity, list[str]]:
    """The most devices kept at 5 s with p99 reading age under 6 s and no failed poll."""
    best = Capacity()
    lines: list[str] = []
    poller = await bench.start_poller(INTERVAL)
    observer = bench.observer
    try:
        for level in levels:
            await bench.register_up_to(level)
            # One full interval (plus jitter) for the new devices' first polls to land.
            await asyncio.sleep(INTERVAL * 1.2)
            subjects = [f"pluto.readings.{d.id}" for d in bench.devices[:level]]
            count0, errors0, cpu0 = observer.count, observer.errors, cpu_seconds(poller.pid)
            t0 = time.monotonic()
            ages = await observer.sample_ages(subjects, seconds)
            elapsed = time.monotonic() - t0
            polls, errors = observer.count - count0, observer.errors - errors0
            per_1000 = 1000 * (cpu_seconds(poller.pid) - cpu0) / max(polls, 1)
            p50, p99 = percentile(ages, 50), percentile(ages, 99)
            passed = p99 < 6.0 and errors == 0
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
            if not passed:
                break
            best = Capacity(level, polls / elapsed, per_1000)
    finally:
        await poller.stop()
    return best, lines


async def overload(bench: Bench, seconds: float) -> tuple[float, list[str]]:
    """Readings without error per second with every registered device due every 1 s."""
    poller = await bench.start_poller(OVERLOAD_INTERVAL)
    try:
        await asyncio.sleep(OVERLOAD_INTERVAL * 3)  # warm-up: every loop started, backoff settled
        ok0, cpu0, t0 = bench.observer.ok, cpu_seconds(poller.pid), time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        rate = (bench.observer.ok - ok0) / elapsed
        cores = (cpu_seconds(poller.pid) - cpu0) / elapsed
    finally:
        await poller.stop()
    line = (
        f"overload, {bench.registered} devices at {OVERLOAD_INTERVAL:g} s: {rate:.1f} "
        f"readings/s without error, poller CPU {cores:.2f} cores"
    )
    print(line, flush=True)
    return rate, [line]


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
    bench = Bench(server.url, js, devices, observer, work)

    lines = [f"poller benchmark, interval {INTERVAL:g} s, levels {levels}, {measure_s:g} s per level"]
    print(lines[0], flush=True)
    try:
        poller_cpu, bare_cpu, found = await efficiency(bench, levels[0], measure_s)
        lines += found
        best, found = await capacity(bench, levels, measure_s)
        lines += found
        overload_rate, found = await overload(bench, measure_s)
        lines += found
        flat_out = await bare_loop_result(
            await start_bare_loop(bench.urls_file(max(best.devices, levels[0])), measure_s)
        )
    finally:
        await client.close()
        await sim.stop()
        server.stop()

    summary = [
        row("devices kept at 5 s with p99 age < 6 s", best.devices, "devices"),
        row("polls/s at that level", best.polls_per_s, "polls/s"),
        row("poller CPU per 1,000 polls at that level", best.cpu_per_1000, "s"),
        row(
            f"CPU per 1,000 polls at {levels[0]:,} devices (median)",
            poller_cpu,
            "s",
            bare_cpu,
            "bare loop alongside",
        ),
        row(
            "one-core capacity (1 / CPU per poll)",
            1000 / poller_cpu,
            "polls/s",
            1000 / bare_cpu,
            "bare loop alongside",
        ),
        row(
            "overloaded: readings/s without error",
            overload_rate,
            "polls/s",
            flat_out["gets_per_s"],
            "bare loop flat out",
        ),
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
