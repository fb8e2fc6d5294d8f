"""The `pluto` command line and `pluto up`, run as a user would, as subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from pluto.natsd import NatsServer, free_port
from services.simulator.server import start_simulator

PLUTO = [sys.executable, "-m", "pluto"]


async def run_pluto(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *PLUTO,
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_devices_add_list_remove(nats_server: NatsServer) -> None:
    env = {"PLUTO_NATS_URL": nats_server.url}
    sim = await start_simulator(devices=2, seed=3)
    try:
        legacy_url, new_url = sim.device_urls
        code, out, err = await run_pluto("devices", "add", new_url, "--label", "rack=a", env=env)
        assert code == 0, err
        new_mac = sim.fleet.describe("mockaxe2").mac
        assert new_mac
        new_id = new_mac.replace(":", "").lower()
        assert out.startswith(f"added {new_id}")  # id from the MAC the device reports

        code, out, err = await run_pluto("devices", "add", legacy_url, "--id", "rack-a-1", env=env)
        assert code == 0, err
        code, out, _ = await run_pluto("devices", "list", "--json", env=env)
        listed = {d["id"]: d for d in json.loads(out)}
        assert set(listed) == {new_id, "rack-a-1"}
        assert listed[new_id]["hostname"] == "mockaxe2" and listed[new_id]["labels"] == {"rack": "a"}

        code, out, err = await run_pluto("devices", "remove", "rack-a-1", env=env)
        assert code == 0, err
        code, out, _ = await run_pluto("devices", "list", "--json", env=env)
        assert [d["id"] for d in json.loads(out)] == [new_id]
    finally:
        await sim.stop()


@pytest.mark.parametrize(
    "args",
    [
        ("devices", "add", "file:///etc/passwd"),
        ("devices", "add", "http://h/", "--id", "../x"),
        ("devices", "remove", "a.b"),
    ],
)
async def test_bad_input_is_a_clear_error(nats_server: NatsServer, args: tuple[str, ...]) -> None:
    code, _, err = await run_pluto(*args, env={"PLUTO_NATS_URL": nats_server.url})
    assert code == 2 and "pluto:" in err and "Traceback" not in err


async def test_pluto_up_runs_the_stack_and_stops_cleanly(tmp_path: Path) -> None:
    exporter_port, api_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        *PLUTO,
        "up",
        "--devices",
        "4",
        "--interval",
        "1",
        "--data-dir",
        str(tmp_path / "data"),
        "--nats-port",
        str(free_port()),
        "--exporter-port",
        str(exporter_port),
        "--api-port",
        str(api_port),
        "--status-every",
        "1",
        "--grafana-url",
        f"http://127.0.0.1:{free_port()}/grafana",  # nothing there: said, not fatal
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(60):
            while True:
                line = (await process.stdout.readline()).decode()
                assert line, "pluto up ended early:\n" + "".join(seen)
                seen.append(line)
                match = re.search(r"last \S+: (\d+) readings, \d+ error readings, from (\d+) devices", line)
                if match and int(match.group(2)) == 4:
                    break
        text = "".join(seen)
        assert "registered 4 simulated devices" in text
        assert f"http://127.0.0.1:{exporter_port}/metrics" in text
        assert "Grafana: nothing answers at" in text
        if shutil.which("prometheus") or os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            assert re.search(r"Prometheus: http://127\.0\.0\.1:\d+ ", text), text
        token = re.search(r"operator token for register/remove: (\S+)", text)
        assert token and len(token.group(1)) >= 16

        async with aiohttp.ClientSession() as http:

            async def fleet_seen() -> bool:
                async with http.get(f"http://127.0.0.1:{exporter_port}/metrics") as resp:
                    metrics = await resp.text() if resp.status == 200 else ""
                async with http.get(f"http://127.0.0.1:{api_port}/api/v1/devices") as resp:
                    listing = await resp.json() if resp.status == 200 else {}
                up = re.findall(r"^pluto_device_up\{[^}]*\} 1(?:\.0)?$", metrics, re.MULTILINE)
                online = [d for d in listing.get("items", []) if d["status"] == "online"]
                return len(up) == 4 and len(online) == 4

            deadline = asyncio.get_running_loop().time() + 30
            while not await fleet_seen():
                assert asyncio.get_running_loop().time() < deadline, "exporter or api never saw the fleet"
                await asyncio.sleep(0.2)

        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            rest = (await process.stdout.read()).decode()
        assert await process.wait() == 0, rest
        assert "stopped" in rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
