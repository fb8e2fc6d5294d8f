"""A small Grafana HTTP client: the calls the dashboards service makes, typed.

- Base URL with its sub-path (`http://grafana:3000/grafana`); redirects are not
  followed, a 301 means the sub-path is missing from the setting.
- Auth proxy: the configured login in `X-WEBAUTH-USER` on every call but the
  health check. No Origin header and no cookie jar unless configured, so
  Grafana's CSRF check never has anything to object to.
- A timeout on every request. Errors carry the status and Grafana's
  `messageId`; callers match on those, never on message text.
- Responses are pydantic models that ignore unknown keys. DELETE answers have
  an empty body and are not parsed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError

MESSAGE_ID_PREFIX = "publicdashboards."
M = TypeVar("M", bound=BaseModel)


class GrafanaError(Exception):
    """Grafana answered with an error (or not at all: status 0)."""

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        message_id: str | None = None,
        message: str = "",
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message_id = message_id
        self.message = message
        detail = f" {message_id}" if message_id else ""
        super().__init__(f"{method} {path}: {status}{detail} {message}".rstrip())

    @property
    def transient(self) -> bool:
        """Worth retrying as is: Grafana is down, overloaded or failing inside."""
        return self.status == 0 or self.status >= 500 or self.status == 429

    def is_(self, status: int, message_id: str | None = None) -> bool:
        """Match on status and (short or full) messageId, e.g. is_(400, "dashboardIsPublic")."""
        if self.status != status:
            return False
        if message_id is None:
            return True
        return self.message_id in (message_id, MESSAGE_ID_PREFIX + message_id)


class GrafanaUnavailable(GrafanaError):
    """No HTTP answer: connection refused, reset, or timed out."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Health(_Model):
    database: str
    version: str | None = None
    commit: str | None = None


class DashboardMeta(_Model):
    provisioned: bool = False
    provisionedExternalId: str | None = None
    publicDashboardEnabled: bool | None = None


class DashboardLookup(_Model):
    dashboard: dict[str, Any]
    meta: DashboardMeta = DashboardMeta()

    @property
    def tags(self) -> list[str]:
        tags = self.dashboard.get("tags")
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


class SearchHit(_Model):
    uid: str
    title: str = ""
    type: str = ""
    url: str = ""
    tags: list[str] = []


class PublicDashboard(_Model):
    uid: str
    dashboardUid: str
    accessToken: str
    isEnabled: bool = False
    timeSelectionEnabled: bool = False
    annotationsEnabled: bool = False
    share: str | None = None
    createdAt: datetime | None = None
    updatedAt: datetime | None = None


class PublicDashboardItem(_Model):
    uid: str
    dashboardUid: str
    accessToken: str
    title: str = ""
    isEnabled: bool = False


class PublicDashboardPage(_Model):
    publicDashboards: list[PublicDashboardItem] = []
    totalCount: int = 0
    page: int = 1
    perPage: int = 0


def _path(*parts: str) -> str:
    return "/".join(quote(p, safe="") for p in parts)


