"""The built-in web page in headless Chromium: the live table of the simulated fleet,
a device's public dashboard in an iframe, the theme switch reaching the iframe URL,
and clear messages where Grafana is unreachable or a dashboard is not yet published."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.simulator.faults import TimeoutFault
from shared.settings import BusSettings
from tests.api_browser import Chromium, Page, chromium_binary
from tests.api_helpers import AUTH, BusWriter, Client, Gateway, api_settings, reading
from tests.api_stack import Stack
from tests.bus_helpers import wait_for
from tests.grafana_double.harness import eventually


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Chromium]:
    chromium_binary()  # skip (or fail under CI) before starting anything else
    chromium = await Chromium.launch(tmp_path / "chromium-profile")
    yield chromium
    await chromium.close()


async def until(page: Page, expression: str, what: str, timeout: float = 20.0) -> object:
    """Evaluate `expression` in the page until it is truthy; return its value."""
    return await eventually(lambda: page.evaluate(expression), timeout=timeout, what=what)


ROWS = """JSON.stringify(Array.from(document.querySelectorAll('#devices tbody tr')).map(tr => ({
  id: tr.dataset.deviceId, name: tr.children[0].textContent, status: tr.children[1].textContent,
  hashrate: tr.children[2].textContent, power: tr.children[3].textContent,
  temperature: tr.children[4].textContent, efficiency: tr.children[5].textContent,
  seen: tr.children[6].textContent})))"""
IFRAME_SRC = (
    "(() => { const f = document.getElementById('dashboard');"
    " return f.hidden ? '' : (f.getAttribute('src') || ''); })()"
)
MESSAGE = (
    "(() => { const m = document.getElementById('dashboard-message');"
    " return m.hidden ? '' : m.textContent; })()"
)
NO_VALUE = "\u2013"  # what an empty cell shows


async def test_the_page_shows_the_fleet_and_embeds_dashboards(
    bus_settings: BusSettings, tmp_path: Path, browser: Chromium
) -> None:
    stack = await Stack(bus_settings.nats_url, tmp_path, devices=3, exporter=False).start()
    client = Client(stack.api.url)
    try:
        ids = []
        for url in stack.sim.device_urls:
            answer = await client.post("/api/v1/devices", json={"url": url}, headers=AUTH)
            assert answer.status == 201, answer.body
            ids.append(answer.json["id"])
        page = await browser.new_page(stack.api.url + "/")

        rows_json = await until(
            page,
            f"(() => {{ const r = {ROWS}; const rows = JSON.parse(r);"
            " return rows.length === 3 && rows.every(x => x.status.startsWith('online')"
            f" && x.hashrate !== '{NO_VALUE}')"
            " ? r : ''; })()",
            "three online devices in the table",
        )
        rows = json.loads(str(rows_json))
        assert [r["name"] for r in rows] == ["mockaxe1", "mockaxe2", "mockaxe3"]
        assert {r["id"] for r in rows} == set(ids)
        for r in rows:
            assert r["hashrate"].endswith(("GH/s", "TH/s")) and r["power"].endswith(" W")
            assert r["temperature"].endswith("°C") and r["efficiency"].endswith("J/TH")
            assert r["seen"].endswith("ago")
        assert await until(page, "document.getElementById('ov-total').textContent === '3'", "overview cards")

        # The overview on the first screen, once the dashboards service has published it.
        await wait_for(lambda: stack.api.views.dashboard("_overview") is not None, what="overview published")
        overview = (await client.get("/api/v1/dashboards/overview")).json
        assert overview["status"] == "published"
        assert await until(page, f"{IFRAME_SRC} === {json.dumps(overview['url'])}", "the overview iframe")

        # A click on a device shows its public dashboard.
        chosen = rows[1]["id"]
        await wait_for(
            lambda: stack.api.views.dashboard(chosen) is not None, what="device dashboard published"
        )
        light = (await client.get(f"/api/v1/devices/{chosen}/dashboard", params={"theme": "light"})).json
        dark = (await client.get(f"/api/v1/devices/{chosen}/dashboard", params={"theme": "dark"})).json
        assert light["url"].startswith("/grafana/public-dashboards/") and light["url"].endswith(
            "?orgId=1&theme=light&refresh=5s"
        )
        await page.click(f'tr[data-device-id="{chosen}"] td.hostname button')
        assert await until(page, f"{IFRAME_SRC} === {json.dumps(light['url'])}", "the device's iframe")
        assert await page.evaluate("document.getElementById('dashboard-title').textContent") == "mockaxe2"
        assert (
            await page.evaluate(f"document.querySelector('tr[data-device-id=\"{chosen}\"]').className")
            == "selected"
        )

        # The theme switch reaches the iframe URL (and the page).
        await page.click("#theme-toggle")
        assert await until(page, f"{IFRAME_SRC} === {json.dumps(dark['url'])}", "the dark iframe")
        assert await page.evaluate("document.documentElement.dataset.theme") == "dark"
        await page.screenshot(tmp_path / "page-dark.png")
        await page.click("#theme-toggle")
        assert await until(page, f"{IFRAME_SRC} === {json.dumps(light['url'])}", "back to light")

        # Live: a device that stops answering turns offline without a reload.
        stack.sim.fleet.apply_fault(rows[0]["name"], TimeoutFault())
        assert await until(
            page,
            f"document.querySelector('tr[data-device-id=\"{rows[0]['id']}\"] td.status').textContent"
            ".startsWith('offline')",
            "the silent device offline in the table",
        )
        # No script error, no CSP violation, no failed request of the page's own (the iframe's
        # answers come from the Grafana double, which has no HTML page: those are not the page's).
        assert [e for e in browser.errors() if "/grafana/" not in e] == []
    finally:
        await client.close()
        await stack.stop()


async def test_the_page_says_what_is_missing(bus_settings: BusSettings, browser: Chromium) -> None:
    bus = await BusWriter().start(bus_settings.nats_url)
    gateway = await Gateway(api_settings(bus_settings.nats_url)).start()  # no /grafana/ proxy
    try:
        await wait_for(gateway.ready, what="gateway ready")
        await bus.add("dev-a", hostname="alpha")
        await bus.add("dev-b", hostname="bravo")
        await bus.reading(reading("dev-a", hostname="alpha", hashrate_ghs=1.0))
        await bus.dashboard("dev-a", title="alpha")
        page = await browser.new_page(gateway.url + "/")
        message = await until(page, MESSAGE, "a message instead of the overview")
        assert "not published yet" in str(message) and "fleet overview" in str(message)
        await until(page, "document.querySelectorAll('#devices tbody tr').length === 2", "two rows")

        await page.click('tr[data-device-id="dev-b"] td.hostname button')
        message = await until(
            page,
            f"(() => {{ const m = {MESSAGE}; return m.includes('bravo') ? m : ''; }})()",
            "the unpublished message for bravo",
        )
        assert "not published yet" in str(message)

        await page.click('tr[data-device-id="dev-a"] td.hostname button')
        message = await until(
            page,
            f"(() => {{ const m = {MESSAGE}; return m.includes('not reachable') ? m : ''; }})()",
            "the Grafana message",
        )
        assert "Grafana is not reachable" in str(message)
        assert await page.evaluate(IFRAME_SRC) == ""
        assert await page.evaluate("document.getElementById('connection').textContent") == "live"
    finally:
        await gateway.stop()
        await bus.stop()
