"""`pluto up`: the whole system on one machine, from nothing.

A private nats-server (JetStream in `<data>/nats`), the device simulator, each
service as its own process (logs in `<data>/logs`), Prometheus when a
`prometheus` binary is on PATH, the simulated devices registered through
device events; then a status line until Ctrl-C, which stops everything in
reverse order. Grafana is used when it answers at `--grafana-url`; until then
the dashboards service writes its files and keeps the publishing queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import nats
from nats.aio.msg import Msg

from pluto.natsd import NatsServer, free_port
from pluto.procs import Child, start_module, stop_child
from pluto.prometheusd import PrometheusProcess, find_prometheus
from shared import subjects
from shared.ids import device_id_from_mac, device_id_from_url
from shared.models import DeviceAdded
from shared.registry import publish_added
from shared.streams import ensure_streams


@dataclass(frozen=True)
class UpOptions:
    data_dir: Path
    devices: int
    nats_port: int | None
    simulator_port: int | None
    interval_s: float
    status_every_s: float = 10.0
    exporter_port: int | None = None
    api_port: int | None = None
    grafana_url: str = "http://127.0.0.1:3000/grafana"


def say(text: str) -> None:
    print(f"pluto up: {text}", flush=True)


def _preferred_port(port: int) -> int:
    """`port` when it is free on loopback, else any free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def _service_env(
    options: UpOptions, data: Path, nats_url: str, exporter_port: int, api_port: int
) -> dict[str, dict[str, str]]:
    """Each service's environment, in start order (stopped in reverse)."""
    common = {"PLUTO_NATS_URL": nats_url}
    return {
        "poller": {
            **common,
            "PLUTO_POLLER_INTERVAL_S": str(options.interval_s),
            "PLUTO_POLLER_HEALTH_PORT": str(_preferred_port(9111)),
        },
        "exporter": {
            **common,
            "PLUTO_EXPORTER_HOST": "127.0.0.1",
            "PLUTO_EXPORTER_PORT": str(exporter_port),
            "PLUTO_EXPORTER_POLL_INTERVAL": str(options.interval_s),
        },
        "dashboards": {
            **common,
            "PLUTO_DASHBOARDS_DASHBOARDS_DIR": str(data / "grafana" / "dashboards"),
            "PLUTO_DASHBOARDS_TOKEN_SECRET_FILE": str(data / "dashboards.secret"),
            "PLUTO_DASHBOARDS_GRAFANA_URL": options.grafana_url,
            "PLUTO_DASHBOARDS_HEALTH_PORT": str(_preferred_port(9112)),
        },
        "api": {
            **common,
            "PLUTO_API_HOST": "127.0.0.1",
            "PLUTO_API_PORT": str(api_port),
            "PLUTO_API_OPERATOR_TOKEN_FILE": str(data / "operator.token"),
            "PLUTO_API_OFFLINE_AFTER": str(3 * options.interval_s),
            "PLUTO_API_GRAFANA_URL": options.grafana_url,
        },
    }


async def _grafana_answers(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http,
            http.get(f"{url}/api/health") as resp,
        ):
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


async def _simulated_devices(base_url: str) -> list[DeviceAdded]:
    async with aiohttp.ClientSession() as http, http.get(f"{base_url}/control/devices") as resp:
        resp.raise_for_status()
        listing = await resp.json()
    now = time.time()
    return [
        DeviceAdded(
            id=device_id_from_mac(item.get("mac") or "") or device_id_from_url(item["url"]),
            url=item["url"],
            hostname=item["name"],
            mac=item.get("mac"),
            labels={"source": "simulator"},
            at=now,
        )
        for item in listing
    ]


async def _register(nats_url: str, devices: list[DeviceAdded]) -> None:
    client = await nats.connect(nats_url, name="pluto-up")
    try:
        js = client.jetstream()
        await ensure_streams(js)
        for device in devices:
            await publish_added(js, device)
    finally:
        await client.close()


