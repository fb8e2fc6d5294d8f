"""The development compose file's configuration, run without Docker: every Pluto service
as its own process with exactly the environment compose.development.yaml gives its
container (host names and ports mapped to this machine), a real nats-server, a real
Prometheus running deploy/prometheus's config and rules, the simulator, and the Grafana
double provisioning the folder the dashboards service writes. A simulated device is
registered; its readings must reach Prometheus, its dashboard must be published and
readable anonymously through the gateway's /grafana/ proxy, every service's health
endpoint (the compose healthcheck's) must answer and say ready, and `pluto doctor`,
with the dashboards container's environment, must pass every check.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
import yaml

from pluto.doctor import DoctorConfig, run_doctor
from shared import subjects
from shared.models import DashboardState, DeviceAdded
from shared.registry import publish_added
from tests.deploy_grafana import GrafanaWithDatasource
from tests.deploy_helpers import (
    DEPLOY,
    free_port,
    interpolate,
    load_compose,
    prometheus_config,
    running_prometheus,
    stop,
    wait_http,
)
from tests.grafana_double.harness import eventually

DEVICE = "stackrig0001"


def container_env(service: str, hosts: dict[str, str]) -> dict[str, str]:
    """The service's compose environment, interpolated, with container addresses mapped."""
    env = {}
    for key, value in load_compose("development")["services"][service]["environment"].items():
        text = interpolate(str(value))
        for container_address, local in hosts.items():
            text = text.replace(container_address, local)
        env[key] = text
    return env


def start(module: str, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env={**os.environ, **env, "PLUTO_LOG_FORMAT": "text"},
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )


async def published(nats_url: str, key: str) -> DashboardState | None:
    client = await nats.connect(nats_url)
    try:
        try:
            msg = await client.jetstream().get_last_msg(
                "PLUTO_DASHBOARDS", subjects.dashboard_event(key, "published")
            )
        except Exception:
            return None
        return DashboardState.model_validate_json(msg.data or b"")
    finally:
        await client.close()


async def series(prometheus: str, query: str) -> list[Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(prometheus + "/api/v1/query", params={"query": query}) as resp,
    ):
        return (await resp.json())["data"]["result"]


async def test_the_development_configuration_runs(nats_server: Any, tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("poller", "exporter", "dashboards", "api", "simulator")}
    tmp = tmp_path
    folder = tmp / "dashboards"
    folder.mkdir()
    grafana = GrafanaWithDatasource(folder, scan_interval=0.2)
    await grafana.start()
    config = prometheus_config()
    assert config is not None
    scrape = yaml.safe_load(config.read_text())
    scrape["global"] = {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"}
    for job in scrape["scrape_configs"]:
        job.pop("scrape_interval", None)
        for static in job["static_configs"]:
            static["targets"] = [
                t.replace("exporter:9110", f"127.0.0.1:{ports['exporter']}") for t in static["targets"]
            ]
    prometheus_dir = tmp / "prometheus"
    (prometheus_dir / "rules").mkdir(parents=True)
    for rule in (DEPLOY / "prometheus" / "rules").glob("*.y*ml"):
        (prometheus_dir / "rules" / rule.name).write_text(rule.read_text())
    with ExitStack() as processes, running_prometheus(yaml.safe_dump(scrape), prometheus_dir) as prometheus:
        hosts = {
            "nats://nats:4222": nats_server.url,
            "http://grafana:3000/grafana": grafana.url,
            "http://prometheus:9090": prometheus,
            "/var/lib/grafana/dashboards": str(folder),
            "0.0.0.0": "127.0.0.1",
        }
        envs = {name: container_env(name, hosts) for name in ("poller", "exporter", "dashboards", "api")}
        envs["exporter"]["PLUTO_EXPORTER_PORT"] = str(ports["exporter"])
        envs["api"]["PLUTO_API_PORT"] = str(ports["api"])
        envs["poller"]["PLUTO_POLLER_HEALTH_PORT"] = str(ports["poller"])
        envs["dashboards"]["PLUTO_DASHBOARDS_HEALTH_PORT"] = str(ports["dashboards"])
        envs["poller"]["PLUTO_POLLER_INTERVAL_S"] = "1"
        simulator = start("services.simulator", {}, tmp / "simulator.log", "--devices", "1", "--port",
                          str(ports["simulator"]))  # fmt: skip
        processes.callback(stop, simulator)
        for name, env in envs.items():
            process = start(f"services.{name}", env, tmp / f"{name}.log")
            processes.callback(stop, process)
        api = f"http://127.0.0.1:{ports['api']}"
        wait_http(f"http://127.0.0.1:{ports['simulator']}/control/devices", timeout=30)
        wait_http(api + "/healthz", timeout=30)
        # /readyz: 200 once each is connected and caught up (wait_http wants a 200)
        for name in ("poller", "exporter", "dashboards", "api"):
            wait_http(f"http://127.0.0.1:{ports[name]}/readyz", timeout=30)

        client = await nats.connect(nats_server.url)
        try:
            device = DeviceAdded(
                id=DEVICE,
                url=f"http://127.0.0.1:{ports['simulator']}/d/mockaxe1",
                hostname="rig",
                at=time.time(),
            )
            await publish_added(client.jetstream(), device)
        finally:
            await client.close()

        state = await eventually(
            lambda: published(nats_server.url, DEVICE), timeout=30, what="dashboard published"
        )
        assert state.access_token
        await eventually(
            lambda: series(prometheus, f'pluto_hashrate_ghs{{device="{DEVICE}"}}'),
            timeout=30,
            what="the device's hashrate in Prometheus",
        )
        # Anonymous, through the gateway, as an iframe would.
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{api}/grafana/api/public/dashboards/{state.access_token}") as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["dashboard"]["uid"] == state.dashboard_uid
        # The doctor, configured as in the dashboards container.
        with pytest.MonkeyPatch.context() as mp:
            for key, value in envs["dashboards"].items():
                mp.setenv(key, value)
            config_ = DoctorConfig.from_env()
        assert config_.grafana_url == grafana.url and config_.prometheus_url == prometheus
        report = await eventually(lambda: _passing(config_), timeout=30, what="pluto doctor passing")
        assert {f.check for f in report.findings} >= {"exporter-target", "public-view", "publish-permission"}
    await grafana.stop()


async def _passing(config: DoctorConfig) -> Any:
    report = await run_doctor(config)
    return report if not report.failed and not [f for f in report.findings if f.status == "WARN"] else None
