"""A Grafana test double: the HTTP API the dashboards service uses, as
/work/shared/reference/grafana-api.md describes it, in memory.

    double = GrafanaDouble(folder, scan_interval=0.2)
    await double.start()          # provisions the folder, then serves
    double.url                    # http://127.0.0.1:<port>/grafana
    await double.stop()           # connections refused from now on
    await double.start(empty=True)  # "restarted with an empty database"

Behaviour: sub-path (unprefixed paths answer 301), auth proxy (`X-WEBAUTH-USER`;
`admin` is org Admin and, while `reload_permitted`, server admin; other logins
are auto-created as Viewer; empty header 401), CSRF (Origin checked only when the
request carries the session cookie, which this double sets on signed-in
answers), file provisioning on an interval, the reload endpoint, the public
dashboards API with its status codes and messageIds (`isEnabled` defaults to
false, 400 `dashboardIsPublic`, empty DELETE bodies), `/api/health`,
`/api/search`, and fault injection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from .provisioning import Provisioner, read_folder
from .state import (
    UID_RE,
    Dashboard,
    Database,
    PublicDashboard,
    User,
    new_uid,
    rfc3339_now,
    valid_access_token,
)

log = logging.getLogger("grafana_double")

SESSION_COOKIE = "grafana_session"
USER_KEY = web.RequestKey("user", User)
VERSION = "11.3.0-double"


@dataclass(frozen=True)
class Seen:
    """One request as the double saw it (for assertions)."""

    method: str
    path: str
    user: str | None
    origin: str | None
    cookie: bool


@dataclass
class Fault:
    status: int
    remaining: int | None  # None: until cleared
    path_contains: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pd_error(status: int, message_id: str, message: str) -> web.Response:
    return web.json_response(
        {
            "statusCode": status,
            "messageId": f"publicdashboards.{message_id}",
            "message": message,
            "traceID": "",
        },
        status=status,
    )


def _json(status: int, body: Any) -> web.Response:
    return web.json_response(body, status=status)


ACCESS_DENIED = {
    "title": "Access denied",
    "message": "You'll need additional permissions to perform this action. "
    "Permissions needed: dashboards.public:write",
    "accessErrorId": "ACE0123456789",
}


class GrafanaDouble:
    def __init__(
        self,
        folder: Path,
        *,
        sub_path: str = "/grafana",
        scan_interval: float = 10.0,
        reload_permitted: bool = True,
        public_dashboards_enabled: bool = True,
        delete_public_with_dashboard: bool = False,
        csrf_always_check: bool = False,
        port: int | None = None,
    ) -> None:
        self.folder = folder
        self.sub_path = "/" + sub_path.strip("/") if sub_path.strip("/") else ""
        self.scan_interval = scan_interval
        self.reload_permitted = reload_permitted
        self.public_dashboards_enabled = public_dashboards_enabled
        self.csrf_always_check = csrf_always_check
        self.port = port or _free_port()
        self.db = Database()
        self.provisioner = Provisioner(delete_public_with_dashboard=delete_public_with_dashboard)
        self.database_failing = False
        self.seen: list[Seen] = []
        self.scans = 0  # completed provisioning scans
        self.reloads = 0  # accepted reload calls
        self._faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self._scan_task: asyncio.Task[None] | None = None
        self._scan_lock = asyncio.Lock()

    # -- control -------------------------------------------------------------------------

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Grafana's base URL, sub-path included."""
        return self.root + self.sub_path

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self, *, empty: bool = False) -> None:
        """Start (again); `empty=True` forgets the database, as a Grafana that lost it."""
        if self._runner is not None:
            return
        if empty:
            self.db = Database()
            self.provisioner.write_revoked = False
        await self.scan()  # Grafana provisions before it serves
        app = web.Application(middlewares=[self._middleware])
        self._routes(app)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        self._scan_task = asyncio.create_task(self._scan_forever(), name="grafana-double-scan")

    async def stop(self) -> None:
        if self._scan_task is not None:
            self._scan_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scan_task
            self._scan_task = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            with contextlib.suppress(ConnectionError):  # a client hung up mid-request
                await runner.cleanup()

    async def restart(self, *, empty: bool = False) -> None:
        await self.stop()
        await self.start(empty=empty)

    def fail(self, status: int = 500, *, times: int | None = None, path_contains: str = "/api/") -> None:
        """Answer `status` to matching requests (`times` of them, or until clear_faults)."""
        self._faults.append(Fault(status, times, path_contains))

    def clear_faults(self) -> None:
        self._faults.clear()

    async def scan(self) -> None:
        """One provisioning scan, now."""
        async with self._scan_lock:
            files = await asyncio.to_thread(read_folder, self.folder)
            self.provisioner.apply(self.db, files)
            self.scans += 1

    async def _scan_forever(self) -> None:
        while True:
            await asyncio.sleep(self.scan_interval)  # Grafana's own updateIntervalSeconds
            try:
                await self.scan()
            except Exception:  # keep scanning, as Grafana does
                log.exception("provisioning scan failed")

    # -- plumbing ------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        p = self.sub_path
        app.router.add_get(p + "/api/health", self.health)
        app.router.add_get(p + "/api/search", self.search)
        app.router.add_get(p + "/api/dashboards/uid/{uid}", self.get_dashboard)
        app.router.add_post(p + "/api/admin/provisioning/dashboards/reload", self.reload)
        app.router.add_get(p + "/api/dashboards/public-dashboards", self.list_public)
        base = p + "/api/dashboards/uid/{dashboard_uid}/public-dashboards"
        app.router.add_get(base, self.get_public)
        app.router.add_post(base, self.create_public)
        app.router.add_patch(base + "/{uid}", self.update_public)
        app.router.add_delete(base + "/{uid}", self.delete_public)
        app.router.add_get(p + "/api/public/dashboards/{token}", self.view_public)
        app.router.add_post(p + "/api/public/dashboards/{token}/panels/{panel_id}/query", self.query_public)

    def _anonymous(self, path: str) -> bool:
        rest = path[len(self.sub_path) :]
        return rest == "/api/health" or rest.startswith("/api/public/")

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        login = request.headers.get("X-WEBAUTH-USER")
        origin = request.headers.get("Origin")
        has_session = SESSION_COOKIE in request.cookies
        self.seen.append(Seen(request.method, path, login, origin, bool(request.headers.get("Cookie"))))
        if self.sub_path and not path.startswith(self.sub_path + "/"):
            raise web.HTTPMovedPermanently(self.sub_path + str(request.rel_url))
        for fault in self._faults:
            if fault.path_contains in path and (fault.remaining is None or fault.remaining > 0):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return _json(fault.status, {"message": "injected fault"})
        if (has_session or self.csrf_always_check) and origin:
            host = (request.host or "").split(":")[0]
            if urlsplit(origin).hostname != host:
                return web.Response(status=403, text="origin not allowed")
        rest = path[len(self.sub_path) :]
        if not self.public_dashboards_enabled and (
            "public-dashboards" in rest or rest.startswith("/api/public/")
        ):
            return _json(404, {"message": "Not found"})
        if self._anonymous(path):
            return await handler(request)
        if not login:
            return _json(401, {"message": "Unauthorized"})
        request[USER_KEY] = self.db.user(login, server_admin_allowed=self.reload_permitted)
        response = await handler(request)
        response.set_cookie(SESSION_COOKIE, "double-session", httponly=True)
        return response

    @staticmethod
    def _user(request: web.Request) -> User:
        return request[USER_KEY]

    # -- health, dashboards, search, provisioning -----------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        if self.database_failing:
            return _json(503, {"database": "failing", "version": VERSION, "commit": "double"})
        return _json(200, {"database": "ok", "version": VERSION, "commit": "double"})

    async def get_dashboard(self, request: web.Request) -> web.Response:
        found = self.db.dashboards.get(request.match_info["uid"])
        if found is None:
            return _json(404, {"message": "Dashboard not found"})
        public = self.db.public_of(found.uid)
        return _json(
            200,
            {
                "dashboard": {**found.data, "id": found.id, "uid": found.uid, "version": found.version},
                "meta": {
                    "type": "db",
                    "slug": found.slug(),
                    "url": f"{self.sub_path}/d/{found.uid}/{found.slug()}",
                    "created": found.created,
                    "updated": found.updated,
                    "version": found.version,
                    "folderUid": found.folder_uid,
                    "provisioned": found.provisioned_path is not None,
                    "provisionedExternalId": found.provisioned_path or "",
                    "publicDashboardEnabled": bool(public and public.is_enabled),
                },
            },
        )

    async def search(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "").casefold()
        tags = request.query.getall("tag", [])
        uids = set(request.query.getall("dashboardUIDs", []))
        try:
            limit = int(request.query.get("limit", "1000"))
        except ValueError:
            return _json(400, {"message": "bad limit"})
        hits = []
        for d in sorted(self.db.dashboards.values(), key=lambda d: d.title.casefold()):
            if query and query not in d.title.casefold():
                continue
            if any(t not in d.tags for t in tags) or (uids and d.uid not in uids):
                continue
            hits.append(
                {
                    "id": d.id,
                    "uid": d.uid,
                    "title": d.title,
                    "uri": f"db/{d.slug()}",
                    "url": f"{self.sub_path}/d/{d.uid}/{d.slug()}",
                    "slug": "",
                    "type": "dash-db",
                    "tags": d.tags,
                    "isStarred": False,
                    "folderUid": d.folder_uid,
                    "sortMeta": 0,
                }
            )
        return _json(200, hits[:limit])

    async def reload(self, request: web.Request) -> web.Response:
        if not self._user(request).server_admin:
            return _json(403, {"message": "Permission denied"})
        await self.scan()
        self.reloads += 1
        return _json(200, {"message": "Dashboards config reloaded"})

    # -- public dashboards -----------------------------------------------------------------

    def _require_admin(self, request: web.Request) -> web.Response | None:
        if self._user(request).role != "Admin":
            return _json(403, ACCESS_DENIED)
        return None

    async def list_public(self, request: web.Request) -> web.Response:
        try:
            page = max(1, int(request.query.get("page", "1")))
            per_page = max(1, int(request.query.get("perpage", "1000")))
        except ValueError:
            return _pd_error(400, "badRequest", "bad paging")
        query = request.query.get("query", "").casefold()
        items = []
        for public in self.db.publics.values():
            dashboard = self.db.dashboards.get(public.dashboard_uid)
            title = dashboard.title if dashboard else ""
            if query and query not in title.casefold():
                continue
            items.append(
                {
                    "uid": public.uid,
                    "accessToken": public.access_token,
                    "title": title,
                    "dashboardUid": public.dashboard_uid,
                    "isEnabled": public.is_enabled,
                }
            )
        items.sort(key=lambda i: (str(i["title"]).casefold(), str(i["uid"])))
        chunk = items[(page - 1) * per_page : page * per_page]
        return _json(
            200, {"publicDashboards": chunk, "totalCount": len(items), "page": page, "perPage": per_page}
        )

    async def get_public(self, request: web.Request) -> web.Response:
        dashboard_uid = request.match_info["dashboard_uid"]
        if not UID_RE.fullmatch(dashboard_uid):
            return _pd_error(400, "identifierNotSet", "No Uid for public dashboard specified")
        if dashboard_uid not in self.db.dashboards:
            return _pd_error(404, "dashboardNotFound", "Dashboard not found")
        public = self.db.public_of(dashboard_uid)
        if public is None:
            return _pd_error(404, "notFound", "Public dashboard not found")
        return _json(200, public.body())

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _pd_error(400, "badRequest", "bad request data")
        if not isinstance(body, dict):
            return _pd_error(400, "badRequest", "bad request data")
        return body

    async def create_public(self, request: web.Request) -> web.Response:
        denied = self._require_admin(request)
        if denied:
            return denied
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        dashboard_uid = request.match_info["dashboard_uid"]
        if not UID_RE.fullmatch(dashboard_uid):
            return _pd_error(400, "invalidUid", "invalid Uid")
        if dashboard_uid not in self.db.dashboards:
            return _pd_error(404, "dashboardNotFound", "Dashboard not found")
        if self.db.public_of(dashboard_uid) is not None:
            return _pd_error(400, "dashboardIsPublic", "Dashboard is already public")
        uid = body.get("uid") or new_uid()
        if not isinstance(uid, str) or not UID_RE.fullmatch(uid):
            return _pd_error(400, "invalidUid", "invalid Uid")
        if uid in self.db.publics:
            return _pd_error(400, "uidExists", "Public dashboard uid already exists")
        token = body.get("accessToken") or new_uid() + new_uid() + "0000"
        if not isinstance(token, str) or not valid_access_token(token):
            return _pd_error(400, "invalidAccessToken", "invalid access token")
        if self.db.public_by_token(token) is not None:
            return _pd_error(400, "accessTokenExists", "Access token already exists")
        share = body.get("share", "public")
        if share != "public":  # "email" is Enterprise only
            return _pd_error(400, "invalidShareType", "Invalid share type")
        user = self._user(request)
        public = PublicDashboard(
            uid=uid,
            dashboard_uid=dashboard_uid,
            access_token=token,
            is_enabled=bool(body.get("isEnabled", False)),
            time_selection_enabled=bool(body.get("timeSelectionEnabled", False)),
            annotations_enabled=bool(body.get("annotationsEnabled", False)),
            share=share,
            created_by=user.id,
            updated_by=user.id,
        )
        self.db.publics[uid] = public
        return _json(200, public.body())

    async def update_public(self, request: web.Request) -> web.Response:
        denied = self._require_admin(request)
        if denied:
            return denied
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        dashboard_uid, uid = request.match_info["dashboard_uid"], request.match_info["uid"]
        if not UID_RE.fullmatch(dashboard_uid) or not UID_RE.fullmatch(uid):
            return _pd_error(400, "invalidUid", "invalid Uid")
        if dashboard_uid not in self.db.dashboards:
            return _pd_error(404, "dashboardNotFound", "Dashboard not found")
        public = self.db.publics.get(uid)
        if public is None or public.dashboard_uid != dashboard_uid:
            return _pd_error(404, "notFound", "Public dashboard not found")
        if "share" in body and body["share"] != "public":
            return _pd_error(400, "invalidShareType", "Invalid share type")
        for key, attr in (
            ("isEnabled", "is_enabled"),
            ("timeSelectionEnabled", "time_selection_enabled"),
            ("annotationsEnabled", "annotations_enabled"),
        ):
            if key in body:
                setattr(public, attr, bool(body[key]))
        public.updated_by, public.updated_at = self._user(request).id, rfc3339_now()
        return _json(200, public.body())

    async def delete_public(self, request: web.Request) -> web.Response:
        denied = self._require_admin(request)
        if denied:
            return denied
        dashboard_uid, uid = request.match_info["dashboard_uid"], request.match_info["uid"]
        if not UID_RE.fullmatch(dashboard_uid) or not UID_RE.fullmatch(uid):
            return _pd_error(400, "invalidUid", "invalid Uid")
        public = self.db.publics.get(uid)
        if public is None or public.dashboard_uid != dashboard_uid:
            return _pd_error(404, "notFound", "Public dashboard not found")
        del self.db.publics[uid]
        return web.Response(status=200)  # empty body

    def _public_dashboard(self, token: str) -> Dashboard | web.Response:
        """The dashboard an anonymous viewer may see under `token`, or Grafana's refusal."""
        public = self.db.public_by_token(token)
        if public is None:
            return _pd_error(404, "notFound", "Public dashboard not found")
        if not public.is_enabled:
            return _pd_error(403, "notEnabled", "Public dashboard paused")
        dashboard = self.db.dashboards.get(public.dashboard_uid)
        if dashboard is None:
            return _pd_error(404, "dashboardNotFound", "Dashboard not found")
        return dashboard

    async def view_public(self, request: web.Request) -> web.Response:
        dashboard = self._public_dashboard(request.match_info["token"])
        if isinstance(dashboard, web.Response):
            return dashboard
        return _json(
            200,
            {
                "meta": {"publicDashboardEnabled": True, "slug": dashboard.slug(), "type": "db"},
                "dashboard": {**dashboard.data, "uid": dashboard.uid, "version": dashboard.version},
            },
        )

    async def query_public(self, request: web.Request) -> web.Response:
        dashboard = self._public_dashboard(request.match_info["token"])
        if isinstance(dashboard, web.Response):
            return dashboard
        try:
            panel_id = int(request.match_info["panel_id"])
        except ValueError:
            return _pd_error(400, "panelIdInvalid", "invalid panel id")
        for panel in dashboard.data.get("panels", []):
            if isinstance(panel, dict) and panel.get("id") == panel_id:
                results: dict[str, Any] = {
                    t.get("refId", "A"): {"status": 200, "frames": [], "expr": t.get("expr")}
                    for t in panel.get("targets", [])
                    if isinstance(t, dict)
                }
                return _json(200, {"results": results})
        return _pd_error(404, "panelNotFound", "Panel not found")