async def _status_loop(nats_url: str, every_s: float) -> None:
    """Prints what the bus carries, so a user sees the system working."""
    client = await nats.connect(nats_url, name="pluto-up-status")
    counts = {"ok": 0, "error": 0}
    seen: set[str] = set()

    async def on_reading(msg: Msg) -> None:
        seen.add(msg.subject)
        counts["ok" if b'"ok":true' in msg.data else "error"] += 1

    await client.subscribe(subjects.READINGS_ALL, cb=on_reading)
    try:
        while True:
            await asyncio.sleep(every_s)
            say(
                f"last {every_s:g}s: {counts['ok']} readings, {counts['error']} error readings, "
                f"from {len(seen)} devices"
            )
            counts.update(ok=0, error=0)
            seen.clear()
    finally:
        await client.close()


async def run_up(options: UpOptions) -> int:
    data = options.data_dir.resolve()
    logs = data / "logs"
    children: list[Child] = []
    prometheus: PrometheusProcess | None = None
    server = NatsServer(
        data / "nats", port=options.nats_port or _preferred_port(4222), log_file=logs / "nats.log"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        logs.mkdir(parents=True, exist_ok=True)
        await server.start()
        (data / "nats_url").write_text(server.url + "\n")
        say(f"NATS with JetStream at {server.url} (store {data / 'nats'})")

        simulator = await start_module(
            "simulator",
            "services.simulator",
            ["--devices", str(options.devices), "--port", str(options.simulator_port or 0)],
            {},
            logs / "simulator.log",
            ready_pattern=r"simulator listening on (http://\S+)",
        )
        children.append(simulator)
        match = re.search(r"(http://\S+)", simulator.ready_line or "")
        assert match, simulator.ready_line
        sim_url = match.group(1)
        say(
            f"simulator: {options.devices} AxeOS devices under {sim_url}/d/<name> "
            f"(faults: PUT {sim_url}/control/devices/<name>/fault)"
        )

        exporter_port = options.exporter_port or _preferred_port(9110)
        api_port = options.api_port or _preferred_port(8080)
        for service, env in _service_env(options, data, server.url, exporter_port, api_port).items():
            # The gateway says when it serves (its token file exists by then).
            ready = r"api listening on http://\S+" if service == "api" else None
            children.append(
                await start_module(
                    service, f"services.{service}", [], env, logs / f"{service}.log", ready_pattern=ready
                )
            )
            health = env.get(f"PLUTO_{service.upper()}_HEALTH_PORT")
            where = f", ready at http://127.0.0.1:{health}/readyz" if health else ""
            say(f"{service}: started (log {logs / f'{service}.log'}{where})")
        say(f"exporter: http://127.0.0.1:{exporter_port}/metrics")
        say(f"api: http://127.0.0.1:{api_port}/ (web page), http://127.0.0.1:{api_port}/openapi.json")
        token = (data / "operator.token").read_text().strip()
        say(f"api: operator token for register/remove: {token}")

        if find_prometheus():
            prometheus = PrometheusProcess([f"127.0.0.1:{exporter_port}"])
            await prometheus.start()
            say(f"Prometheus: {prometheus.url} (scraping the exporter every 5 s)")
        else:
            say("Prometheus: no `prometheus` binary on PATH; the exporter still serves /metrics")
        if await _grafana_answers(options.grafana_url):
            say(f"Grafana: {options.grafana_url} answers; dashboards are published there")
        else:
            say(
                f"Grafana: nothing answers at {options.grafana_url}; dashboard files are written to "
                f"{data / 'grafana' / 'dashboards'} and published once Grafana answers (--grafana-url)"
            )

        await _register(server.url, await _simulated_devices(sim_url))
        say(f"registered {options.devices} simulated devices through device-added events")
        say(f"to use the CLI elsewhere: export PLUTO_NATS_URL={server.url}; pluto devices list")
        say("Ctrl-C stops everything")

        status = asyncio.create_task(_status_loop(server.url, options.status_every_s))
        watch = [asyncio.create_task(c.process.wait(), name=c.name) for c in children]
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopper, *watch], return_when=asyncio.FIRST_COMPLETED)
        status.cancel()
        for task in done:
            if task is not stopper:
                say(f"{task.get_name()} exited with {task.result()}; see {logs / task.get_name()}.log")
                return 1
        return 0
    finally:
        say("stopping")
        for child in reversed(children):
            await stop_child(child)
        if prometheus is not None:
            await prometheus.stop()
        server.stop()
        with contextlib.suppress(FileNotFoundError):
            (data / "nats_url").unlink()
        say("stopped")
