"""Compare what should be (the registry) with what is (files, Grafana, our events); repair.

Drift it repairs, each by running the ordinary flow for that dashboard:
- a file missing, changed by hand, or rendered by an older template or service;
- a dashboard Grafana does not hold at the current revision (e.g. it restarted
  with an empty database, or rejected a file);
- a public dashboard missing, paused, or carrying another accessToken;
- our own published/unpublished event missing or out of date;
- a file, public dashboard or published event of a device that is gone.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from services.dashboards import naming
from services.dashboards.files import DashboardFolder
from services.dashboards.grafana import GrafanaClient, PublicDashboardItem
from services.dashboards.lifecycle import Lifecycle
from services.dashboards.loader import Loader
from services.dashboards.registry import Registry
from services.dashboards.render import revision_of
from shared.models import DeviceAdded
from shared.subjects import OVERVIEW_KEY

log = logging.getLogger(__name__)


@dataclass
class Report:
    checked: int = 0
    repaired: set[str] = field(default_factory=set)
    failed: dict[str, BaseException] = field(default_factory=dict)


class Reconciler:
    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        registry: Registry,
        grafana: GrafanaClient,
        folder: DashboardFolder,
        loader: Loader,
        concurrency: int,
    ) -> None:
        self._lifecycle = lifecycle
        self._registry = registry
        self._grafana = grafana
        self._folder = folder
        self._loader = loader
        self._concurrency = concurrency

    async def run_once(self) -> Report:
        """One pass. Raises if Grafana or NATS cannot be read; per-dashboard failures are reported."""
        self._loader.probe_reload_again()
        devices = await self._registry.devices()
        states = await self._registry.dashboard_states()
        files = await self._lifecycle.refresh_titles()
        in_grafana = {hit.uid: hit for hit in await self._grafana.search(tag="pluto")}
        publics: dict[str, PublicDashboardItem] = {}
        for item in await self._grafana.list_public():
            publics[item.dashboardUid] = item

        wanted: dict[str, DeviceAdded | None] = {OVERVIEW_KEY: None, **devices}
        drift: set[str] = set()
        for key, event in wanted.items():
            uid = naming.uid_of(key)
            expected = await self._lifecycle.expected(event)
            token = self._lifecycle.token(uid)
            hit, public, state = in_grafana.get(uid), publics.get(uid), states.get(key)
            if (
                await self._folder.read(uid) != expected.text
                or hit is None
                or revision_of(hit.tags) != expected.revision
                or public is None
                or not public.isEnabled
                or public.accessToken != token
                or state is None
                or state.kind != "published"
                or state.access_token != token
                or state.title != expected.title
            ):
                drift.add(key)

        leftovers = (
            set(files) | set(publics) | {naming.uid_of(k) for k, s in states.items() if s.kind == "published"}
        )
        for uid in leftovers:
            gone = naming.key_of(uid)
            if gone is not None and gone not in wanted:
                drift.add(gone)
                if uid in publics:  # by its own uid: the dashboard itself may be gone already
                    await self._grafana.delete_public(uid, publics[uid].uid)

        report = Report(checked=len(wanted))
        if drift:
            log.info("reconcile: repairing %d of %d dashboards", len(drift), len(wanted))
        await self._repair(drift, report)
        return report

    async def _repair(self, keys: set[str], report: Report) -> None:
        gate = asyncio.Semaphore(self._concurrency)

        async def one(key: str) -> None:
            async with gate:
                try:
                    await self._lifecycle.sync(key)
                except Exception as exc:
                    report.failed[key] = exc
                else:
                    report.repaired.add(key)

        await asyncio.gather(*(one(key) for key in sorted(keys)))
