"""The create, update and delete flows of one dashboard, made idempotent.

`sync(key)` brings one dashboard (a device id, or the overview's key) in line
with the registry: it reads the device's newest event itself, so an old,
redelivered or out-of-order event can only ever cause the right thing.

- publish (device added, or any update): choose the title -> render -> write the
  file atomically -> make Grafana load this revision -> publish with our
  accessToken and `isEnabled: true` -> emit `published` with the public path;
- unpublish (device removed, or unknown): DELETE the public dashboard -> delete
  the file -> emit `unpublished`. What is already gone counts as done.

Every step checks before it acts, so running a flow twice, or after a crash
half-way, converges. One flow at a time per dashboard (a lock per key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from pydantic import SecretStr

from services.dashboards import naming
from services.dashboards.events import Announcer
from services.dashboards.files import DashboardFolder
from services.dashboards.grafana import GrafanaClient, GrafanaError, PublicDashboard
from services.dashboards.loader import Loader
from services.dashboards.registry import Registry
from services.dashboards.render import RenderedDashboard, Renderer
from services.dashboards.tokens import access_token
from shared.models import DashboardState, DeviceAdded
from shared.subjects import OVERVIEW_KEY

log = logging.getLogger(__name__)


class KeyedLocks:
    """One asyncio.Lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Lifecycle:
    def __init__(
        self,
        *,
        grafana: GrafanaClient,
        folder: DashboardFolder,
        renderer: Renderer,
        loader: Loader,
        registry: Registry,
        announcer: Announcer,
        secret: SecretStr,
    ) -> None:
        self._grafana = grafana
        self._folder = folder
        self._renderer = renderer
        self._loader = loader
        self._registry = registry
        self._announcer = announcer
        self._secret = secret
        self._locks = KeyedLocks()
        self._titles: dict[str, str] | None = None  # uid -> title of every file in the folder
        # uid -> a title it gave up, still Grafana's until the renamed file is loaded
        self._releasing: dict[str, str] = {}
        self._titles_lock = asyncio.Lock()

    def token(self, uid: str) -> str:
        return access_token(self._secret, uid)

    # -- the one entry point -------------------------------------------------------------

    async def sync(self, key: str) -> DashboardState:
        """Make dashboard `key` what the registry says it should be; return its state."""
        async with self._locks.hold(key):
            if key == OVERVIEW_KEY:
                return await self._publish(await self._write_overview())
            latest = await self._registry.latest(key)
            if latest is not None and isinstance(latest.event, DeviceAdded):
                return await self._publish(await self._write_device(latest.event))
            return await self._unpublish(key)

    # -- titles and files ----------------------------------------------------------------

    async def refresh_titles(self) -> dict[str, str]:
        """Re-read the folder's titles (files may have been changed by hand)."""
        async with self._titles_lock:
            self._titles = await self._folder.scan()
            return dict(self._titles)

    async def _title_index(self) -> dict[str, str]:
        if self._titles is None:
            self._titles = await self._folder.scan()
        return self._titles

    async def expected(self, event: DeviceAdded | None) -> RenderedDashboard:
        """What a device's (or, for None, the overview's) file should hold now."""
        if event is None:
            return self._renderer.overview()
        async with self._titles_lock:
            title = self._title_for(await self._title_index(), event)
        return self._renderer.device(event.id, title)

    def _title_for(self, titles: dict[str, str], event: DeviceAdded) -> str:
        uid = naming.device_uid(event.id)
        taken = {naming.title_key(t) for u, t in titles.items() if u != uid}
        taken |= {naming.title_key(t) for u, t in self._releasing.items() if u != uid}
        return naming.choose_title(event.hostname, event.id, taken, current=titles.get(uid))

    async def _write_device(self, event: DeviceAdded) -> tuple[RenderedDashboard, bool]:
        uid = naming.device_uid(event.id)
        async with self._titles_lock:  # choose and claim, so two devices never pick one title
            titles = await self._title_index()
            previous = titles.get(uid)
            rendered = self._renderer.device(event.id, self._title_for(titles, event))
            titles[uid] = rendered.title
            if previous is not None and previous != rendered.title:
                self._releasing[uid] = previous
        try:
            written = await self._folder.write(uid, rendered.text)
        except BaseException:
            async with self._titles_lock:
                titles = await self._title_index()
                if previous is None:
                    titles.pop(uid, None)
                else:
                    titles[uid] = previous
            raise
        return rendered, written

    async def _write_overview(self) -> tuple[RenderedDashboard, bool]:
        rendered = self._renderer.overview()
        async with self._titles_lock:
            (await self._title_index())[rendered.uid] = rendered.title
        return rendered, await self._folder.write(rendered.uid, rendered.text)

    # -- publish -------------------------------------------------------------------------

    async def _publish(self, written: tuple[RenderedDashboard, bool]) -> DashboardState:
        rendered, changed = written
        await self._loader.ensure_loaded(rendered.uid, rendered.revision, written=changed)
        async with self._titles_lock:
            self._releasing.pop(rendered.uid, None)  # Grafana holds the new title now
        public = await self.ensure_public(rendered.uid)
        return await self._announcer.published(rendered.key, rendered.uid, rendered.title, public)

    async def ensure_public(self, uid: str) -> PublicDashboard:
        """Public, enabled, with our accessToken: GET, then POST or PATCH only if needed."""
        token = self.token(uid)
        current = await self._grafana.get_public(uid)
        if current is None:
            try:
                return await self._grafana.create_public(uid, token)
            except GrafanaError as exc:
                if exc.is_(400, "dashboardIsPublic"):  # published meanwhile
                    current = await self._grafana.get_public(uid)
                    if current is None:
                        raise
                elif exc.is_(400, "accessTokenExists") or exc.is_(400, "uidExists"):
                    await self._free_token(token)
                    return await self._grafana.create_public(uid, token)
                else:
                    raise
        if current.accessToken != token:
            # published by hand with another token: ours is the URL everyone was given
            log.info("replacing public dashboard %s of %s: foreign accessToken", current.uid, uid)
            await self._grafana.delete_public(uid, current.uid)
            return await self._grafana.create_public(uid, token)
        if not current.isEnabled:
            return await self._grafana.update_public(uid, current.uid, enabled=True)
        return current

    async def _free_token(self, token: str) -> None:
        """Our token is held by a leftover public dashboard (e.g. an orphaned row): drop it."""
        for item in await self._grafana.list_public():
            if item.accessToken == token:
                log.warning(
                    "removing stale public dashboard %s (dashboard %s) that holds our token",
                    item.uid,
                    item.dashboardUid,
                )
                await self._grafana.delete_public(item.dashboardUid, item.uid)

    # -- unpublish -----------------------------------------------------------------------

    async def _unpublish(self, key: str) -> DashboardState:
        uid = naming.uid_of(key)
        current = await self._grafana.get_public(uid)
        if current is not None:
            await self._grafana.delete_public(uid, current.uid)
        async with self._titles_lock:
            title = (await self._title_index()).get(uid) or uid
        if await self._folder.delete(uid):
            with contextlib.suppress(GrafanaError):
                await self._loader.reload()  # so Grafana drops it now, not at its next scan
        async with self._titles_lock:
            (await self._title_index()).pop(uid, None)
            self._releasing.pop(uid, None)  # Grafana deletes before it loads, in every scan
        return await self._announcer.unpublished(key, uid, title)
