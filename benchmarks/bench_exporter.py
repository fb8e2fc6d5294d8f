"""Exporter benchmark: ingest rate, /metrics render time and size, resident memory.

    .venv/bin/python -m benchmarks.bench_exporter            (or: python benchmarks/bench_exporter.py)
    .venv/bin/python -m benchmarks.bench_exporter --quick    (smaller, for a smoke run)

Every figure is printed beside its baseline and the ratio:
- ingest: readings/s applied by one exporter process (`python -m services.exporter`,
  its own process) beside a bare nats-py subscriber process receiving the same
  messages in the same run (the ceiling: parse nothing, keep nothing);
- render: `/metrics` render time and size at 1,000 and 10,000 devices beside
  `prometheus_client.generate_latest` over equivalent pre-set Gauges;
- memory: the exporter process's resident memory holding 10,000 devices beside
  the same process holding none.
Targets: >= 20,000 readings/s; /metrics at 10,000 devices < 1 s and faster than
the Gauge baseline. Loopback only; a private nats-server; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

THIS_FILE = str(Path(__file__).resolve())
ROOT = Path(THIS_FILE).parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/bench_exporter.py`
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import nats  # noqa: E402
from prometheus_client import Gauge, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from pluto.natsd import NatsServer, free_port  # noqa: E402
from services.exporter import families as fam  # noqa: E402
from services.exporter.collector import FleetCollector  # noqa: E402
from services.exporter.state import FleetState  # noqa: E402
from shared.models import DeviceReading  # noqa: E402
from shared.streams import ensure_streams  # noqa: E402

TARGET_INGEST = 20_000
TARGET_RENDER_S = 1.0


def reading(i: int, t: float) -> DeviceReading:
    """A full new-firmware reading for device `i` polled at `t`."""
    return DeviceReading(
        device_id=f"bench-{i:05d}", ok=True, poll_started_at=t, poll_finished_at=t + 0.05,
        hostname=f"bitaxe-{i}", mac=None, firmware="new", firmware_version="v2.5.0",
        asic_model="BM1370", board_version="601", device_model="Gamma", asic_count=1,
        hashrate_ghs=1000.0 + i % 97, hashrate_1m_ghs=1001.5, hashrate_10m_ghs=999.25,
        hashrate_1h_ghs=1000.125, hashrate_1d_ghs=1000.0, expected_hashrate_ghs=1100.0,
        error_percentage=0.5, power_watts=15.0 + i % 7, voltage_volts=5.1, current_amps=3.0,
        core_voltage_volts=1.15, core_voltage_actual_volts=1.148, frequency_mhz=525.0,
        asic_temp_celsius=55.5, temp2_celsius=50.25, vr_temp_celsius=60.75, fan_percent=80.0,
        fan_rpm=5000.0, fan2_rpm=0.0, shares_accepted=12_345 + int(t) % 1000, shares_rejected=12,
        best_diff=4.93e9, best_session_diff=1.2e6, stratum_url="mine.ocean.xyz",
        stratum_port=3334, stratum_user="bc1q.worker", uptime_seconds=t % 100_000,
        free_heap_bytes=150_000, wifi_rssi=-50.0,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def row(label: str, value: str, baseline_label: str, baseline: str, ratio: str) -> None:
    print(f"  {label:<38} {value:>14}   {baseline_label:<30} {baseline:>14}   {ratio}")


# --- ingest ---------------------------------------------------------------------------


async def _subscriber(kind: str, url: str, expected: int) -> None:
    """A counting subscriber process. Prints "ready", then one JSON line when done.

    `bare`: nats-py, parse nothing, keep nothing (the ceiling). `faststream`: the
    idiomatic FastStream handler (`async def handle(reading: DeviceReading)`), to
    show why the exporter uses nats-py directly.
    """
    nc = await nats.connect(url)
    count, first, last = 0, 0.0, 0.0
    done = asyncio.Event()

    def seen() -> None:
        nonlocal count, first, last
        last = time.time()
        if count == 0:
            first = last
        count += 1
        if count >= expected:
            done.set()

    async def cb(msg: object) -> None:
        seen()

    if kind == "bare":
        await nc.subscribe("pluto.readings.*", cb=cb, pending_msgs_limit=10_000_000,
                           pending_bytes_limit=-1)
        await nc.flush()
    else:
        from faststream.nats import NatsBroker

        broker = NatsBroker(url, logger=None)

        @broker.subscriber("pluto.readings.*")
        async def handle(reading: DeviceReading) -> None:
            seen()

        await broker.start()
    print("ready", flush=True)
    # Not every message may arrive (slow consumer): stop when nothing came for a while.
    while not done.is_set():
        before = count
        try:
            await asyncio.wait_for(done.wait(), 5)
        except TimeoutError:
            if count == before:
                break
    print(json.dumps({"count": count, "first": first, "last": last}), flush=True)
    await nc.close()


async def _get_json(session: aiohttp.ClientSession, url: str) -> dict:
    async with session.get(url) as resp:
        return await resp.json()


async def bench_ingest(devices: int, messages: int, workdir: Path) -> dict[str, float]:
    server = NatsServer(workdir / "nats", log_file=workdir / "nats.log")
    await server.start()
    exporter = bare = None
    try:
        nc = await nats.connect(server.url, pending_size=256 * 1024 * 1024)
        await ensure_streams(nc.jetstream())
        port = free_port()
        env = {**os.environ, "PLUTO_NATS_URL": server.url, "PLUTO_EXPORTER_HOST": "127.0.0.1",
               "PLUTO_EXPORTER_PORT": str(port), "PLUTO_LOG_LEVEL": "WARNING"}
        exporter = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.exporter", cwd=ROOT, env=env
        )
        bare = await asyncio.create_subprocess_exec(
            sys.executable, THIS_FILE, "--subscriber", "bare", server.url, str(messages),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        )
        assert bare.stdout is not None
        line = await bare.stdout.readline()
        assert line.strip() == b"ready", line
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if (await _get_json(session, f"{base}/healthz"))["ready"]:
                        break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("exporter not ready after 30 s")
                await asyncio.sleep(0.05)
            rss_idle = rss_bytes(exporter.pid)

            # Distinct, increasing poll times: the exporter applies each one (no dedupe).
            t0 = time.time() - messages
            payloads = [
                (f"pluto.readings.bench-{i % devices:05d}",
                 reading(i % devices, t0 + i).model_dump_json().encode())
                for i in range(messages)
            ]
            cpu_before = cpu_seconds(exporter.pid)
            started = time.perf_counter()
            for n, (subject, data) in enumerate(payloads):
                await nc.publish(subject, data)
                if n % 2000 == 0:
                    await asyncio.sleep(0)
            await nc.flush()
            publish_rate = messages / (time.perf_counter() - started)

            health: dict = {}
            last_count, last_change = -1, time.monotonic()
            while True:
                health = await _get_json(session, f"{base}/healthz")
                if health["readings_applied"] >= messages:
                    break
                if health["readings_applied"] != last_count:
                    last_count, last_change = health["readings_applied"], time.monotonic()
                elif time.monotonic() - last_change > 5:
                    break  # messages were lost (slow consumer): report what arrived
                await asyncio.sleep(0.1)
            cpu_used = cpu_seconds(exporter.pid) - cpu_before
            rss_full = rss_bytes(exporter.pid)
            async with session.get(f"{base}/metrics") as resp:
                await resp.read()
            rss_after_scrape = rss_bytes(exporter.pid)

        out, _ = await asyncio.wait_for(bare.communicate(), 60)
        bare_result = json.loads(out.decode().strip().splitlines()[-1])
        applied = health["readings_applied"]
        exporter_rate = (applied - 1) / (health["last_reading_at"] - health["first_reading_at"])
        bare_rate = (bare_result["count"] - 1) / (bare_result["last"] - bare_result["first"])
        await nc.close()
        return {
            "publish_rate": publish_rate, "exporter_rate": exporter_rate, "bare_rate": bare_rate,
            "per_cpu_second": applied / cpu_used if cpu_used else math.nan,
            "cpu_share": cpu_used / max(health["last_reading_at"] - health["first_reading_at"], 1e-9),
            "applied": applied, "bare_count": bare_result["count"], "devices": health["devices"],
            "rss_idle": rss_idle, "rss_full": rss_full, "rss_after_scrape": rss_after_scrape,
        }
    finally:
        for proc in (exporter, bare):
            if proc is not None and proc.returncode is None:
                proc.terminate()
                await proc.wait()
        server.stop()


# --- render -----------------------------------------------------------------------------


def _fleet(devices: int) -> FleetState:
    state = FleetState(offline_after=15.0)
    now = time.time()
    for i in range(devices):
        state.apply_reading(reading(i, now - 1), f"pluto.readings.bench-{i:05d}", now)
    return state


class _Gauges:
    """The baseline: pre-set prometheus_client Gauges, one per series a Gauge design needs.

    Gauges are built unregistered and collected through this shim because
    CollectorRegistry.register checks names against every registered name
    (quadratic: minutes at 10,000 devices); `generate_latest` only calls `collect()`.
    """

    def __init__(self, state: FleetState, prefixes: dict[str, str]) -> None:
        self.metrics: list[Gauge] = []
        devices = list(state.devices.values())
        for i, m in enumerate(fam.MEASURES):
            g = Gauge(m.name, m.help, ["device", "hostname"], registry=None)
            for d in devices:
                if (v := d.values[i]) is not None:
                    g.labels(d.device_id, d.hostname).set(v)
            self.metrics.append(g)
        for i, c in enumerate(fam.COUNTS):
            g = Gauge(c.name.removesuffix("_total"), c.help, ["device", "hostname"], registry=None)
            for d in devices:
                if (v := d.counts[i]) is not None:
                    g.labels(d.device_id, d.hostname).set(v)
            self.metrics.append(g)
        up = Gauge(fam.DEVICE_UP, "up", ["device", "hostname"], registry=None)
        reboots = Gauge(fam.DEVICE_REBOOTS.removesuffix("_total"), "reboots",
                        ["device", "hostname"], registry=None)
        last = Gauge(fam.DEVICE_LAST_SUCCESS, "last", ["device", "hostname"], registry=None)
        info = Gauge(fam.DEVICE_INFO, "info", ["device", "hostname", "firmware_version",
                     "asic_model", "board_version", "device_model", "firmware", "pool"],
                     registry=None)
        for d in devices:
            up.labels(d.device_id, d.hostname).set(1)
            reboots.labels(d.device_id, d.hostname).set(d.reboots)
            last.labels(d.device_id, d.hostname).set(d.last_ok_at or 0)
            info.labels(d.device_id, d.hostname, *d.identity).set(1)
        self.metrics += [up, reboots, last, info]
        suffixes = [(i, m.host_suffix) for i, m in enumerate(fam.MEASURES) if m.host_suffix]
        counts = [(i, c.host_suffix) for i, c in enumerate(fam.COUNTS) if c.host_suffix]
        for d in devices:
            p = prefixes[d.device_id]
            for i, suffix in suffixes:
                if (v := d.values[i]) is not None:
                    g = Gauge(f"{p}{suffix}", "per host", registry=None)
                    g.set(v)
                    self.metrics.append(g)
            for i, suffix in counts:
                if (v := d.counts[i]) is not None:
                    g = Gauge(f"{p}{suffix}", "per host", registry=None)
                    g.set(v)
                    self.metrics.append(g)
        for name, _ in fam.OVERVIEW:
            g = Gauge(name, "overview", registry=None)
            g.set(1)
            self.metrics.append(g)

    def collect(self):  # type: ignore[no-untyped-def]
        for metric in self.metrics:
            yield from metric.collect()


def _timed(fn, repeat: int) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return times[0], statistics.median(times), result


def bench_render(devices: int, repeat: int) -> dict[str, float]:
    state = _fleet(devices)
    collector = FleetCollector(state, process_metrics=False)
    now = time.time()
    cold, median, body = _timed(lambda: collector.render(now), repeat)
    assert isinstance(body, bytes)
    if devices <= 1000:  # the output must parse; checked where parsing is quick
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        assert "pluto_hashrate_ghs" in names and "total_hashrate" in names
    gauges = _Gauges(state, collector.prefixes())
    b_cold, b_median, b_body = _timed(lambda: generate_latest(gauges), repeat)  # type: ignore[arg-type]
    assert isinstance(b_body, bytes)
    return {"cold": cold, "median": median, "size": len(body), "b_cold": b_cold,
            "b_median": b_median, "b_size": len(b_body)}


# --- main -----------------------------------------------------------------------------------


async def bench_faststream(messages: int, workdir: Path) -> dict[str, float]:
    """FastStream's idiomatic subscriber beside a bare nats-py one, same messages."""
    server = NatsServer(workdir / "nats", log_file=workdir / "nats.log")
    await server.start()
    procs: list[asyncio.subprocess.Process] = []
    try:
        nc = await nats.connect(server.url, pending_size=256 * 1024 * 1024)
        await ensure_streams(nc.jetstream())
        for kind in ("faststream", "bare"):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, THIS_FILE, "--subscriber", kind, server.url, str(messages),
                cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            )
            procs.append(proc)
            assert proc.stdout is not None
            line = await proc.stdout.readline()
            assert line.strip() == b"ready", line
        t0 = time.time() - messages
        payloads = [(f"pluto.readings.bench-{i % 1000:05d}",
                     reading(i % 1000, t0 + i).model_dump_json().encode()) for i in range(messages)]
        for i, (subject, data) in enumerate(payloads):
            await nc.publish(subject, data)
            if i % 2000 == 0:
                await asyncio.sleep(0)
        await nc.flush()
        rates = {}
        for kind, proc in zip(("faststream", "bare"), procs, strict=True):
            out, _ = await asyncio.wait_for(proc.communicate(), 120)
            result = json.loads(out.decode().strip().splitlines()[-1])
            rates[kind] = (result["count"] - 1) / max(result["last"] - result["first"], 1e-9)
            rates[f"{kind}_count"] = result["count"]
        await nc.close()
        return rates
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()
        server.stop()


