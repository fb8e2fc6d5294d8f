"""The gateway's views after restarts: of the gateway itself, and of NATS under it."""

from __future__ import annotations

from pathlib import Path

from pluto.natsd import NatsServer, free_port
from services.api.appkeys import BROKER
from shared.settings import BusSettings
from shared.subjects import OVERVIEW_KEY
from tests.api_helpers import BusWriter, Client, Gateway, api_settings, reading
from tests.bus_helpers import wait_for


async def test_views_catch_up_after_a_gateway_restart(bus_settings: BusSettings) -> None:
    bus = await BusWriter().start(bus_settings.nats_url)
    first = await Gateway(api_settings(bus_settings.nats_url)).start()
    try:
        await wait_for(first.ready, what="first gateway ready")
        for i in range(30):
            await bus.add(f"dev-{i:02d}", hostname=f"miner-{i:02d}")
            await bus.reading(reading(f"dev-{i:02d}", hashrate_ghs=float(i), power_watts=1.0))
        await bus.remove("dev-29")
        await bus.dashboard(OVERVIEW_KEY, title="overview")
        await bus.dashboard("dev-01", title="miner-01")
        await bus.dashboard("dev-02", title="miner-02")
        await bus.dashboard("dev-02", kind="unpublished", title="miner-02")
        await wait_for(
            lambda: (
                len(first.views.tracks) == 29
                and len(first.views.devices) == 29
                and len(first.views.dashboards) == 3
                and first.views.dashboards["dev-02"].kind == "unpublished"
            ),
            what="views",
        )
        client = Client(first.url)
        before = {
            path: (await client.get(path)).json
            for path in ("/api/v1/devices?limit=1000", "/api/v1/dashboards", "/dashboards")
        }
        overview_before = (await client.get("/api/v1/overview")).json
        await client.close()
    finally:
        await first.stop()

    # Published while no gateway runs: the replay must bring it too.
    await bus.add("dev-late", hostname="late")
    await bus.reading(reading("dev-late", hashrate_ghs=7.0, power_watts=1.0))
    await bus.remove("dev-00")

    second = await Gateway(api_settings(bus_settings.nats_url)).start()
    client = Client(second.url)
    try:
        not_yet = await client.get("/readyz")
        assert not_yet.status in (200, 503)  # it may already be done: the replay is fast
        await wait_for(second.ready, what="second gateway caught up")
        assert (await client.get("/readyz")).status == 200
        devices = (await client.get("/api/v1/devices?limit=1000")).json
        ids = [d["id"] for d in devices["items"]]
        assert ids == ["dev-late"] + [f"dev-{i:02d}" for i in range(1, 29)]  # by hostname
        old = {d["id"]: d for d in before["/api/v1/devices?limit=1000"]["items"]}
        for item in devices["items"][1:]:
            assert item["hashrate_ghs"] == old[item["id"]]["hashrate_ghs"]
            assert item["last_ok_at"] == old[item["id"]]["last_ok_at"]
        late = (await client.get("/api/v1/devices/dev-late")).json
        assert late["reading"]["hashrate_ghs"] == 7.0
        dashboards = (await client.get("/api/v1/dashboards")).json["items"]
        by_key = {d["key"]: d for d in dashboards}
        assert by_key[OVERVIEW_KEY]["status"] == "published" and by_key["dev-01"]["status"] == "published"
        assert by_key["dev-02"]["status"] == "unpublished" and by_key["dev-03"]["status"] == "pending"
        assert (await client.get("/dashboards")).json == before["/dashboards"]
        overview = (await client.get("/api/v1/overview")).json
        assert overview["total_hardware"] == overview_before["total_hardware"]  # one gone, one new
        assert (
            overview["total_hashrate_ghs"] == overview_before["total_hashrate_ghs"] + 7.0
        )  # dev-00 hashed 0
    finally:
        await client.close()
        await second.stop()
        await bus.stop()


async def test_the_gateway_waits_for_nats_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    gw = await Gateway(api_settings(f"nats://127.0.0.1:{port}")).start()
    client = Client(gw.url)
    server = NatsServer(tmp_path / "nats", port=port, log_file=tmp_path / "nats.log")
    try:
        waiting = await client.get("/readyz")
        assert waiting.status == 503
        assert waiting.json["nats_connected"] is False and waiting.json["ready"] is False
        assert (await client.get("/healthz")).status == 200  # alive, only not ready
        assert (await client.get("/api/v1/devices")).json["items"] == []
        refused = await client.post(
            "/api/v1/devices",
            json={"url": "http://192.0.2.1/", "id": "dev-a"},
            headers={"Authorization": f"Bearer {gw.settings.operator_token.get_secret_value()}"},  # type: ignore[union-attr]
        )
        assert refused.status == 503 and refused.json["code"] == "bus_unavailable"

        await server.start()
        await wait_for(gw.ready, timeout=30, what="gateway connected once NATS is up")
        ready = await client.get("/readyz")
        assert ready.status == 200 and ready.json["nats_connected"] is True

        server.stop()
        await wait_for(lambda: not gw.app[BROKER].connection.is_connected, what="disconnect seen")  # type: ignore[index]
        lost = await client.get("/readyz")
        assert lost.status == 503 and lost.json["nats_connected"] is False
    finally:
        await client.close()
        await gw.stop()
        server.stop()
