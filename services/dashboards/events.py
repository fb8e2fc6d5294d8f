"""Dashboard events out: DashboardState on `pluto.dashboards.<key>.published|unpublished`.

Published to JetStream (PLUTO_DASHBOARDS, last message per subject) and
acknowledged by the server before the flow counts as done, so the gateway can
answer "which dashboards, which URLs" without ever calling Grafana.
"""

from __future__ import annotations

import time

from nats.js import JetStreamContext

from services.dashboards.grafana import PublicDashboard
from shared import streams, subjects
from shared.models import DashboardState


class Announcer:
    def __init__(self, js: JetStreamContext, public_path_prefix: str) -> None:
        self._js = js
        self._prefix = public_path_prefix.rstrip("/")

    def public_path(self, access_token: str) -> str:
        return f"{self._prefix}/{access_token}"

    async def published(self, key: str, uid: str, title: str, public: PublicDashboard) -> DashboardState:
        state = DashboardState(
            kind="published",
            device_id=key,
            dashboard_uid=uid,
            title=title,
            public_uid=public.uid,
            access_token=public.accessToken,
            public_path=self.public_path(public.accessToken),
            created_at=public.createdAt.timestamp() if public.createdAt else None,
            updated_at=time.time(),
        )
        await self._emit(key, state)
        return state

    async def unpublished(self, key: str, uid: str, title: str) -> DashboardState:
        state = DashboardState(
            kind="unpublished", device_id=key, dashboard_uid=uid, title=title, updated_at=time.time()
        )
        await self._emit(key, state)
        return state

    async def _emit(self, key: str, state: DashboardState) -> None:
        await self._js.publish(
            subjects.dashboard_event(key, state.kind),
            state.model_dump_json().encode(),
            stream=streams.DASHBOARDS,
        )