async def main(quick: bool, faststream: bool = False) -> int:
    devices, messages = (1_000, 20_000) if quick else (10_000, 50_000)
    failures: list[str] = []
    started = time.perf_counter()
    print(f"exporter benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)\n")

    with tempfile.TemporaryDirectory(prefix="bench-exporter-") as tmp:
        ingest = await bench_ingest(devices, messages, Path(tmp))
    ratio = ingest["exporter_rate"] / ingest["bare_rate"]
    print(f"ingest: {messages:,} readings over {devices:,} devices, publisher at "
          f"{ingest['publish_rate']:,.0f}/s")
    row("exporter process, readings/s", f"{ingest['exporter_rate']:,.0f}",
        "bare nats-py subscriber /s", f"{ingest['bare_rate']:,.0f}", f"ratio {ratio:.2f}")
    row("  messages applied", f"{ingest['applied']:,}", "  messages received",
        f"{ingest['bare_count']:,}", "")
    row("  per CPU-second of the exporter", f"{ingest['per_cpu_second']:,.0f}", "", "",
        f"(it had {min(ingest['cpu_share'], 1.0):.0%} of a CPU while ingesting)")
    if ingest["exporter_rate"] < TARGET_INGEST:
        failures.append(
            f"ingest {ingest['exporter_rate']:,.0f}/s < {TARGET_INGEST:,}/s (the exporter had "
            f"{min(ingest['cpu_share'], 1.0):.0%} of a CPU; per CPU-second "
            f"{ingest['per_cpu_second']:,.0f}/s: is the machine busy?)"
        )
    if ingest["applied"] < messages:
        failures.append(f"exporter applied {ingest['applied']:,} of {messages:,} readings")

    mib = 1024 * 1024
    print(f"\nmemory: exporter resident set (VmRSS), {ingest['devices']:,} devices")
    row(f"holding {ingest['devices']:,} devices", f"{ingest['rss_full'] / mib:,.1f} MiB",
        "holding none (same process)", f"{ingest['rss_idle'] / mib:,.1f} MiB",
        f"+{(ingest['rss_full'] - ingest['rss_idle']) / max(ingest['devices'], 1) / 1024:.1f}"
        " KiB/device")
    row("  after one /metrics scrape", f"{ingest['rss_after_scrape'] / mib:,.1f} MiB", "", "", "")

    print("\nrender: /metrics built at scrape time vs generate_latest over pre-set Gauges")
    for n in (1_000,) if quick else (1_000, 10_000):
        r = bench_render(n, repeat=3)
        speedup = r["b_median"] / r["median"]
        row(f"{n:,} devices, median of 3", f"{r['median'] * 1000:,.1f} ms",
            "Gauges + generate_latest", f"{r['b_median'] * 1000:,.1f} ms",
            f"{speedup:.1f}x faster")
        row("  first render", f"{r['cold'] * 1000:,.1f} ms", "  first generate_latest",
            f"{r['b_cold'] * 1000:,.1f} ms", "")
        row("  size", f"{r['size'] / mib:,.2f} MiB", "  size", f"{r['b_size'] / mib:,.2f} MiB",
            f"{r['size'] / r['b_size']:.2f}")
        if n == 10_000:
            if max(r["cold"], r["median"]) >= TARGET_RENDER_S:
                failures.append(f"render at 10,000 devices took {r['median']:.2f} s")
            if r["median"] >= r["b_median"]:
                failures.append("render not faster than the Gauge baseline")

    if faststream:
        with tempfile.TemporaryDirectory(prefix="bench-faststream-") as tmp:
            fs = await bench_faststream(20_000, Path(tmp))
        print("\nwhy nats-py: the idiomatic FastStream subscriber on the same messages")
        row("FastStream handler, readings/s", f"{fs['faststream']:,.0f}",
            "bare nats-py subscriber /s", f"{fs['bare']:,.0f}",
            f"ratio {fs['faststream'] / fs['bare']:.2f}")

    print(f"\ntargets: ingest >= {TARGET_INGEST:,}/s, render at 10,000 devices < "
          f"{TARGET_RENDER_S:g} s and faster than the baseline; "
          f"run took {time.perf_counter() - started:.0f} s")
    for failure in failures:
        print(f"MISSED: {failure}")
    print("all targets met" if not failures else "")
    return 1 if failures else 0


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 devices, fewer messages")
    parser.add_argument("--faststream", action="store_true",
                        help="also measure a FastStream subscriber against a bare one")
    parser.add_argument("--subscriber", nargs=3, metavar=("KIND", "URL", "COUNT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.subscriber:
        kind, url, count = args.subscriber
        asyncio.run(_subscriber(kind, url, int(count)))
        return
    sys.exit(asyncio.run(main(args.quick, args.faststream)))


if __name__ == "__main__":
    cli()
