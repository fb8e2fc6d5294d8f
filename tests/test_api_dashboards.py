"""Dashboard URLs from the dashboard states on the bus (published here by hand, as the
dashboards service would), and the reference frontend's `GET /dashboards` shape."""

from __future__ import annotations

import re

from shared.subjects import OVERVIEW_KEY
from tests.api_helpers import (  # noqa: F401 - the fixtures are used by name
    BusWriter,
    Client,
    Gateway,
    bus_fixture,
    client_fixture,
    gateway_fixture,
)
from tests.bus_helpers import wait_for

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


async def test_embeddable_urls_follow_the_theme(bus: BusWriter, gateway: Gateway, client: Client) -> None:
    await bus.add("dev-a", hostname="alpha")
    await bus.add("dev-b", hostname="bravo")
    await bus.add("dev-c", hostname="charlie")
    overview = await bus.dashboard(OVERVIEW_KEY, title="Pluto fleet overview")
    alpha = await bus.dashboard("dev-a", title="alpha")
    await bus.dashboard("dev-b", title="bravo")
    await bus.dashboard("dev-b", kind="unpublished", title="bravo")
    await wait_for(
        lambda: (
            len(gateway.views.devices) == 3
            and len(gateway.views.dashboards) == 3
            and gateway.views.dashboards["dev-b"].kind == "unpublished"
        ),  # the newest state, not the first
        what="views",
    )

    light = (await client.get("/api/v1/devices/dev-a/dashboard")).json
    assert light["status"] == "published" and light["theme"] == "light"
    assert light["url"] == f"/grafana/public-dashboards/{alpha.access_token}?orgId=1&theme=light&refresh=5s"
    assert light["dashboard_uid"] == "pluto-d-dev-a" and light["title"] == "alpha"
    dark = (await client.get("/api/v1/devices/dev-a/dashboard", params={"theme": "dark"})).json
    assert dark["url"] == f"/grafana/public-dashboards/{alpha.access_token}?orgId=1&theme=dark&refresh=5s"
    device = (await client.get("/api/v1/devices/dev-a", params={"theme": "dark"})).json
    assert device["dashboard"] == dark

    unpublished = (await client.get("/api/v1/devices/dev-b/dashboard")).json
    assert unpublished["status"] == "unpublished" and unpublished["url"] is None
    pending = (await client.get("/api/v1/devices/dev-c/dashboard")).json
    assert pending["status"] == "pending" and pending["url"] is None

    top = (await client.get("/api/v1/dashboards/overview", params={"theme": "dark"})).json
    assert top["key"] == OVERVIEW_KEY and top["device_id"] is None
    assert top["url"] == f"/grafana/public-dashboards/{overview.access_token}?orgId=1&theme=dark&refresh=5s"

    listing = (await client.get("/api/v1/dashboards", params={"theme": "dark"})).json["items"]
    assert [(d["key"], d["status"]) for d in listing] == [
        (OVERVIEW_KEY, "published"),
        ("dev-a", "published"),
        ("dev-b", "unpublished"),
        ("dev-c", "pending"),
    ]
    assert all(d["url"] is None or d["url"].endswith("&theme=dark&refresh=5s") for d in listing)

    for path in ("/api/v1/dashboards", "/api/v1/dashboards/overview", "/api/v1/devices/dev-a/dashboard"):
        bad = await client.get(path, params={"theme": "purple"})
        assert bad.status == 422 and bad.json["errors"][0]["location"] == "query.theme"
    assert (await client.get("/api/v1/devices/nosuch/dashboard")).status == 404


async def test_reference_dashboards_shape(bus: BusWriter, gateway: Gateway, client: Client) -> None:
    await bus.add("dev-a", hostname="alpha")
    await bus.add("dev-b", hostname="bravo")
    overview = await bus.dashboard(OVERVIEW_KEY, title="Pluto fleet overview")
    alpha = await bus.dashboard("dev-a", title="alpha")
    await bus.dashboard("dev-b", kind="unpublished", title="bravo")
    await bus.dashboard("gone", title="a device no longer registered")
    await wait_for(
        lambda: len(gateway.views.dashboards) == 4 and len(gateway.views.devices) == 2, what="views"
    )

    answer = await client.get("/dashboards")
    assert answer.status == 200 and answer.content_type == "application/json"
    entries = answer.json
    assert [e["uid"] for e in entries] == ["pluto-overview", "pluto-d-dev-a"]  # published, registered
    first, second = entries
    assert set(first) == {"name", "uid", "publicUrl", "grafanaData"}
    assert first["name"] == "Pluto fleet overview"
    assert first["publicUrl"] == f"/grafana/public-dashboards/{overview.access_token}?orgId=1"
    assert second["publicUrl"] == f"/grafana/public-dashboards/{alpha.access_token}?orgId=1"
    data = second["grafanaData"]
    assert data["dashboardUid"] == "pluto-d-dev-a" and data["accessToken"] == alpha.access_token
    assert data["uid"] == "pub-dev-a" and data["isEnabled"] is True
    assert RFC3339.match(data["createdAt"]) and RFC3339.match(data["updatedAt"])
    # What the reference frontend did with it:
    embedded = first["publicUrl"] + "&theme=dark&refresh=5s"
    assert embedded == f"/grafana/public-dashboards/{overview.access_token}?orgId=1&theme=dark&refresh=5s"


async def test_an_unsafe_public_path_never_reaches_an_iframe(
    bus: BusWriter, gateway: Gateway, client: Client
) -> None:
    await bus.add("dev-a")
    await bus.add("dev-b")
    await bus.dashboard("dev-a", public_path="javascript:alert(1)//", access_token="0123abcd")
    await bus.dashboard("dev-b", public_path="/grafana/../admin", access_token='bad token"><script>')
    await wait_for(
        lambda: len(gateway.views.dashboards) == 2 and len(gateway.views.devices) == 2, what="views"
    )
    fallback = (await client.get("/api/v1/devices/dev-a/dashboard")).json
    assert fallback["url"] == "/grafana/public-dashboards/0123abcd?orgId=1&theme=light&refresh=5s"
    refused = (await client.get("/api/v1/devices/dev-b/dashboard")).json
    assert refused["url"] is None and refused["status"] == "pending"
    assert [e["uid"] for e in (await client.get("/dashboards")).json] == ["pluto-d-dev-a"]


async def test_bad_messages_on_the_bus_are_ignored(bus: BusWriter, gateway: Gateway, client: Client) -> None:
    await bus.add("dev-a")
    await bus.raw("pluto.readings.dev-a", b"not json")
    await bus.raw(
        "pluto.readings.dev-a",
        b'{"device_id": "dev-b", "ok": true, "poll_started_at": 1, "poll_finished_at": 2}',
    )
    await bus.raw("pluto.dashboards.dev-a.published", b'{"kind": "unpublished"}')
    await bus.raw("pluto.dashboards.BAD.published", b"{}")
    await wait_for(
        lambda: gateway.views.rejected >= 4 and "dev-a" in gateway.views.devices, what="rejections"
    )
    assert gateway.views.tracks == {} and gateway.views.dashboards == {}
    assert (await client.get("/api/v1/devices/dev-a")).status == 200
