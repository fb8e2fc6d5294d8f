"""One lifecycle scenario, run against the Grafana double and against a real Grafana.

The real one is a `grafana/grafana` container started through testcontainers
(auth proxy, sub-path, public dashboards, file provisioning of a host folder),
skipped with the reason when no Docker engine answers. The scenario uses only
Grafana's HTTP API and the anonymous public URL, so both targets run the very
same assertions.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from services.dashboards.grafana import GrafanaClient
from services.dashboards.tokens import access_token
from shared.settings import BusSettings
from shared.subjects import OVERVIEW_KEY
from tests.grafana_double import GrafanaDouble
from tests.grafana_double.harness import SECRET, Fleet, Service, eventually, settings_for

GRAFANA_IMAGE = os.environ.get("PLUTO_TEST_GRAFANA_IMAGE", "grafana/grafana:11.3.0")
CONTAINER_SCAN = 2  # the provider's updateIntervalSeconds in the container


@dataclass
class Target:
    url: str  # base URL with the sub-path
    folder: Path  # the provisioned folder, as this process sees it


def docker_unavailable() -> str | None:
    """None when a Docker engine answers, else why not."""
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:
        return f"no Docker engine to run {GRAFANA_IMAGE} ({type(exc).__name__}: {exc})"
    return None


def write_provisioning(root: Path) -> Path:
    provisioning = root / "provisioning"
    (provisioning / "dashboards").mkdir(parents=True)
    (provisioning / "datasources").mkdir(parents=True)
    (provisioning / "dashboards" / "pluto.yaml").write_text(
        "apiVersion: 1\nproviders:\n"
        "  - name: pluto\n    orgId: 1\n    type: file\n    folder: Pluto\n"
        "    disableDeletion: false\n    allowUiUpdates: false\n"
        f"    updateIntervalSeconds: {CONTAINER_SCAN}\n"
        "    options:\n      path: /var/lib/grafana/dashboards\n"
    )
    (provisioning / "datasources" / "prometheus.yaml").write_text(
        "apiVersion: 1\ndatasources:\n"
        "  - name: Prometheus\n    uid: pluto-prometheus\n    type: prometheus\n"
        "    access: proxy\n    url: http://127.0.0.1:9090\n    jsonData:\n      httpMethod: POST\n"
    )
    return provisioning


@pytest.fixture
def grafana_container(tmp_path: Path) -> Iterator[Target]:
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)
    from testcontainers.core.container import DockerContainer

    folder = tmp_path / "dashboards"
    folder.mkdir()
    folder.chmod(0o777)  # Grafana runs as uid 472 in the image
    provisioning = write_provisioning(tmp_path)
    container = (
        DockerContainer(GRAFANA_IMAGE)
        .with_exposed_ports(3000)
        .with_env("GF_SECURITY_ADMIN_PASSWORD", "test-only-password")
        .with_env("GF_SERVER_ROOT_URL", "http://localhost:3000/grafana/")
        .with_env("GF_SERVER_SERVE_FROM_SUB_PATH", "true")
        .with_env("GF_AUTH_PROXY_ENABLED", "true")
        .with_env("GF_AUTH_PROXY_HEADER_NAME", "X-WEBAUTH-USER")
        .with_env("GF_AUTH_PROXY_HEADER_PROPERTY", "username")
        .with_env("GF_AUTH_PROXY_AUTO_SIGN_UP", "true")
        .with_env("GF_AUTH_PROXY_WHITELIST", "")  # the test host reaches it through Docker's NAT
        .with_env("GF_FEATURE_TOGGLES_ENABLE", "publicDashboards")
        .with_env("GF_PUBLIC_DASHBOARDS_ENABLED", "true")
        .with_env("GF_SECURITY_ALLOW_EMBEDDING", "true")
        .with_volume_mapping(str(folder), "/var/lib/grafana/dashboards", "rw")
        .with_volume_mapping(str(provisioning), "/etc/grafana/provisioning", "ro")
    )
    container.start()
    try:
        host, port = container.get_container_host_ip(), container.get_exposed_port(3000)
        yield Target(f"http://{host}:{port}/grafana", folder)
    finally:
        container.stop()


@pytest.fixture
async def grafana_double(tmp_path: Path) -> AsyncIterator[Target]:
    double = GrafanaDouble(tmp_path / "dashboards", scan_interval=0.2)
    await double.start()
    yield Target(double.url, double.folder)
    await double.stop()


@pytest.fixture(params=["double", pytest.param("container", marks=pytest.mark.grafana_container)])
def target(request: pytest.FixtureRequest) -> Target:
    name = "grafana_double" if request.param == "double" else "grafana_container"
    return request.getfixturevalue(name)


async def anonymous(url: str, token: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/public/dashboards/{token}") as response:
            text = await response.text()
            return response.status, json.loads(text) if text.startswith("{") else {}


async def test_lifecycle(target: Target, bus_settings: BusSettings) -> None:
    async def healthy() -> bool:
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(target.url + "/api/health") as response:
                    return response.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(healthy, timeout=180, what="Grafana healthy")
    fleet = await Fleet().start(bus_settings.nats_url)
    settings = settings_for(bus_settings.nats_url, target.url, target.folder, load_timeout=60.0)
    service = await Service(settings).start()
    grafana = GrafanaClient(target.url, "admin")
    token = access_token(SecretStr(SECRET), "pluto-d-lifecycle")

    async def shows(title: str) -> bool:
        status, body = await anonymous(target.url, token)
        return status == 200 and body["dashboard"]["title"] == title

    try:
        await eventually(lambda: fleet.published(OVERVIEW_KEY), timeout=90, what="overview")
        await fleet.add("lifecycle", "life-miner")
        state = await eventually(lambda: fleet.published("lifecycle"), timeout=90, what="published")
        assert state.public_path == f"/grafana/public-dashboards/{token}"
        assert (target.folder / "pluto-d-lifecycle.json").exists()
        assert await shows("life-miner")
        public = await grafana.get_public("pluto-d-lifecycle")
        assert public is not None and public.isEnabled and public.accessToken == token

        await fleet.add("lifecycle", "life-renamed")
        await eventually(lambda: shows("life-renamed"), timeout=90, what="update followed")
        assert fleet.published("lifecycle").public_path == state.public_path

        await fleet.remove("lifecycle")
        await eventually(lambda: fleet.unpublished("lifecycle"), timeout=90, what="unpublished")
        assert not (target.folder / "pluto-d-lifecycle.json").exists()
        assert (await anonymous(target.url, token))[0] == 404
        await eventually(lambda: gone(grafana, "pluto-d-lifecycle"), timeout=90, what="deleted")

        await fleet.add("lifecycle", "life-miner")
        again = await eventually(lambda: fleet.published("lifecycle"), timeout=90, what="re-added")
        assert again.public_path == state.public_path
        await eventually(lambda: shows("life-miner"), timeout=90, what="served again")
    finally:
        await grafana.close()
        await service.stop()
        await fleet.stop()


async def gone(grafana: GrafanaClient, uid: str) -> bool:
    return await grafana.get_dashboard(uid) is None
