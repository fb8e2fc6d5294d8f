"""The API gateway at 10,000 devices: requests per second beside a bare aiohttp handler, and memory.

    .venv/bin/python -m benchmarks.bench_api [--devices 10000] [--seconds 5] [--concurrency 32]

Processes, all on loopback: nats-server; the gateway (`python -m services.api`, one
process, as deployed); a bare aiohttp server returning a constant JSON body (this
module with `--bare-server`, same event loop: uvloop); and this process, which
seeds the streams (10,000 registrations, readings and published dashboards),
keeps readings flowing at the fleet's steady rate (devices / 5 s) while it
measures, and drives the load: `--concurrency` keep-alive connections, each
sending its next request as soon as the last one is answered, for `--seconds`
per target after a one-second warm-up. Each target is measured right after its
own baseline run, so a drift in the machine's load hits both. Two figures per
target, each beside its baseline with the ratio: requests per second (bounded by
this Python load generator for the fast ones), and one-core capacity, 1 / the
server's CPU time per request (the gateway's includes ingesting readings).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import nats
from aiohttp import web

from benchmarks.common import Proc, cpu_seconds, percentile, row, rss_mib, start_python
from pluto.natsd import NatsServer
from shared import runtime, streams, subjects
from shared.models import DashboardState, DeviceAdded, DeviceReading
from shared.registry import publish_added
from shared.streams import ensure_streams

INTERVAL = 5.0
CONSTANT = json.dumps({"status": "ok", "devices": 10000}).encode()


# --- the baseline: a bare aiohttp handler ------------------------------------------------


async def _bare_server() -> None:
    async def constant(request: web.Request) -> web.Response:
        return web.Response(body=CONSTANT, content_type="application/json")

    app = web.Application()
    app.router.add_get("/", constant)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(f"bare listening on http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


# --- the fleet on the bus --------------------------------------------------------------------


def _reading(i: int, at: float) -> DeviceReading:
    return DeviceReading(
        device_id=f"dev-{i:05d}",
        ok=True,
        poll_started_at=at - 0.05,
        poll_finished_at=at,
        hostname=f"miner-{i:05d}",
        firmware="new",
        firmware_version=f"v2.{i % 7}.0",
        asic_model="BM1370",
        board_version="601",
        device_model="Gamma",
        asic_count=1,
        hashrate_ghs=1000.0 + i % 100,
        hashrate_1m_ghs=1001.0,
        hashrate_10m_ghs=999.0,
        hashrate_1h_ghs=1000.0,
        hashrate_1d_ghs=998.0,
        expected_hashrate_ghs=1100.0,
        error_percentage=0.25,
        power_watts=15.5,
        voltage_volts=5.1,
        current_amps=3.0,
        core_voltage_volts=1.15,
        core_voltage_actual_volts=1.148,
        frequency_mhz=525.0,
        efficiency_jth=15.4,
        asic_temp_celsius=55.5,
        temp2_celsius=50.0,
        vr_temp_celsius=60.0,
        fan_percent=80.0,
        fan_rpm=5000.0,
        shares_accepted=12_345 + i,
        shares_rejected=12,
        best_diff=4.9e9,
        best_session_diff=1.2e6,
        stratum_url="mine.ocean.xyz",
        stratum_port=3334,
        uptime_seconds=3600.0,
        free_heap_bytes=150_000,
        wifi_rssi=-50.0,
    )


async def seed(js: nats.js.JetStreamContext, client: nats.NATS, devices: int) -> None:
    now = time.time()
    for start in range(0, devices, 500):
        batch = range(start, min(start + 500, devices))
        await asyncio.gather(
            *(
                publish_added(
                    js,
                    DeviceAdded(
                        id=f"dev-{i:05d}",
                        url=f"http://10.{i // 65536}.{i // 256 % 256}.{i % 256}/",
                        hostname=f"miner-{i:05d}",
                        labels={"rack": f"r{i % 40}"},
                        at=now,
                    ),
                )
                for i in batch
            )
        )
        await asyncio.gather(
            *(
                js.publish(
                    subjects.dashboard_event(f"dev-{i:05d}", "published"),
                    DashboardState(
                        kind="published",
                        device_id=f"dev-{i:05d}",
                        dashboard_uid=f"pluto-d-dev-{i:05d}",
                        title=f"miner-{i:05d}",
                        public_uid=f"p{i:05d}",
                        access_token=f"{i:032x}",
                        public_path=f"/grafana/public-dashboards/{i:032x}",
                        created_at=now,
                        updated_at=now,
                    )
                    .model_dump_json()
                    .encode(),
                    stream=streams.DASHBOARDS,
                )
                for i in batch
            )
        )
        for i in batch:
            await client.publish(
                subjects.reading(f"dev-{i:05d}"), _reading(i, now).model_dump_json().encode()
            )
    await client.flush()


async def keep_readings_flowing(client: nats.NATS, devices: int, rate: float, counter: list[int]) -> None:
    """Readings at `rate` per second, round-robin over the fleet, as the poller would publish them.

    Each device's reading is serialized once; only its timestamps change, so this
    process spends its time on the load, not on building readings.
    """
    stamp = b'"poll_started_at":0.95,"poll_finished_at":1.0'
    templates: dict[int, bytes] = {}
    started = time.monotonic()
    while True:
        due = started + counter[0] / rate
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
        device = counter[0] % devices
        if (template := templates.get(device)) is None:
            template = templates[device] = _reading(device, 1.0).model_dump_json().encode()
            assert stamp in template
        now = time.time()
        fresh = f'"poll_started_at":{now - 0.05},"poll_finished_at":{now}'.encode()
        await client.publish(subjects.reading(f"dev-{device:05d}"), template.replace(stamp, fresh))
        counter[0] += 1


# --- load ----------------------------------------------------------------------------------------


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_per_1000: float


async def load(url: str, seconds: float, concurrency: int, server_pid: int) -> Load:
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker(until: float, latencies: list[float] | None, errors: list[int]) -> None:
            while time.perf_counter() < until:
                started = time.perf_counter()
                try:
                    async with http.get(url) as response:
                        await response.read()
                        if response.status != 200:
                            errors[0] += 1
                except aiohttp.ClientError:
                    errors[0] += 1
                if latencies is not None:
                    latencies.append(time.perf_counter() - started)

        warm: list[int] = [0]
        await asyncio.gather(*(worker(time.perf_counter() + 1.0, None, warm) for _ in range(concurrency)))
        latencies: list[float] = []
        errors = [0]
        cpu0, t0 = cpu_seconds(server_pid), time.perf_counter()
        await asyncio.gather(*(worker(t0 + seconds, latencies, errors) for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(server_pid) - cpu0
    return Load(
        rps=len(latencies) / elapsed,
        p50_ms=1000 * percentile(latencies, 50),
        p99_ms=1000 * percentile(latencies, 99),
        errors=errors[0],
        server_cpu_per_1000=1000 * cpu / max(len(latencies), 1),
    )


async def wait_ready(url: str, devices: int, timeout: float = 120.0) -> float:
    """Seconds until /readyz says ready and the overview counts every device online."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - started < timeout:
            try:
                async with http.get(url + "/readyz") as ready, http.get(url + "/api/v1/overview") as overview:
                    totals = await overview.json()
                    if ready.status == 200 and totals["hardware_online"] == devices:
                        return time.monotonic() - started
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"gateway not ready with {devices} devices online after {timeout:g}s")


