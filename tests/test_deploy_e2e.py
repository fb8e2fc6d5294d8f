"""End to end through deploy/compose.development.yaml, where Docker exists: build the
image, bring up NATS, Prometheus, Grafana, the four services and the simulator from the
compose file, register a simulated device, and see its public dashboard answer through
the gateway's /grafana/ proxy, with data, anonymously; then `pluto doctor` run in the
dashboards container passes. Skipped, with the reason, without a Docker engine and the
compose plugin. Uses the network and ports of the development file (172.30.10.0/24):
stop a running development stack first.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import nats
import pytest

from shared import subjects
from shared.models import DashboardState, DeviceAdded
from shared.registry import publish_added
from tests.deploy_helpers import DEPLOY, free_port
from tests.grafana_double.harness import eventually

DEVICE = "e2erig0001"


def docker_compose_unavailable() -> str | None:
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:
        return f"no Docker engine answers ({type(exc).__name__}: {exc})"
    binary = shutil.which("docker")
    if binary is None:
        return "no docker command line"
    version = subprocess.run([binary, "compose", "version"], capture_output=True, text=True)
    if version.returncode != 0:
        return f"the docker compose plugin is missing: {version.stderr.strip()}"
    return None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    reason = docker_compose_unavailable()
    if reason:
        pytest.skip(reason)
    from testcontainers.compose import DockerCompose

    ports = {name: free_port() for name in ("NATS", "PROMETHEUS", "GRAFANA", "API", "SIMULATOR")}
    env_file = tmp_path_factory.mktemp("compose") / "e2e.env"
    lines = [
        f"GF_SECURITY_ADMIN_PASSWORD={secrets.token_urlsafe(16)}",
        f"PLUTO_DASHBOARDS_TOKEN_SECRET={secrets.token_urlsafe(24)}",
        f"PLUTO_API_OPERATOR_TOKEN={secrets.token_urlsafe(24)}",
        "PLUTO_POLLER_INTERVAL_S=1",
        "PLUTO_SIM_DEVICES=2",
        f"PLUTO_PUBLIC_URL=http://127.0.0.1:{ports['API']}",
        *(f"PLUTO_DEV_{name}_PORT={port}" for name, port in ports.items()),
    ]
    env_file.write_text("\n".join(lines) + "\n")
    compose = DockerCompose(
        DEPLOY,
        compose_file_name="compose.development.yaml",
        build=True,
        wait=True,
        env_file=str(env_file),
        profiles=["simulator"],
    )
    compose.start()
    try:
        yield {"compose": compose, "ports": ports}
    finally:
        compose.stop(down=True)


async def published_state(nats_url: str, key: str) -> DashboardState | None:
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        try:
            msg = await js.get_last_msg("PLUTO_DASHBOARDS", subjects.dashboard_event(key, "published"))
        except Exception:
            return None
        return DashboardState.model_validate_json(msg.data or b"")
    finally:
        await client.close()


async def panel_has_data(http: aiohttp.ClientSession, base: str, token: str) -> bool:
    async with http.get(f"{base}/grafana/api/public/dashboards/{token}") as resp:
        if resp.status != 200:
            return False
        dashboard = (await resp.json())["dashboard"]
    now_ms = int(time.time() * 1000)
    window = {"from": str(now_ms - 600_000), "to": str(now_ms), "timezone": "browser"}
    body = {"intervalMs": 5000, "maxDataPoints": 100, "timeRange": window}
    for panel in dashboard["panels"]:
        async with http.post(
            f"{base}/grafana/api/public/dashboards/{token}/panels/{panel['id']}/query", json=body
        ) as resp:
            if resp.status != 200:
                continue
            results = (await resp.json()).get("results", {})
        for result in results.values():
            for frame in result.get("frames", []):
                values = frame.get("data", {}).get("values", [])
                if len(values) > 1 and values[1]:
                    return True
    return False


@pytest.mark.timeout(1200)
async def test_a_device_public_dashboard_answers_with_data(stack: dict[str, Any]) -> None:
    ports = stack["ports"]
    nats_url = f"nats://127.0.0.1:{ports['NATS']}"
    client = await nats.connect(nats_url)
    try:
        device = DeviceAdded(
            id=DEVICE, url="http://simulator:8099/d/mockaxe1", hostname="e2e-rig", at=time.time()
        )
        await publish_added(client.jetstream(), device)
    finally:
        await client.close()

    state = await eventually(
        lambda: published_state(nats_url, DEVICE), timeout=180, what="published dashboard"
    )
    assert state.access_token and state.public_path
    base = f"http://127.0.0.1:{ports['API']}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.get(f"{base}{state.public_path}?orgId=1&theme=dark&refresh=5s") as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers.get("X-Frame-Options", "").lower() != "deny"  # embeddable
        await eventually(lambda: panel_has_data(http, base, state.access_token or ""), timeout=180,
                         what="a panel of the public dashboard with data")  # fmt: skip

    compose = stack["compose"]
    stdout, stderr, code = await asyncio.to_thread(
        compose.exec_in_container, ["python", "-m", "pluto.doctor"], service_name="dashboards"
    )
    assert code == 0, stdout + stderr
    assert "FAIL" not in stdout


def test_the_e2e_env_names_are_the_compose_files() -> None:
    """Runs everywhere: the variables this test sets are the ones the compose file reads."""
    text = (DEPLOY / "compose.development.yaml").read_text()
    for name in ("NATS", "PROMETHEUS", "GRAFANA", "API", "SIMULATOR"):
        assert f"${{PLUTO_DEV_{name}_PORT:-" in text
    for name in ("GF_SECURITY_ADMIN_PASSWORD", "PLUTO_DASHBOARDS_TOKEN_SECRET", "PLUTO_API_OPERATOR_TOKEN",
                 "PLUTO_POLLER_INTERVAL_S", "PLUTO_SIM_DEVICES", "PLUTO_PUBLIC_URL"):  # fmt: skip
        assert f"${{{name}:" in text, name