class GrafanaClient:
    def __init__(
        self,
        base_url: str,
        user: str,
        *,
        auth_header: str = "X-WEBAUTH-USER",
        timeout: float = 10.0,
        origin: str | None = None,
        cookies: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._user = user
        self._auth_header = auth_header
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._origin = origin
        self._cookies = cookies
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                cookie_jar=None if self._cookies else aiohttp.DummyCookieJar(),
                headers={"Origin": self._origin} if self._origin else None,
            )
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: list[tuple[str, str]] | None = None,
        auth: bool = True,
        parse: bool = True,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if auth:
            headers[self._auth_header] = self._user
        try:
            async with self._client().request(
                method,
                self.base_url + path,
                json=body,
                params=params,
                headers=headers,
                allow_redirects=False,
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise GrafanaUnavailable(method, path, 0, message=f"{type(exc).__name__}: {exc}") from exc
        if status >= 300:
            raise _error(method, path, status, text)
        if not parse or not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise GrafanaError(method, path, status, message=f"answer is not JSON: {text[:200]!r}") from exc

    def _model(self, model: type[M], data: Any, method: str, path: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise GrafanaError(method, path, 200, message=f"unexpected answer: {exc}") from exc

    # -- health, dashboards, provisioning -----------------------------------------------

    async def health(self) -> Health:
        data = await self._call("GET", "/api/health", auth=False)
        return self._model(Health, data, "GET", "/api/health")

    async def get_dashboard(self, uid: str) -> DashboardLookup | None:
        path = "/api/dashboards/uid/" + _path(uid)
        try:
            data = await self._call("GET", path)
        except GrafanaError as exc:
            if exc.status == 404:
                return None
            raise
        return self._model(DashboardLookup, data, "GET", path)

    async def search(
        self, *, tag: str | None = None, uids: list[str] | None = None, limit: int = 5000
    ) -> list[SearchHit]:
        params = [("type", "dash-db"), ("limit", str(limit))]
        if tag:
            params.append(("tag", tag))
        params.extend(("dashboardUIDs", uid) for uid in uids or ())
        data = await self._call("GET", "/api/search", params=params)
        if not isinstance(data, list):
            raise GrafanaError("GET", "/api/search", 200, message="answer is not a list")
        return [self._model(SearchHit, hit, "GET", "/api/search") for hit in data]

    async def reload_provisioning(self) -> None:
        """Rescan the provisioned folders now (Grafana server admin only)."""
        await self._call("POST", "/api/admin/provisioning/dashboards/reload")

    # -- public dashboards ---------------------------------------------------------------

    async def get_public(self, dashboard_uid: str) -> PublicDashboard | None:
        path = f"/api/dashboards/uid/{_path(dashboard_uid)}/public-dashboards"
        try:
            data = await self._call("GET", path)
        except GrafanaError as exc:
            if exc.is_(404, "notFound") or exc.is_(404, "dashboardNotFound"):
                return None
            raise
        if not isinstance(data, dict) or not data.get("uid"):
            return None  # some versions answer 200 with an empty body or object when there is none
        return self._model(PublicDashboard, data, "GET", path)

    async def create_public(
        self, dashboard_uid: str, access_token: str, *, enabled: bool = True
    ) -> PublicDashboard:
        path = f"/api/dashboards/uid/{_path(dashboard_uid)}/public-dashboards"
        body = {
            "accessToken": access_token,
            "isEnabled": enabled,
            "timeSelectionEnabled": False,
            "annotationsEnabled": False,
            "share": "public",
        }
        data = await self._call("POST", path, body=body)
        return self._model(PublicDashboard, data, "POST", path)

    async def update_public(self, dashboard_uid: str, public_uid: str, *, enabled: bool) -> PublicDashboard:
        path = f"/api/dashboards/uid/{_path(dashboard_uid)}/public-dashboards/{_path(public_uid)}"
        data = await self._call("PATCH", path, body={"isEnabled": enabled})
        return self._model(PublicDashboard, data, "PATCH", path)

    async def delete_public(self, dashboard_uid: str, public_uid: str) -> bool:
        """Delete; False when it was already gone."""
        path = f"/api/dashboards/uid/{_path(dashboard_uid)}/public-dashboards/{_path(public_uid)}"
        try:
            await self._call("DELETE", path, parse=False)
        except GrafanaError as exc:
            if exc.is_(404, "notFound") or exc.is_(404, "dashboardNotFound"):
                return False
            raise
        return True

    async def list_public(self, per_page: int = 1000) -> list[PublicDashboardItem]:
        path = "/api/dashboards/public-dashboards"
        found: list[PublicDashboardItem] = []
        page = 1
        while True:
            data = await self._call("GET", path, params=[("page", str(page)), ("perpage", str(per_page))])
            batch = self._model(PublicDashboardPage, data or {}, "GET", path)
            found.extend(batch.publicDashboards)
            if not batch.publicDashboards or len(found) >= batch.totalCount:
                return found
            page += 1


def _error(method: str, path: str, status: int, text: str) -> GrafanaError:
    message_id: str | None = None
    message = text.strip()[:300]
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        raw_id = body.get("messageId")
        message_id = raw_id if isinstance(raw_id, str) else None
        message = str(body.get("message") or body.get("title") or message)[:300]
    if 300 <= status < 400:
        message = f"redirected ({message}); does grafana_url carry Grafana's sub-path?"
    kind = GrafanaUnavailable if status in (502, 503, 504) else GrafanaError
    return kind(method, path, status, message_id, message)
