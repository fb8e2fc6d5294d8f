"""The Grafana test double against the reference facts, and the client against the double."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from services.dashboards.grafana import GrafanaClient, GrafanaError, GrafanaUnavailable
from services.dashboards.render import Renderer
from tests.grafana_double import GrafanaDouble
from tests.grafana_double.harness import eventually

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
async def double(tmp_path: Path) -> AsyncIterator[GrafanaDouble]:
    grafana = GrafanaDouble(tmp_path / "dashboards", scan_interval=0.1)
    await grafana.start()
    yield grafana
    await grafana.stop()


@pytest.fixture
async def client(double: GrafanaDouble) -> AsyncIterator[GrafanaClient]:
    grafana = GrafanaClient(double.url, "admin", timeout=3)
    yield grafana
    await grafana.close()


def provision(double: GrafanaDouble, uid: str, title: str) -> Path:
    path = double.folder / f"{uid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"uid": uid, "title": title, "panels": [], "id": 99}))
    return path


async def call(
    double: GrafanaDouble, method: str, path: str, *, user: str | None = "admin", **kwargs
) -> tuple[int, str]:
    headers = kwargs.pop("headers", {})
    if user is not None:
        headers["X-WEBAUTH-USER"] = user
    async with aiohttp.ClientSession() as session:
        async with session.request(
            method, double.url + path, headers=headers, allow_redirects=False, **kwargs
        ) as response:
            return response.status, await response.text()


def message_id(text: str) -> str:
    return json.loads(text)["messageId"]


async def test_provisioning_scan_loads_changes_and_deletes(double: GrafanaDouble, client) -> None:
    path = provision(double, "d1", "One")
    found = await eventually(lambda: client.get_dashboard("d1"), what="scan picks the file up")
    assert found.meta.provisioned and found.dashboard["id"] != 99  # the file's id is ignored
    path.write_text("{ broken")
    await eventually(lambda: double.provisioner.errors, what="invalid JSON logged")
    assert (await client.get_dashboard("d1")).dashboard["title"] == "One"  # old version stays
    path.unlink()
    await eventually(lambda: double.db.dashboards.get("d1") is None, what="removed file deleted")


async def test_provisioning_rules_for_uid_and_title(double: GrafanaDouble) -> None:
    provision(double, "x" * 41, "Too long")
    provision(double, "ok-1", "Same")
    (double.folder / "dup.json").write_text(json.dumps({"uid": "ok-2", "title": "same"}))
    (double.folder / ".hidden").mkdir(parents=True)
    (double.folder / ".hidden" / "h.json").write_text(json.dumps({"uid": "h", "title": "H"}))
    await double.scan()
    assert "x" * 41 not in double.db.dashboards and "h" not in double.db.dashboards
    assert any("duplicate title" in e for e in double.provisioner.errors)
    assert double.provisioner.write_revoked  # later changes are silently not saved
    provision(double, "ok-3", "Three")
    await double.scan()
    assert "ok-3" not in double.db.dashboards


async def test_reload_needs_server_admin(double: GrafanaDouble) -> None:
    provision(double, "d1", "One")
    assert (await call(double, "POST", "/api/admin/provisioning/dashboards/reload", user="bob"))[0] == 403
    status, body = await call(double, "POST", "/api/admin/provisioning/dashboards/reload")
    assert status == 200 and json.loads(body) == {"message": "Dashboards config reloaded"}
    assert "d1" in double.db.dashboards
    double.reload_permitted = False
    assert (await call(double, "POST", "/api/admin/provisioning/dashboards/reload"))[0] == 403


async def test_auth_proxy_rules(double: GrafanaDouble) -> None:
    assert (await call(double, "GET", "/api/search", user=None))[0] == 401
    assert (await call(double, "GET", "/api/search", user=""))[0] == 401
    assert (await call(double, "GET", "/api/search", user="viewer"))[0] == 200
    assert double.db.users["viewer"].role == "Viewer"
    provision(double, "d1", "One")
    await double.scan()
    status, body = await call(
        double, "POST", "/api/dashboards/uid/d1/public-dashboards", user="viewer", json={}
    )
    assert status == 403 and json.loads(body)["accessErrorId"].startswith("ACE")
    assert (await call(double, "GET", "/api/health", user=None))[0] == 200
    # sub-path: unprefixed paths redirect
    async with aiohttp.ClientSession() as session:
        async with session.get(double.root + "/api/health", allow_redirects=False) as response:
            assert response.status == 301 and response.headers["Location"] == "/grafana/api/health"


async def test_origin_is_checked_only_with_the_session_cookie(double: GrafanaDouble) -> None:
    hostile = {"Origin": "http://evil.example"}
    assert (await call(double, "GET", "/api/search", headers=dict(hostile)))[0] == 200
    headers = {**hostile, "Cookie": "grafana_session=abc"}
    status, body = await call(double, "GET", "/api/search", headers=headers)
    assert (status, body) == (403, "origin not allowed")


async def test_public_dashboard_api_facts(double: GrafanaDouble) -> None:
    provision(double, "d1", "One")
    await double.scan()
    base = "/api/dashboards/uid/d1/public-dashboards"
    status, body = await call(double, "GET", base)
    assert status == 404 and message_id(body) == "publicdashboards.notFound"
    status, body = await call(double, "POST", "/api/dashboards/uid/nope/public-dashboards", json={})
    assert status == 404 and message_id(body) == "publicdashboards.dashboardNotFound"
    status, body = await call(
        double, "POST", base, data="{nope", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and message_id(body) == "publicdashboards.badRequest"
    for bad, expected in [
        ({"accessToken": "nope"}, "invalidAccessToken"),
        ({"share": "email"}, "invalidShareType"),
    ]:
        status, body = await call(double, "POST", base, json=bad)
        assert status == 400 and message_id(body) == f"publicdashboards.{expected}"
    status, body = await call(double, "POST", base, json={"accessToken": TOKEN})
    created = json.loads(body)
    assert status == 200 and created["isEnabled"] is False  # isEnabled defaults to false
    assert created["createdAt"].count(".") == 1 and len(created["createdAt"].split(".")[1]) == 15
    status, body = await call(double, "GET", f"/api/public/dashboards/{TOKEN}", user=None)
    assert status == 403 and message_id(body) == "publicdashboards.notEnabled"
    status, body = await call(double, "POST", base, json={})
    assert status == 400 and message_id(body) == "publicdashboards.dashboardIsPublic"
    provision(double, "d2", "Two")
    await double.scan()
    status, body = await call(
        double, "POST", "/api/dashboards/uid/d2/public-dashboards", json={"accessToken": TOKEN}
    )
    assert status == 400 and message_id(body) == "publicdashboards.accessTokenExists"
    status, body = await call(
        double, "POST", "/api/dashboards/uid/d2/public-dashboards", json={"uid": created["uid"]}
    )
    assert status == 400 and message_id(body) == "publicdashboards.uidExists"
    status, body = await call(
        double, "PATCH", f"{base}/{created['uid']}", json={"isEnabled": True, "accessToken": "x"}
    )
    assert status == 200 and json.loads(body)["isEnabled"] and json.loads(body)["accessToken"] == TOKEN
    assert (await call(double, "GET", f"/api/public/dashboards/{TOKEN}", user=None))[0] == 200
    status, body = await call(double, "PATCH", f"{base}/unknown", json={})
    assert status == 404 and message_id(body) == "publicdashboards.notFound"
    assert await call(double, "DELETE", f"{base}/{created['uid']}") == (200, "")  # empty body
    status, body = await call(double, "DELETE", f"{base}/{created['uid']}")
    assert status == 404 and message_id(body) == "publicdashboards.notFound"
    assert (await call(double, "GET", f"/api/public/dashboards/{TOKEN}", user=None))[0] == 404


async def test_public_dashboards_disabled_means_plain_404(double: GrafanaDouble) -> None:
    double.public_dashboards_enabled = False
    status, body = await call(double, "GET", "/api/dashboards/public-dashboards")
    assert (status, json.loads(body)) == (404, {"message": "Not found"})


async def test_client_matches_errors_on_status_and_message_id(double: GrafanaDouble, client) -> None:
    provision(double, "d1", "One")
    await client.reload_provisioning()
    assert await client.get_public("d1") is None
    assert await client.get_public("nope") is None
    created = await client.create_public("d1", TOKEN)
    assert created.isEnabled and created.accessToken == TOKEN and created.createdAt is not None
    with pytest.raises(GrafanaError) as caught:
        await client.create_public("d1", TOKEN)
    assert caught.value.is_(400, "dashboardIsPublic") and not caught.value.transient
    assert [p.accessToken for p in await client.list_public(per_page=1)] == [TOKEN]
    assert await client.delete_public("d1", created.uid)
    assert not await client.delete_public("d1", created.uid)
    assert (await client.health()).database == "ok"
    double.database_failing = True
    with pytest.raises(GrafanaUnavailable):
        await client.health()
    # no Origin header, no cookies, although the double sets a session cookie
    assert all(seen.origin is None and not seen.cookie for seen in double.seen)
    assert any(seen.user == "admin" for seen in double.seen)


async def test_client_sees_outages_and_faults_as_transient(double: GrafanaDouble, client) -> None:
    double.fail(500, times=1)
    with pytest.raises(GrafanaError) as caught:
        await client.search()
    assert caught.value.transient and caught.value.status == 500
    assert await client.search() == []
    await double.stop()
    with pytest.raises(GrafanaUnavailable):
        await client.search()
    await double.start()
    assert await client.search() == []


async def test_client_without_sub_path_gets_a_clear_error(double: GrafanaDouble) -> None:
    wrong = GrafanaClient(double.root, "admin")
    try:
        with pytest.raises(GrafanaError, match="sub-path"):
            await wrong.search()
    finally:
        await wrong.close()


async def test_restart_with_an_empty_database_reprovisions_files(double: GrafanaDouble, client) -> None:
    rendered = Renderer("pluto-prometheus").device("abc", "miner")
    double.folder.mkdir(parents=True, exist_ok=True)
    (double.folder / "pluto-d-abc.json").write_text(rendered.text)
    await client.reload_provisioning()
    await client.create_public("pluto-d-abc", TOKEN)
    await double.restart(empty=True)
    assert await client.get_dashboard("pluto-d-abc") is not None
    assert await client.get_public("pluto-d-abc") is None
    status, _ = await call(double, "POST", f"/api/public/dashboards/{TOKEN}/panels/1/query", user=None)
    assert status == 404


async def test_default_scan_is_grafanas_ten_seconds(tmp_path: Path) -> None:
    grafana = GrafanaDouble(tmp_path / "dashboards")
    assert grafana.scan_interval == 10.0  # updateIntervalSeconds 0 -> 10 in Grafana
    await grafana.start()
    try:
        scans = grafana.scans
        provision(grafana, "late", "Late")
        assert "late" not in grafana.db.dashboards  # a new file waits for the next scan...
        status, _ = await call(grafana, "POST", "/api/admin/provisioning/dashboards/reload")
        assert status == 200 and "late" in grafana.db.dashboards  # ...or a reload
        assert grafana.scans == scans + 1
    finally:
        await grafana.stop()