async def start_gateway(nats_url: str, work: Path) -> tuple[Proc, str]:
    gateway = await start_python(
        "services.api",
        env={
            "PLUTO_NATS_URL": nats_url,
            "PLUTO_API_HOST": "127.0.0.1",
            "PLUTO_API_PORT": "0",
            "PLUTO_API_OFFLINE_AFTER": "3600",  # the seeded readings stay "online" for the whole run
            "PLUTO_LOG_LEVEL": "WARNING",
        },
        ready=r"api listening on",
        log=work / "api.log",
    )
    url = re.search(r"(http://\S+)", gateway.ready_line).group(1)  # type: ignore[union-attr]
    return gateway, url


async def main(devices: int, seconds: float, concurrency: int, out: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    server = NatsServer(work / "nats")
    await server.start()
    client = await nats.connect(server.url, name="bench-api")
    js = client.jetstream()
    await ensure_streams(js)
    header = (
        f"API gateway benchmark: {devices} devices, {seconds:g} s per target, {concurrency} connections, "
        f"readings flowing at {devices / INTERVAL:g}/s"
    )
    print(header, flush=True)
    lines = [header]

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    bare = await start_python("benchmarks.bench_api", "--bare-server", ready=r"bare listening on")
    bare_url = re.search(r"(http://\S+)", bare.ready_line).group(1)  # type: ignore[union-attr]
    gateway, url = await start_gateway(server.url, work)
    flowing: asyncio.Task[None] | None = None
    try:
        await wait_ready(url, 0)
        empty_rss = rss_mib(gateway.pid)
        t0 = time.monotonic()
        await seed(js, client, devices)
        seeded = time.monotonic() - t0
        live_catch_up = await wait_ready(url, devices)
        say(
            f"seeded {devices} registrations, readings and dashboards in {seeded:.1f} s; "
            f"the running gateway had them all {live_catch_up:.2f} s later"
        )

        await gateway.stop()
        gateway, url = await start_gateway(server.url, work)
        replay = await wait_ready(url, devices)
        say(f"a restarted gateway replayed the three streams and was ready in {replay:.2f} s")

        published = [0]
        flowing = asyncio.create_task(keep_readings_flowing(client, devices, devices / INTERVAL, published))
        targets = {
            "device list (page of 100)": "/api/v1/devices",
            "device list, status filter": "/api/v1/devices?status=online&limit=100",
            "device list, text filter": "/api/v1/devices?q=miner-0999&limit=100",
            "one device": f"/api/v1/devices/dev-{devices // 2:05d}",
            "overview": "/api/v1/overview",
        }
        results: dict[str, tuple[Load, Load]] = {}
        for name, path in targets.items():
            # The baseline right before each target: the machine's load drifts, a pair does not.
            baseline = await load(bare_url + "/", seconds, concurrency, bare.pid)
            before = published[0]
            result = await load(url + path, seconds, concurrency, gateway.pid)
            results[name] = (result, baseline)
            say(
                f"{name} ({path}): {result.rps:,.0f} req/s (bare {baseline.rps:,.0f}), "
                f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, {result.errors} errors, "
                f"gateway CPU {result.server_cpu_per_1000:.3f} s/1000 requests "
                f"(bare {baseline.server_cpu_per_1000:.3f}), "
                f"{published[0] - before} readings ingested meanwhile"
            )
        gateway_rss, bare_rss = rss_mib(gateway.pid), rss_mib(bare.pid)
    finally:
        if flowing is not None:
            flowing.cancel()
        await gateway.stop()
        await bare.stop()
        await client.close()
        server.stop()

    summary = []
    for name, (result, baseline) in results.items():
        summary.append(row(f"{name}, req/s", result.rps, "req/s", baseline.rps, "bare aiohttp constant"))
    for name, (result, baseline) in results.items():
        summary.append(
            row(
                f"{name}, 1-core capacity",
                1000 / result.server_cpu_per_1000,
                "req/s",
                1000 / baseline.server_cpu_per_1000,
                "bare aiohttp constant",
            )
        )
    summary += [
        row(f"gateway RSS at {devices:,} devices", gateway_rss, "MiB", bare_rss, "bare aiohttp server"),
        row("gateway RSS with no device", empty_rss, "MiB", bare_rss, "bare aiohttp server"),
        row("memory per device", (gateway_rss - empty_rss) * 1024 / devices, "KiB"),
        row("ready after a restart (replay)", replay, "s"),
    ]
    for line in summary:
        say(line)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")  # noqa: ASYNC240 - once, at the end


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/api.txt"))
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        runtime.run(_bare_server())
    else:
        # The same event loop as the services (uvloop), so the load generator is no slower than it must be.
        runtime.run(main(args.devices, args.seconds, args.concurrency, args.out))
