"""The Grafana test double (tests/grafana_double, the dashboards engineer's) plus the two
datasource endpoints `pluto doctor` reads, which a real Grafana has."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pluto import doctor
from tests.grafana_double import GrafanaDouble


class GrafanaWithDatasource(GrafanaDouble):
    """The double plus the two datasource endpoints the doctor reads (real Grafana has them)."""

    def __init__(self, *args: Any, datasource_ok: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datasource_ok = datasource_ok
        self.datasource = {
            "uid": doctor.DATASOURCE_UID,
            "type": "prometheus",
            "access": "proxy",
            "url": "http://prometheus:9090",
            "jsonData": {"httpMethod": "POST"},
        }

    def _routes(self, app: web.Application) -> None:
        super()._routes(app)
        app.router.add_get(self.sub_path + "/api/datasources/uid/{uid}", self._datasource)
        app.router.add_get(self.sub_path + "/api/datasources/uid/{uid}/health", self._datasource_health)

    async def _datasource(self, request: web.Request) -> web.Response:
        if request.match_info["uid"] != self.datasource["uid"]:
            return web.json_response({"message": "Data source not found"}, status=404)
        return web.json_response(self.datasource)

    async def _datasource_health(self, request: web.Request) -> web.Response:
        if self.datasource_ok:
            return web.json_response({"status": "OK", "message": "Successfully queried the Prometheus API."})
        return web.json_response(
            {"status": "ERROR", "message": 'Post "http://prometheus:9090/api/v1/query": no such host'},
            status=400,
        )
