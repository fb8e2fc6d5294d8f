"""The gateway's device routes over a real nats-server: reads from the views, writes as events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from services.api import fleet
from services.simulator.server import RunningSimulator, start_simulator
from shared.ids import device_id_from_mac, device_id_from_url
from shared.registry import read_registry
from shared.settings import BusSettings
from tests.api_helpers import (  # noqa: F401 - the fixtures are used by name
    AUTH,
    BusWriter,
    Client,
    Gateway,
    api_settings,
    bus_fixture,
    client_fixture,
    gateway_fixture,
    reading,
)
from tests.bus_helpers import wait_for


async def _fleet(bus: BusWriter, gateway: Gateway) -> None:
    """Five devices: two online, one whose newest poll failed (still online), one stale, one silent."""
    now = time.time()
    await bus.add("dev-a", hostname="alpha", labels={"rack": "r1"})
    await bus.add("dev-b", hostname="bravo")
    await bus.add("dev-c", hostname="charlie")
    await bus.add("dev-d", hostname="delta", labels={"rack": "r2"})
    await bus.add("dev-e")
    await bus.reading(
        reading(
            "dev-a",
            hostname="alpha",
            hashrate_ghs=1000.0,
            power_watts=15.0,
            asic_temp_celsius=55.0,
            firmware_version="v2.4.0",
        )
    )
    await bus.reading(
        reading("dev-b", hostname="bravo", hashrate_ghs=0.0, power_watts=0.0, firmware_version="v2.4.0")
    )
    await bus.reading(reading("dev-c", hostname="charlie", hashrate_ghs=500.0, power_watts=10.0, at=now - 2))
    await bus.reading(reading("dev-c", ok=False, at=now))
    await bus.reading(reading("dev-d", hostname="delta", hashrate_ghs=700.0, power_watts=12.0, at=now - 3600))
    await wait_for(
        lambda: (
            len(gateway.views.tracks) == 4
            and len(gateway.views.devices) == 5
            and gateway.views.tracks["dev-c"].last_error is not None
        ),
        what="views",
    )


async def test_health_and_readiness(gateway: Gateway, client: Client) -> None:
    health = await client.get("/healthz")
    assert health.status == 200 and health.json == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert ready.json["ready"] is True and ready.json["nats_connected"] is True
    assert ready.json["caught_up"] == {"devices": True, "readings": True, "dashboards": True}


async def test_list_filters_and_pages(bus: BusWriter, gateway: Gateway, client: Client) -> None:
    await _fleet(bus, gateway)
    everything = (await client.get("/api/v1/devices")).json
    assert everything["total"] == 5 and everything["limit"] == 100 and everything["offset"] == 0
    by_id = {d["id"]: d for d in everything["items"]}
    assert [d["id"] for d in everything["items"]] == ["dev-a", "dev-b", "dev-c", "dev-d", "dev-e"]
    assert by_id["dev-a"]["status"] == "online" and by_id["dev-a"]["hashrate_ghs"] == 1000.0
    assert (
        by_id["dev-a"]["efficiency_jth"] == pytest.approx(15.0) and by_id["dev-a"]["asic_temp_celsius"] == 55
    )
    assert by_id["dev-b"]["status"] == "online" and by_id["dev-b"]["hashrate_ghs"] == 0.0  # zero is a value
    assert by_id["dev-b"]["power_watts"] == 0.0 and by_id["dev-b"]["efficiency_jth"] is None
    # One failed poll: still online (the exporter's rule), flagged as failing, with the error.
    assert by_id["dev-c"]["status"] == "online" and by_id["dev-c"]["failing"] is True
    assert by_id["dev-c"]["last_error"]["error"] == "timeout" and by_id["dev-c"]["hashrate_ghs"] == 500.0
    # A stale device shows no values: a stalled miner must not keep its last hashrate.
    assert by_id["dev-d"]["status"] == "offline" and by_id["dev-d"]["hashrate_ghs"] is None
    assert by_id["dev-e"]["status"] == "offline" and by_id["dev-e"]["last_seen_at"] is None
    assert by_id["dev-e"]["hostname"] is None and by_id["dev-a"]["labels"] == {"rack": "r1"}

    online = (await client.get("/api/v1/devices", params={"status": "online"})).json
    assert [d["id"] for d in online["items"]] == ["dev-a", "dev-b", "dev-c"] and online["total"] == 3
    offline = (await client.get("/api/v1/devices", params={"status": "offline"})).json
    assert [d["id"] for d in offline["items"]] == ["dev-d", "dev-e"]
    text = (await client.get("/api/v1/devices", params={"q": "R2"})).json  # a label value, any case
    assert [d["id"] for d in text["items"]] == ["dev-d"]
    text = (await client.get("/api/v1/devices", params={"q": "harl"})).json  # the hostname
    assert [d["id"] for d in text["items"]] == ["dev-c"]
    page = (await client.get("/api/v1/devices", params={"limit": "2", "offset": "2"})).json
    assert [d["id"] for d in page["items"]] == ["dev-c", "dev-d"] and page["total"] == 5
    beyond = (await client.get("/api/v1/devices", params={"offset": "50"})).json
    assert beyond["items"] == [] and beyond["total"] == 5

    for params in (
        {"status": "sleeping"},
        {"limit": "0"},
        {"limit": "abc"},
        {"offset": "-1"},
        {"q": "x" * 101},
    ):
        bad = await client.get("/api/v1/devices", params=params)
        assert bad.status == 422, params
        assert bad.content_type == "application/problem+json"
        assert bad.json["code"] == "validation_error" and bad.json["errors"][0]["location"].startswith(
            "query."
        )


async def test_one_device(bus: BusWriter, gateway: Gateway, client: Client) -> None:
    await _fleet(bus, gateway)
    device = await client.get("/api/v1/devices/dev-c")
    assert device.status == 200
    body = device.json
    assert (
        body["id"] == "dev-c"
        and body["url"] == "http://dev-c.local/"
        and body["registered_hostname"] == "charlie"
    )
    assert body["reading"]["ok"] is False and body["reading"]["error"] == "timeout"
    assert body["last_ok_reading"]["hashrate_ghs"] == 500.0
    assert body["last_error"]["message"] == "no complete answer within 3s"
    assert body["dashboard"] == {
        "key": "dev-c",
        "device_id": "dev-c",
        "status": "pending",
        "title": None,
        "dashboard_uid": None,
        "url": None,
        "theme": "light",
        "updated_at": None,
    }
    silent = (await client.get("/api/v1/devices/dev-e")).json
    assert silent["reading"] is None and silent["status"] == "offline" and silent["last_error"] is None

    missing = await client.get("/api/v1/devices/nosuchdevice")
    assert missing.status == 404 and missing.json["code"] == "device_not_found"
    for bad in ("Bad-Id", "-x", "a" * 33, "a%20b"):
        answer = await client.get(f"/api/v1/devices/{bad}")
        assert answer.status == 422 and answer.json["errors"][0]["location"] == "path.device_id", bad


async def test_overview_totals(bus: BusWriter, gateway: Gateway, client: Client) -> None:
    await _fleet(bus, gateway)
    totals = (await client.get("/api/v1/overview")).json
    assert totals["total_hardware"] == 5
    assert totals["hardware_online"] == 3 and totals["hardware_offline"] == 2
    assert totals["total_hashrate_ghs"] == 1500.0
    assert totals["average_hashrate_ghs"] == 500.0
    assert totals["total_power_watts"] == 25.0
    assert totals["total_efficiency_jth"] == pytest.approx(25.0 / 1.5)
    assert totals["firmware_versions"] == {"v2.4.0": 2, "unknown": 3}


async def test_a_device_goes_offline_when_its_readings_stop(
    bus_settings: BusSettings, bus: BusWriter
) -> None:
    gw = await Gateway(api_settings(bus_settings.nats_url, offline_after=0.5)).start()
    client = Client(gw.url)
    try:
        await bus.add("dev-a")
        await bus.reading(reading("dev-a", hashrate_ghs=1.0))

        await wait_for(lambda: "dev-a" in gw.views.tracks and "dev-a" in gw.views.devices, what="views")
        assert (await client.get("/api/v1/devices/dev-a")).json["status"] == "online"
        await wait_for(
            lambda: not fleet.is_online(gw.views.tracks.get("dev-a"), time.time(), 0.5),
            what="the reading to age past offline_after",
        )
        silent = (await client.get("/api/v1/devices/dev-a")).json
        assert silent["status"] == "offline" and silent["hashrate_ghs"] is None
        assert silent["last_ok_reading"]["hashrate_ghs"] == 1.0  # history stays in the detail
    finally:
        await client.close()
        await gw.stop()


async def test_register_needs_the_operator_token(bus_settings: BusSettings, client: Client) -> None:
    body = {"url": "http://192.0.2.10/", "id": "dev-x"}
    missing = await client.post("/api/v1/devices", json=body)
    assert missing.status == 401 and missing.json["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await client.post("/api/v1/devices", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    removal = await client.delete("/api/v1/devices/dev-x", headers={"Authorization": "Basic abc"})
    assert removal.status == 401

    closed = await Gateway(api_settings(bus_settings.nats_url, operator_token=None)).start()
    other = Client(closed.url)
    try:
        refused = await other.post("/api/v1/devices", json=body, headers=AUTH)
        assert refused.status == 403 and refused.json["code"] == "mutations_disabled"
        assert "PLUTO_API_OPERATOR_TOKEN" in refused.json["detail"]
        assert (await other.delete("/api/v1/devices/dev-x", headers=AUTH)).status == 403
    finally:
        await other.close()
        await closed.stop()


async def test_register_rejects_bad_input(client: Client) -> None:
    cases = [
        {"url": "ftp://192.0.2.1/"},
        {"url": "not a url"},
        {"url": "http://user:pw@192.0.2.1/"},
        {"url": "http://192.0.2.1/?x=1"},
        {"url": "http://192.0.2.1/", "id": "Not_Valid!"},
        {"url": "http://192.0.2.1/", "id": "x" * 40},
        {"url": "http://192.0.2.1/", "labels": {"1bad": "v"}},
        {"url": "http://192.0.2.1/", "labels": {"ok": "v" * 300}},
        {"url": "http://192.0.2.1/", "hostname": "bad\nname"},
        {"url": "http://192.0.2.1/", "surprise": True},
        {"id": "dev-a"},
        {"url": 12},
    ]
    for body in cases:
        answer = await client.post("/api/v1/devices", json=body, headers=AUTH)
        assert answer.status == 422, body
        assert answer.content_type == "application/problem+json"
        assert answer.json["code"] == "validation_error" and answer.json["errors"], body
        assert "pw" not in answer.body.decode()  # values are never echoed back
    not_json = await client.post("/api/v1/devices", data=b"{nope", headers=AUTH)
    assert not_json.status == 400 and not_json.json["code"] == "invalid_json"
    empty = await client.post("/api/v1/devices", data=b"", headers=AUTH)
    assert empty.status == 400
    array = await client.post("/api/v1/devices", json=[1, 2], headers=AUTH)
    assert array.status == 422
    huge = await client.post("/api/v1/devices", data=b"{" + b" " * (70 * 1024) + b"}", headers=AUTH)
    assert huge.status == 413 and huge.json["code"] == "body_too_large"


async def test_register_and_remove(
    bus_settings: BusSettings, bus: BusWriter, gateway: Gateway, client: Client
) -> None:
    body = {"url": "http://192.0.2.10", "id": "dev-x", "hostname": "xray", "labels": {"site": "lab"}}
    created = await client.post("/api/v1/devices", json=body, headers=AUTH)
    assert created.status == 201, created.body
    assert created.headers["Location"] == "/api/v1/devices/dev-x"
    assert (
        created.json["id"] == "dev-x"
        and created.json["hostname"] == "xray"
        and created.json["status"] == "offline"
    )
    registry = await read_registry(bus.js)
    assert registry["dev-x"].hostname == "xray" and registry["dev-x"].labels == {"site": "lab"}
    # Read-your-writes: the list shows it at once.
    listed = (await client.get("/api/v1/devices")).json
    assert [d["id"] for d in listed["items"]] == ["dev-x"]

    again = await client.post("/api/v1/devices", json={**body, "labels": {"site": "home"}}, headers=AUTH)
    assert again.status == 200 and again.json["labels"] == {"site": "home"}
    clash = await client.post("/api/v1/devices", json={**body, "id": "dev-y"}, headers=AUTH)
    assert clash.status == 409 and clash.json["code"] == "duplicate_url" and "dev-x" in clash.json["detail"]
    slash = await client.post(
        "/api/v1/devices", json={**body, "url": "http://192.0.2.10/", "id": "dev-y"}, headers=AUTH
    )
    assert slash.status == 409

    removed = await client.delete("/api/v1/devices/dev-x", headers=AUTH)
    assert removed.status == 204 and removed.body == b""
    assert "dev-x" not in await read_registry(bus.js)
    assert (await client.get("/api/v1/devices/dev-x")).status == 404
    assert (await client.delete("/api/v1/devices/dev-x", headers=AUTH)).status == 404
    assert (await client.delete("/api/v1/devices/Bad!", headers=AUTH)).status == 422
    # The URL is free again.
    assert (await client.post("/api/v1/devices", json={**body, "id": "dev-y"}, headers=AUTH)).status == 201


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    sim = await start_simulator(devices=3, seed=11, omit_mac=["mockaxe3"])
    yield sim
    await sim.stop()


async def test_register_probes_the_device_for_its_id(
    simulator: RunningSimulator, gateway: Gateway, client: Client
) -> None:
    first = await client.post("/api/v1/devices", json={"url": simulator.device_urls[0]}, headers=AUTH)
    assert first.status == 201, first.body
    mac = simulator.fleet.describe("mockaxe1").mac
    assert mac and first.json["id"] == device_id_from_mac(mac)
    assert first.json["mac"] == mac and first.json["registered_hostname"] == "mockaxe1"
    # No MAC (old firmware): the id comes from the URL, as `pluto devices add` does it.
    third = await client.post("/api/v1/devices", json={"url": simulator.device_urls[2]}, headers=AUTH)
    assert third.status == 201 and third.json["id"] == device_id_from_url(simulator.device_urls[2])
    # A device that does not answer: the id from the URL, registered all the same.
    gone = await client.post("/api/v1/devices", json={"url": "http://127.0.0.1:9/"}, headers=AUTH)
    assert gone.status == 201 and gone.json["id"] == device_id_from_url("http://127.0.0.1:9/")


async def test_unknown_routes_and_methods_are_problems(client: Client) -> None:
    missing = await client.get("/api/v1/nothing")
    assert missing.status == 404 and missing.content_type == "application/problem+json"
    wrong = await client.request("PUT", "/api/v1/devices")
    assert wrong.status == 405 and wrong.json["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["Allow"] and "POST" in wrong.headers["Allow"]


async def test_cors_is_off_unless_configured(bus_settings: BusSettings, client: Client) -> None:
    plain = await client.get("/api/v1/devices", headers={"Origin": "http://elsewhere.example"})
    assert "Access-Control-Allow-Origin" not in plain.headers

    gw = await Gateway(api_settings(bus_settings.nats_url, cors_origins="http://ui.example")).start()
    other = Client(gw.url)
    try:
        allowed = await other.get("/api/v1/devices", headers={"Origin": "http://ui.example"})
        assert allowed.headers["Access-Control-Allow-Origin"] == "http://ui.example"
        preflight = await other.request(
            "OPTIONS",
            "/api/v1/devices",
            headers={"Origin": "http://ui.example", "Access-Control-Request-Method": "POST"},
        )
        assert (
            preflight.status == 204 and "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        )
        denied = await other.request(
            "OPTIONS",
            "/api/v1/devices",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert denied.status == 403 and "Access-Control-Allow-Origin" not in denied.headers
        foreign = await other.get("/api/v1/devices", headers={"Origin": "http://evil.example"})
        assert "Access-Control-Allow-Origin" not in foreign.headers
    finally:
        await other.close()
        await gw.stop()
