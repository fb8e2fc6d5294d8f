"""The /grafana/ reverse proxy: who Grafana thinks the caller is.

A client-supplied `X-WEBAUTH-USER` (or role header) never reaches Grafana; the
anonymous public paths never carry the header, even for the operator; other
paths carry it only for requests with the operator token. Checked against the
Grafana double (what Grafana would see) and an echo upstream (every header).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from yarl import URL

from shared.settings import BusSettings
from tests.api_helpers import AUTH, Client, Gateway, api_settings
from tests.api_live import EchoUpstream
from tests.bus_helpers import wait_for
from tests.grafana_double import GrafanaDouble

# The property-based version (hypothesis, any path, header and credential) is in test_api_fuzz.py.
SPOOF = {"X-WEBAUTH-USER": "admin", "X-WEBAUTH-ROLE": "Admin", "x-webauth-email": "a@b"}
PUBLIC_PATHS = [
    "/grafana/public-dashboards/0123456789abcdef0123456789abcdef?orgId=1&theme=dark",
    "/grafana/api/public/dashboards/0123456789abcdef0123456789abcdef",
    "/grafana/api/public/dashboards/0123456789abcdef0123456789abcdef/panels/1/query",
    "/grafana/public/build/app.js",
]


@pytest.fixture
async def double(tmp_path: Path) -> AsyncIterator[GrafanaDouble]:
    folder = tmp_path / "dashboards"
    folder.mkdir()
    grafana = GrafanaDouble(folder, scan_interval=60)
    await grafana.start()
    yield grafana
    await grafana.stop()


@pytest.fixture
async def echo() -> AsyncIterator[EchoUpstream]:
    upstream = await EchoUpstream().start()
    yield upstream
    await upstream.stop()


async def _gateway(bus_settings: BusSettings, grafana_url: str) -> Gateway:
    gw = await Gateway(api_settings(bus_settings.nats_url, grafana_url=grafana_url)).start()
    await wait_for(gw.ready, what="gateway ready")
    return gw


async def test_the_double_never_sees_a_spoofed_user(bus_settings: BusSettings, double: GrafanaDouble) -> None:
    gw = await _gateway(bus_settings, double.url)
    client = Client(gw.url)
    try:
        spoofed = await client.get("/grafana/api/search", headers=SPOOF)
        assert spoofed.status == 401  # Grafana saw an anonymous request
        for path in PUBLIC_PATHS:
            await client.get(path, headers={**SPOOF, **AUTH})  # public: never signed in
        health = await client.get("/grafana/api/health", headers=SPOOF)
        assert health.status == 200 and health.json["database"] == "ok"
        operator = await client.get("/grafana/api/search", headers={**SPOOF, **AUTH})
        assert operator.status == 200
        assert [s.user for s in double.seen] == [None] * (len(PUBLIC_PATHS) + 2) + ["admin"]
        assert double.seen[-1].path == "/grafana/api/search"
    finally:
        await client.close()
        await gw.stop()


async def test_headers_the_upstream_gets(bus_settings: BusSettings, echo: EchoUpstream) -> None:
    gw = await _gateway(bus_settings, echo.url)
    client = Client(gw.url)
    extra = {
        "Cookie": "grafana_session=stolen",
        "Origin": "http://evil.example",
        "X-Forwarded-For": "1.2.3.4",
    }
    try:
        anonymous = await client.get(
            "/grafana/api/dashboards/uid/x%2Fy?a=1&b=%26c", headers={**SPOOF, **extra}
        )
        assert anonymous.status == 200
        got = echo.received[-1]
        assert got.path_qs == "/grafana/api/dashboards/uid/x%2Fy?a=1&b=%26c"
        assert not any(name.lower().startswith("x-webauth") for name in got.headers)
        assert "Authorization" not in got.headers and "Cookie" not in got.headers
        assert got.headers["X-Forwarded-For"] == "1.2.3.4, 127.0.0.1"
        assert "Set-Cookie" not in anonymous.headers  # no Grafana session for anonymous visitors
        assert anonymous.headers["X-Frame-Options"] == "SAMEORIGIN"
        assert anonymous.headers["Content-Security-Policy"] == "default-src 'self'; frame-ancestors 'self'"

        operator = await client.post(
            "/grafana/api/search", headers={**SPOOF, **AUTH, **extra}, data=b'{"q":1}'
        )
        got = echo.received[-1]
        assert got.method == "POST" and got.body == b'{"q":1}'
        assert got.headers.getall("X-WEBAUTH-USER") == ["admin"]
        assert "X-WEBAUTH-ROLE" not in got.headers and "x-webauth-email" not in got.headers
        assert "Authorization" not in got.headers  # the operator token never leaves the gateway
        assert got.headers["Cookie"] == "grafana_session=stolen" and "Origin" not in got.headers
        assert "Set-Cookie" in operator.headers

        for path in PUBLIC_PATHS:
            await client.get(path, headers={**SPOOF, **AUTH})
            assert "X-WEBAUTH-USER" not in echo.received[-1].headers, path
            assert "Authorization" not in echo.received[-1].headers
    finally:
        await client.close()
        await gw.stop()


async def test_dot_segments_and_a_missing_grafana(bus_settings: BusSettings, echo: EchoUpstream) -> None:
    gw = await _gateway(bus_settings, echo.url)
    client = Client(gw.url)
    try:
        for path in ("/grafana/public-dashboards/../api/admin/users", "/grafana/public/%2e%2e/api/search"):
            refused = await client.get(URL(gw.url + path, encoded=True), headers=AUTH)
            assert refused.status == 400 and refused.json["code"] == "bad_path", path
        assert echo.received == []
        await echo.stop()
        down = await client.get("/grafana/api/health")
        assert down.status == 502 and down.json["code"] == "grafana_unreachable"
    finally:
        await client.close()
        await gw.stop()


async def test_no_proxy_unless_configured(bus_settings: BusSettings) -> None:
    gw = await _gateway(bus_settings, "")
    client = Client(gw.url)
    try:
        answer = await client.get("/grafana/public-dashboards/abc")
        assert answer.status == 404 and answer.content_type == "application/problem+json"
    finally:
        await client.close()
        await gw.stop()
