"""End to end: the gateway with the real poller, exporter and dashboards service, the
Grafana double and simulated devices, all over one real nats-server.

Registration through the API reaches the poller (readings), the dashboards service
(a published public dashboard) and the exporter; the gateway's overview equals the
exporter's; removal through the API undoes all of it; a restarted gateway answers
the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.settings import BusSettings
from shared.subjects import OVERVIEW_KEY
from tests.api_helpers import AUTH, Client
from tests.api_stack import Stack
from tests.bus_helpers import wait_for
from tests.grafana_double.harness import eventually

PINNED = [  # served exactly as given, so both totals are computed from the same values
    {"hashRate": 1000.0, "power": 15.0},
    {"hashRate": 2500.5, "power": 30.25},
    {"hashRate": 0.0, "power": 2.0},
]


@pytest.fixture
async def stack(bus_settings: BusSettings, tmp_path: Path) -> AsyncIterator[Stack]:
    running = await Stack(bus_settings.nats_url, tmp_path, devices=3).start()
    yield running
    await running.stop()


async def _exporter_overview(stack: Stack) -> dict[str, object]:
    assert stack.exporter is not None
    async with aiohttp.ClientSession() as http, http.get(stack.exporter.metrics_url) as response:
        text = await response.text()
    values: dict[str, object] = {"firmware": {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "firmware_version_distribution":
                values["firmware"][sample.labels["version"]] = sample.value  # type: ignore[index]
            elif not sample.labels and sample.name in (
                "total_hardware",
                "hardware_online",
                "hardware_offline",
                "total_hashrate",
                "average_hashrate",
                "total_power_watts",
                "total_efficiency",
            ):
                values[sample.name] = sample.value
    return values


def _published(stack: Stack, key: str) -> bool:
    state = stack.api.views.dashboard(key)
    return state is not None and state.kind == "published"


async def test_registration_reaches_every_service_and_removal_undoes_it(stack: Stack) -> None:
    for i, fields in enumerate(PINNED):
        stack.sim.fleet.set_override(f"mockaxe{i + 1}", fields)
    client = Client(stack.api.url)
    try:
        ids = []
        for url in stack.sim.device_urls:
            created = await client.post(
                "/api/v1/devices", json={"url": url, "labels": {"site": "lab"}}, headers=AUTH
            )
            assert created.status == 201, created.body
            ids.append(created.json["id"])

        # The poller polls them: readings reach the gateway, the devices are online.
        await wait_for(
            lambda: all(
                (t := stack.api.views.tracks.get(i)) is not None and t.last_ok_at is not None for i in ids
            ),
            what="a successful reading of every registered device",
        )
        listing = (await client.get("/api/v1/devices", params={"status": "online"})).json
        assert sorted(d["id"] for d in listing["items"]) == sorted(ids)
        assert [d["hashrate_ghs"] for d in listing["items"]] == [1000.0, 2500.5, 0.0]  # mockaxe1..3

        # The dashboards service publishes each device's dashboard and the overview.
        await wait_for(
            lambda: all(_published(stack, key) for key in [OVERVIEW_KEY, *ids]),
            timeout=30,
            what="every dashboard published",
        )
        reference = (await client.get("/dashboards")).json
        assert [e["uid"] for e in reference] == ["pluto-overview", *(f"pluto-d-{i}" for i in ids)]
        assert [e["name"] for e in reference[1:]] == ["mockaxe1", "mockaxe2", "mockaxe3"]
        assert stack.grafana is not None
        for entry in reference:
            token = entry["grafanaData"]["accessToken"]
            assert entry["publicUrl"] == f"/grafana/public-dashboards/{token}?orgId=1"
            public = stack.grafana.db.public_by_token(token)
            assert public is not None and public.is_enabled
            assert public.dashboard_uid == entry["uid"] == entry["grafanaData"]["dashboardUid"]
            # Through the gateway's proxy, anonymously, as an iframe would load it.
            viewed = await client.get(f"/grafana/api/public/dashboards/{token}")
            assert viewed.status == 200 and viewed.json["dashboard"]["uid"] == entry["uid"]
        link = (await client.get(f"/api/v1/devices/{ids[0]}/dashboard", params={"theme": "dark"})).json
        token = reference[1]["grafanaData"]["accessToken"]
        assert link["url"] == f"/grafana/public-dashboards/{token}?orgId=1&theme=dark&refresh=5s"

        # The overview: the gateway's totals are the exporter's.
        gateway_totals = (await client.get("/api/v1/overview")).json
        exporter_totals = await _exporter_overview(stack)
        assert gateway_totals["total_hardware"] == exporter_totals["total_hardware"] == 3
        assert gateway_totals["hardware_online"] == exporter_totals["hardware_online"] == 3
        assert gateway_totals["hardware_offline"] == exporter_totals["hardware_offline"] == 0
        assert (
            gateway_totals["total_hashrate_ghs"] == pytest.approx(exporter_totals["total_hashrate"]) == 3500.5
        )
        assert gateway_totals["average_hashrate_ghs"] == pytest.approx(exporter_totals["average_hashrate"])
        assert gateway_totals["total_power_watts"] == pytest.approx(exporter_totals["total_power_watts"])
        assert gateway_totals["total_efficiency_jth"] == pytest.approx(exporter_totals["total_efficiency"])
        assert gateway_totals["firmware_versions"] == exporter_totals["firmware"]

        # Removal through the API: the poller stops, the dashboard is unpublished, the exporter forgets it.
        gone = ids[1]
        polled = stack.sim.fleet.request_count("mockaxe2")
        assert (await client.delete(f"/api/v1/devices/{gone}", headers=AUTH)).status == 204
        await wait_for(
            lambda: (s := stack.api.views.dashboard(gone)) is not None and s.kind == "unpublished",
            timeout=30,
            what="the removed device's dashboard unpublished",
        )
        assert stack.grafana.db.public_by_token(token) is not None  # the others stay
        assert all(p.dashboard_uid != f"pluto-d-{gone}" for p in stack.grafana.db.publics.values())
        assert [e["uid"] for e in (await client.get("/dashboards")).json] == [
            "pluto-overview",
            f"pluto-d-{ids[0]}",
            f"pluto-d-{ids[2]}",
        ]

        async def exporter_forgot_it() -> bool:
            return (await _exporter_overview(stack))["total_hardware"] == 2

        await eventually(exporter_forgot_it, what="the exporter to drop the removed device")
        after_removal = stack.sim.fleet.request_count("mockaxe2")
        assert after_removal <= polled + 1  # at most the request in flight
        await wait_for(lambda: stack.sim.fleet.request_count("mockaxe1") > 3 + polled, what="polling goes on")
        assert stack.sim.fleet.request_count("mockaxe2") == after_removal
        assert (await client.get(f"/api/v1/devices/{gone}")).status == 404
        overview = (await client.get("/api/v1/overview")).json
        assert overview["total_hardware"] == 2 and overview["total_hashrate_ghs"] == 1000.0

        # A restarted gateway answers the same from the streams alone.
        before = {p: (await client.get(p)).json for p in ("/dashboards", "/api/v1/dashboards")}
        await client.close()
        await stack.restart_gateway()
        client = Client(stack.api.url)
        assert {p: (await client.get(p)).json for p in before} == before
        devices = (await client.get("/api/v1/devices")).json["items"]
        assert [d["id"] for d in devices] == [ids[0], ids[2]]
        assert all(d["status"] == "online" for d in devices)
    finally:
        await client.close()
