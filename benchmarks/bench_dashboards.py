"""Latency from device-added to dashboard-published, and a burst of devices added at once.

    .venv/bin/python -m benchmarks.bench_dashboards [--samples 40] [--burst 500] [--scan 10]

Processes on loopback: nats-server, the dashboards service (`python -m
services.dashboards`, configured by environment variables as in production),
and this process, which runs the Grafana test double (provisioning scan every
`--scan` seconds, Grafana's default 10 s) and the observer: it publishes
DeviceAdded events and times each one until its `published` DashboardState
arrives. Each scenario starts from an empty folder, a fresh double and a
fresh service.

Scenarios, each with and without the reload permission:
- latency: `--samples` devices added one after another (the next once the
  previous is published), p50 / p95 / max;
- burst: `--burst` devices added at once; time until every one is published.
Without the permission a sample waits for the double's scan, so that scenario
adds its devices 0.25 s apart without waiting, to sample every phase of the scan.

Baseline, in the same run against a fresh double with the same settings: the bare
Grafana round trip a client must make for one dashboard (write the file, reload
or wait for the scan by polling the dashboard, publish), with no bus and no
service. Each figure is printed beside it, with the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import percentile
from pluto.natsd import NatsServer
from shared.bus import connect
from shared.settings import BusSettings
from shared.subjects import OVERVIEW_KEY
from tests.grafana_double import GrafanaDouble
from tests.grafana_double.harness import SECRET, Fleet, eventually

RESULTS = Path(__file__).parent / "results"


async def start_service(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    out = log.open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.dashboards",
            env={**os.environ, **env}, stdout=out, stderr=out, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        out.close()


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


class Scenario:
    """A fresh nats-server, double and service; the fleet observer on the bus."""

    def __init__(self, root: Path, *, reload: bool, scan: float) -> None:
        self.root = root
        self.reload = reload
        self.scan = scan
        self.nats = NatsServer(root / "nats", log_file=root / "nats.log")
        self.double = GrafanaDouble(root / "dashboards", scan_interval=scan, reload_permitted=reload)
        self.fleet = Fleet()
        self.service: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Scenario:
        await self.nats.start()
        bus = await connect(BusSettings(nats_url=self.nats.url), name="bench")  # declares streams
        await bus.stop()
        await self.double.start()
        await self.fleet.start(self.nats.url)
        env = {
            "PLUTO_NATS_URL": self.nats.url,
            "PLUTO_LOG_LEVEL": "WARNING",
            "PLUTO_DASHBOARDS_GRAFANA_URL": self.double.url,
            "PLUTO_DASHBOARDS_DASHBOARDS_DIR": str(self.double.folder),
            "PLUTO_DASHBOARDS_TOKEN_SECRET": SECRET,
        }
        self.service = await start_service(env, self.root / "service.log")
        await eventually(
            lambda: self.fleet.published(OVERVIEW_KEY), timeout=60, what="the service up (overview)"
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.service is not None:
            await stop(self.service)
        await self.fleet.stop()
        await self.double.stop()
        self.nats.stop()

    def latency(self, device_id: str) -> float | None:
        for at, state in self.fleet.history:
            if state.device_id == device_id and state.kind == "published":
                return at - self.fleet.added_at[device_id]
        return None


async def sequential(s: Scenario, samples: int) -> list[float]:
    latencies = []
    for i in range(samples):
        device = f"seq-{i:04d}"
        await s.fleet.add(device, f"miner {i}")
        await eventually(lambda d=device: s.fleet.published(d), timeout=120, what=f"{device}")
        latencies.append(s.latency(device) or float("nan"))
    return latencies


async def spread(s: Scenario, samples: int, gap: float) -> list[float]:
    devices = [f"spread-{i:04d}" for i in range(samples)]
    for i, device in enumerate(devices):
        await s.fleet.add(device, f"miner {i}")
        await asyncio.sleep(gap)  # pacing the load generator, not waiting for a condition
    await eventually(lambda: all(s.fleet.published(d) for d in devices), timeout=300, what="spread samples")
    return [s.latency(d) or float("nan") for d in devices]


async def burst(s: Scenario, count: int) -> float:
    devices = [f"burst-{i:04d}" for i in range(count)]
    started = time.monotonic()
    await asyncio.gather(*(s.fleet.add(d, f"burst miner {i}") for i, d in enumerate(devices)))
    await eventually(
        lambda: all(s.fleet.published(d) for d in devices), timeout=600, what=f"{count} published"
    )
    return max(s.fleet.history[-1][0], started) - started


async def bare_round_trip(root: Path, *, reload: bool, scan: float, samples: int, gap: float) -> list[float]:
    """The floor: what one dashboard costs against the same double, done by hand."""
    import aiohttp

    double = GrafanaDouble(root / "dashboards", scan_interval=scan, reload_permitted=reload)
    double.folder.mkdir(parents=True, exist_ok=True)
    await double.start()
    headers = {"X-WEBAUTH-USER": "admin"}
    try:
        async with aiohttp.ClientSession(headers=headers) as http:

            async def one(i: int) -> float:
                uid = f"bare-{i:04d}"
                started = time.monotonic()
                body = {"uid": uid, "title": f"bare miner {i}", "schemaVersion": 39, "panels": []}
                (double.folder / f"{uid}.json").write_text(json.dumps(body))
                if reload:
                    async with http.post(f"{double.url}/api/admin/provisioning/dashboards/reload") as r:
                        assert r.status == 200, r.status
                delay = 0.01
                while True:  # the dashboard exists once Grafana has loaded the file
                    async with http.get(f"{double.url}/api/dashboards/uid/{uid}") as r:
                        if r.status == 200:
                            break
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.2)
                publish = {"isEnabled": True, "share": "public"}
                async with http.post(
                    f"{double.url}/api/dashboards/uid/{uid}/public-dashboards", json=publish
                ) as r:
                    assert r.status == 200, r.status
                return time.monotonic() - started

            if reload:
                return [await one(i) for i in range(samples)]
            tasks = []
            for i in range(samples):
                tasks.append(asyncio.create_task(one(i)))
                await asyncio.sleep(gap)  # pacing, as the service scenario does
            return list(await asyncio.gather(*tasks))
    finally:
        await double.stop()


def compare(name: str, service: dict[str, float], bare: dict[str, float]) -> None:
    for key in ("p50_s", "p95_s"):
        ratio = service[key] / bare[key] if bare[key] else float("nan")
        print(
            f"{name} {key[:-2]:<4} {service[key]:8.4f} s   baseline bare round trip "
            f"{bare[key]:8.3f} s   ratio {ratio:.2f}"
        )


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "n": len(latencies),
        "p50_s": round(percentile(latencies, 50), 4),
        "p95_s": round(percentile(latencies, 95), 4),
        "max_s": round(max(latencies), 3),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--scan", type=float, default=10.0, help="the double's scan interval, s")
    args = parser.parse_args()
    results: dict[str, Any] = {"scan_interval_s": args.scan}
    with tempfile.TemporaryDirectory(prefix="bench-dashboards-") as tmp:
        root = Path(tmp)
        async with Scenario(root / "a", reload=True, scan=args.scan) as s:
            results["latency_reload"] = summary(await sequential(s, args.samples))
        async with Scenario(root / "b", reload=True, scan=args.scan) as s:
            results["burst_reload_s"] = round(await burst(s, args.burst), 2)
        async with Scenario(root / "c", reload=False, scan=args.scan) as s:
            results["latency_no_reload"] = summary(await spread(s, args.samples, 0.25))
        async with Scenario(root / "d", reload=False, scan=args.scan) as s:
            results["burst_no_reload_s"] = round(await burst(s, args.burst), 2)
        results["bare_reload"] = summary(
            await bare_round_trip(root / "e", reload=True, scan=args.scan, samples=args.samples, gap=0)
        )
        results["bare_no_reload"] = summary(
            await bare_round_trip(root / "f", reload=False, scan=args.scan, samples=args.samples, gap=0.25)
        )
    results["burst_devices"] = args.burst
    print(f"dashboards benchmark, scan interval {args.scan:g} s, {args.samples} samples")
    compare("added -> published, reload permitted   ", results["latency_reload"], results["bare_reload"])
    compare(
        "added -> published, no reload (scan)    ", results["latency_no_reload"], results["bare_no_reload"]
    )
    print(
        f"{args.burst} devices added at once, all published: reload {results['burst_reload_s']} s, "
        f"no reload {results['burst_no_reload_s']} s"
    )
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dashboards.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
