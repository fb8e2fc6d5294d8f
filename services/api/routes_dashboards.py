"""Dashboards: where each device's and the overview's public dashboard can be embedded.

Answered from the dashboard states the dashboards service announces on the bus
(PLUTO_DASHBOARDS), never by asking Grafana: a page view costs Grafana nothing
(the reference published dashboards as a side effect of `GET /dashboards`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from aiohttp import web
from pydantic import TypeAdapter

from services.api.appkeys import SETTINGS, VIEWS
from services.api.models import (
    DashboardLink,
    DashboardList,
    GrafanaData,
    ReferenceDashboard,
    Theme,
    ThemeQuery,
)
from services.api.openapi import Reply, Route, problem
from services.api.params import DEVICE_ID, device_id_param
from services.api.payloads import parse_query, reply, reply_raw
from services.api.problems import Problem
from services.api.views import Views
from shared.models import DashboardState
from shared.subjects import OVERVIEW_KEY

# What may go into an iframe's src: a plain absolute path (never a scheme, never a quote).
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9/_.~-]{1,300}$")
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_REFERENCE_LIST: TypeAdapter[list[ReferenceDashboard]] = TypeAdapter(list[ReferenceDashboard])


def public_path(state: DashboardState, prefix: str) -> str | None:
    """The browser path of a published dashboard; None when the announcement has no usable one."""
    if state.kind != "published":
        return None
    if state.public_path and _SAFE_PATH.fullmatch(state.public_path) and ".." not in state.public_path:
        return state.public_path
    if state.access_token and _SAFE_TOKEN.fullmatch(state.access_token):
        return f"{prefix}/{state.access_token}"
    return None


def embed_url(path: str, theme: Theme) -> str:
    return f"{path}?orgId=1&theme={theme.value}&refresh=5s"


def link(views: Views, key: str, theme: Theme, prefix: str) -> DashboardLink:
    state = views.dashboard(key)
    device_id = None if key == OVERVIEW_KEY else key
    if state is None:
        return DashboardLink(
            key=key,
            device_id=device_id,
            status="pending",
            title=None,
            dashboard_uid=None,
            url=None,
            theme=theme,
            updated_at=None,
        )
    path = public_path(state, prefix)
    return DashboardLink(
        key=key,
        device_id=device_id,
        status="published"
        if path is not None
        else ("unpublished" if state.kind == "unpublished" else "pending"),
        title=state.title,
        dashboard_uid=state.dashboard_uid,
        url=embed_url(path, theme) if path is not None else None,
        theme=theme,
        updated_at=state.updated_at,
    )


def _rfc3339(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def reference_entry(state: DashboardState, prefix: str) -> ReferenceDashboard | None:
    path = public_path(state, prefix)
    token = state.access_token or (path.rsplit("/", 1)[1] if path else None)
    if path is None or token is None:
        return None
    return ReferenceDashboard(
        name=state.title,
        uid=state.dashboard_uid,
        publicUrl=f"{path}?orgId=1",
        grafanaData=GrafanaData(
            uid=state.public_uid,
            dashboardUid=state.dashboard_uid,
            accessToken=token,
            isEnabled=True,
            createdAt=_rfc3339(state.created_at),
            updatedAt=_rfc3339(state.updated_at) or "",
        ),
    )


# --- handlers ----------------------------------------------------------------------------


async def list_dashboards(request: web.Request) -> web.Response:
    theme = parse_query(request, ThemeQuery).theme
    views, prefix = request.app[VIEWS], request.app[SETTINGS].public_path_prefix
    keys = [OVERVIEW_KEY, *views.ordered_ids()]
    return reply(DashboardList(items=[link(views, key, theme, prefix) for key in keys]))


async def overview_dashboard(request: web.Request) -> web.Response:
    theme = parse_query(request, ThemeQuery).theme
    return reply(link(request.app[VIEWS], OVERVIEW_KEY, theme, request.app[SETTINGS].public_path_prefix))


async def device_dashboard(request: web.Request) -> web.Response:
    device_id = device_id_param(request)
    theme = parse_query(request, ThemeQuery).theme
    views = request.app[VIEWS]
    if device_id not in views.devices:
        raise Problem(404, "device_not_found", f"no device {device_id!r} is registered")
    return reply(link(views, device_id, theme, request.app[SETTINGS].public_path_prefix))


async def reference_dashboards(request: web.Request) -> web.Response:
    """The reference Pluto frontend's contract: published dashboards only, overview first."""
    views, prefix = request.app[VIEWS], request.app[SETTINGS].public_path_prefix
    entries = []
    for key in [OVERVIEW_KEY, *views.ordered_ids()]:
        state = views.dashboard(key)
        if state is not None and (entry := reference_entry(state, prefix)) is not None:
            entries.append(entry)
    return reply_raw(_REFERENCE_LIST.dump_json(entries))


def routes() -> list[Route]:
    bad_query = problem("invalid query parameter")
    return [
        Route(
            "GET",
            "/api/v1/dashboards",
            list_dashboards,
            "Every dashboard (the overview first, then each device) with its embeddable URL",
            "dashboards",
            {200: Reply("the dashboards", DashboardList), 422: bad_query},
            query=ThemeQuery,
        ),
        Route(
            "GET",
            "/api/v1/dashboards/overview",
            overview_dashboard,
            "The fleet overview's embeddable URL",
            "dashboards",
            {200: Reply("the overview dashboard", DashboardLink), 422: bad_query},
            query=ThemeQuery,
        ),
        Route(
            "GET",
            "/api/v1/devices/{device_id}/dashboard",
            device_dashboard,
            "One device's embeddable dashboard URL",
            "dashboards",
            {
                200: Reply("the device's dashboard", DashboardLink),
                404: problem("no such device"),
                422: problem("invalid device id or query parameter"),
            },
            query=ThemeQuery,
            path_params=(DEVICE_ID,),
        ),
        Route(
            "GET",
            "/dashboards",
            reference_dashboards,
            "Published dashboards in the reference Pluto frontend's shape",
            "compatibility",
            {200: Reply("published dashboards, overview first", ReferenceDashboard, array=True)},
            description="`publicUrl` is `/grafana/public-dashboards/<accessToken>?orgId=1`; the reference "
            "frontend appends `&theme=<light|dark>&refresh=5s`.",
        ),
    ]
