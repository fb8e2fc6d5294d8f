"""Make Grafana load a written dashboard file now, and know when it has.

With the reload permission (Grafana server admin), one
`POST /api/admin/provisioning/dashboards/reload` rescans the folder. Reloads
are coalesced: callers that ask while a reload is running share the next one,
so 500 new files cost a handful of rescans, not 500. Without the permission
the file provider's own scan (every `updateIntervalSeconds`, 10 s by default)
does it. Either way Grafana is then polled with backoff until it holds this
exact revision, or a deadline passes: never a fixed sleep. One watcher polls
for every waiting dashboard at once (`GET /api/search?dashboardUIDs=...`, 100
uids a request), so 500 dashboards waiting for a 10 s scan cost a request or
five per poll, not 500.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from services.dashboards.grafana import GrafanaClient, GrafanaError
from services.dashboards.render import revision_of
from services.dashboards.retry import OnceLog

log = logging.getLogger(__name__)

_DENIED = "reload-denied"
SEARCH_CHUNK = 100  # uids per search request
POLL_INITIAL = 0.02
POLL_CAP = 0.5


class LoadTimeout(Exception):
    """Grafana did not load a dashboard revision in time (it may have rejected the file)."""

    def __init__(self, uid: str, revision: str, waited: float, reloaded: bool) -> None:
        self.uid = uid
        self.revision = revision
        how = "after a provisioning reload" if reloaded else "waiting for the provisioning scan"
        super().__init__(
            f"Grafana did not load dashboard {uid} revision {revision} within {waited:.0f} s "
            f"({how}); see Grafana's provisioning log for this file"
        )


class Loader:
    def __init__(self, grafana: GrafanaClient, *, reload: bool, timeout: float, notes: OnceLog) -> None:
        self._grafana = grafana
        self._want_reload = reload
        self._reload_allowed: bool | None = None if reload else False
        self._timeout = timeout
        self._notes = notes
        self._next: asyncio.Future[bool] | None = None  # the reload round not yet started
        self._task: asyncio.Task[None] | None = None
        self._waiting: dict[str, list[tuple[str, asyncio.Future[bool]]]] = {}
        self._kick = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None

    @property
    def reload_allowed(self) -> bool | None:
        """True/False once known; None before the first reload."""
        return self._reload_allowed

    def probe_reload_again(self) -> None:
        """Forget a refusal (called by each reconcile): permissions can be fixed at runtime."""
        if self._want_reload and self._reload_allowed is False:
            self._reload_allowed = None

    async def close(self) -> None:
        for task in (self._task, self._watch_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except Exception:  # already handed to the waiters; closing must not fail
                    log.debug("loader task ended with an error", exc_info=True)

    async def ensure_loaded(self, uid: str, revision: str, *, written: bool) -> None:
        """Return once Grafana serves `uid` at `revision`; LoadTimeout or GrafanaError else."""
        if not written:
            found = await self._grafana.get_dashboard(uid)
            if found is not None and revision_of(found.tags) == revision:
                return
        reloaded = await self.reload()
        waiter = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(uid, [])
        waiting.append((revision, waiter))
        self._kick.set()
        if self._watch_task is None or self._watch_task.done():
            self._watch_task = asyncio.create_task(self._watch(), name="grafana-load-watch")
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self._timeout)
        except TimeoutError:
            raise LoadTimeout(uid, revision, self._timeout, reloaded) from None
        finally:
            waiting.remove((revision, waiter))
            if not waiting and self._waiting.get(uid) is waiting:
                del self._waiting[uid]

    async def _watch(self) -> None:
        """Poll Grafana for every waiting dashboard at once, until nobody waits."""
        delay = POLL_INITIAL
        while self._waiting:
            self._kick.clear()
            uids = list(self._waiting)
            try:
                revisions: dict[str, str | None] = {}
                for start in range(0, len(uids), SEARCH_CHUNK):
                    hits = await self._grafana.search(uids=uids[start : start + SEARCH_CHUNK])
                    revisions.update((hit.uid, revision_of(hit.tags)) for hit in hits)
            except GrafanaError as exc:
                for waiting in self._waiting.values():
                    for _, waiter in waiting:
                        if not waiter.done():
                            waiter.set_exception(exc)
                            waiter.add_done_callback(_consume)
                return
            for uid, waiting in self._waiting.items():
                for revision, waiter in waiting:
                    if revisions.get(uid) == revision and not waiter.done():
                        waiter.set_result(True)
            try:  # a new waiter polls now; otherwise back off
                await asyncio.wait_for(self._kick.wait(), delay)
                delay = POLL_INITIAL
            except TimeoutError:
                delay = min(delay * 1.6, POLL_CAP)

    async def reload(self) -> bool:
        """A rescan that starts after this call: True when done, False when not permitted."""
        if self._reload_allowed is False:
            return False
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            self._next.add_done_callback(_consume)
        round_ = self._next
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run_reloads(), name="grafana-reload")
        return await asyncio.shield(round_)

    async def _run_reloads(self) -> None:
        while self._next is not None:
            round_, self._next = self._next, None  # later callers wait for the next round
            try:
                await self._grafana.reload_provisioning()
            except GrafanaError as exc:
                if exc.status in (401, 403, 404):
                    self._refused(exc)
                    round_.set_result(False)
                else:
                    round_.set_exception(exc)
            except BaseException as exc:
                round_.set_exception(exc)
                raise
            else:
                self._reload_allowed = True
                self._notes.cleared(_DENIED, "Grafana accepts provisioning reloads again")
                round_.set_result(True)

    def _refused(self, exc: GrafanaError) -> None:
        self._reload_allowed = False
        self._notes.problem(
            _DENIED,
            logging.WARNING,
            "Grafana refused the provisioning reload (%s): it needs a Grafana server admin "
            "login; waiting for Grafana's own scan of the folder instead (every "
            "updateIntervalSeconds, 10 s by default)",
            exc,
        )


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark a round's exception as retrieved even if every waiter was cancelled."""
    if not future.cancelled():
        future.exception()
