"""`pluto up`: the whole system on one machine, from nothing.

A private nats-server (JetStream in `<data>/nats`), the device simulator, each
service as its own process (logs in `<data>/logs`), the simulated devices
registered through device events; then a status line until Ctrl-C, which
stops everything in reverse order.
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
from shared import subjects
from shared.ids import device_id_from_mac, device_id_from_url
from shared.models import DeviceAdded
from shared.registry import publish_added
from shared.settings import BusSettings
from shared.streams import ensure_streams

# The services `pluto up` runs, in start order (stopped in reverse).
SERVICES = ("poller",)


@dataclass(frozen=True)
class UpOptions:
    data_dir: Path
    devices: int
    nats_port: int | None
    simulator_port: int | None
    interval_s: float
    status_every_s: float = 10.0


def say(text: str) -> None:
    print(f"pluto up: {text}", flush=True)


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
        env = {"PLUTO_NATS_URL": server.url, "PLUTO_POLLER_INTERVAL_S": str(options.interval_s)}

        simulator = await start_module(
            "simulator",
            "services.simulator",
            ["--devices", str(options.devices), "--port", str(options.simulator_port or 0)],
            env,
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

        for service in SERVICES:
            children.append(
                await start_module(service, f"services.{service}", [], env, logs / f"{service}.log")
            )
            say(f"{service}: running (log {logs / f'{service}.log'})")

        broker_settings = BusSettings(nats_url=server.url)
        client = await nats.connect(broker_settings.nats_servers, name="pluto-up")
        try:
            js = client.jetstream()
            await ensure_streams(js)
            for device in await _simulated_devices(sim_url):
                await publish_added(js, device)
        finally:
            await client.close()
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
        server.stop()
        with contextlib.suppress(FileNotFoundError):
            (data / "nats_url").unlink()
        say("stopped")


def _preferred_port(port: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port
