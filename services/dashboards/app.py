"""The dashboards service: device events in, published Grafana dashboards out.

A durable JetStream consumer (`pluto-dashboards`, explicit ack) delivers every
device-added and device-removed event. Each one makes that device's dashboard
match the registry (lifecycle.py); the event is acknowledged only once Grafana
has done its part. If Grafana is down, slow or failing, the event is handed
back with a capped, growing delay (a JetStream nak) and the service keeps
running: nothing is lost, nothing is dropped but bad input, which is logged
once. Beside it, a reconcile loop (at start, then every `reconcile_interval`,
and as soon as Grafana answers again) publishes the overview and repairs drift.
`/healthz` and `/readyz` (shared/health.py) say whether NATS is connected and the
consumer running, whether Grafana answers, and how much work waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import AsyncIterator, Callable

from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy

from services.dashboards.events import Announcer
from services.dashboards.files import DashboardFolder
from services.dashboards.grafana import GrafanaClient, GrafanaError
from services.dashboards.lifecycle import Lifecycle
from services.dashboards.loader import Loader, LoadTimeout
from services.dashboards.reconcile import Reconciler, Report
from services.dashboards.registry import BadEvent, Registry, parse_event
from services.dashboards.render import TEMPLATES, Renderer, RenderError
from services.dashboards.retry import Backoff, OnceLog
from services.dashboards.settings import DashboardsSettings
from services.dashboards.tokens import resolve_secret
from shared import streams, subjects
from shared.bus import jetstream, make_broker, prepare_bus
from shared.health import Health, HealthServer, nats_connected
from shared.ids import InvalidDeviceId
from shared.subjects import OVERVIEW_KEY

log = logging.getLogger("services.dashboards")

GRAFANA_DOWN = "grafana-down"
SERVICE_CONTEXT_KEY = "dashboards_service"


class DashboardsService:
    """The parts, built from settings; wired to the bus on start."""

    def __init__(self, settings: DashboardsSettings, broker: NatsBroker) -> None:
        self.settings = settings
        self.broker = broker
        self.notes = OnceLog(log)
        self.backoff = Backoff(settings.retry_initial, settings.retry_max)
        self.grafana = GrafanaClient(
            settings.grafana_url,
            settings.grafana_user,
            auth_header=settings.grafana_auth_header,
            timeout=settings.grafana_timeout,
            origin=settings.grafana_origin,
            cookies=settings.grafana_cookies,
        )
        self.folder = DashboardFolder(settings.dashboards_dir, settings.file_mode)
        self.renderer = Renderer(settings.datasource_uid, templates_dir=settings.templates_dir or TEMPLATES)
        self.loader = Loader(
            self.grafana, reload=settings.reload, timeout=settings.load_timeout, notes=self.notes
        )
        self.secret = resolve_secret(settings)
        self.registry: Registry | None = None
        self.lifecycle: Lifecycle | None = None
        self.reconciler: Reconciler | None = None
        self.passes = 0  # completed reconcile passes
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        # For /healthz, counted as events pass: a probe reads numbers, asks nobody.
        self.events_in_flight = 0
        self._retrying: set[str] = set()  # devices whose last event was handed back
        # Whether the durable consumer delivers; create_app wires it to the subscriber.
        self.consumer_running: Callable[[], bool] = lambda: False
        self.health_endpoint = HealthServer(
            "dashboards", self.health, host=settings.health_host, port=settings.health_port
        )

    # -- start and stop ------------------------------------------------------------------

    async def start(self) -> None:
        """Before the subscriber starts: connect, streams in place, parts wired."""
        await prepare_bus(self.broker)
        js = jetstream(self.broker)
        self.settings.dashboards_dir.mkdir(parents=True, exist_ok=True)
        self.registry = Registry(js)
        self.lifecycle = Lifecycle(
            grafana=self.grafana,
            folder=self.folder,
            renderer=self.renderer,
            loader=self.loader,
            registry=self.registry,
            announcer=Announcer(js, self.settings.public_path_prefix),
            secret=self.secret,
        )
        self.reconciler = Reconciler(
            lifecycle=self.lifecycle,
            registry=self.registry,
            grafana=self.grafana,
            folder=self.folder,
            loader=self.loader,
            concurrency=self.settings.concurrency,
        )
        log.info(
            "dashboards: Grafana %s as %r, folder %s, reload %s",
            self.settings.grafana_url,
            self.settings.grafana_user,
            self.settings.dashboards_dir,
            "on" if self.settings.reload else "off",
        )

    async def started(self) -> None:
        self._loop_task = asyncio.create_task(self._reconcile_forever(), name="reconcile")

    async def stop(self) -> None:
        """Before the subscriber stops: no new reconcile pass."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task

    async def close(self) -> None:
        """After the subscriber stopped: nobody uses Grafana any more."""
        await self.loader.close()
        await self.grafana.close()

    # -- device events -------------------------------------------------------------------

    async def on_device_event(self, msg: NatsMessage) -> None:
        raw = msg.raw_message
        try:
            event = parse_event(raw.subject, raw.data)
        except BadEvent as exc:
            log.error("dropping device event (stream seq %s): %s", raw.metadata.sequence.stream, exc)
            await msg.reject()
            return
        self.events_in_flight += 1
        try:
            async with self._heartbeat(msg):
                try:
                    await self._lifecycle().sync(event.id)
                except Exception as exc:
                    delay = self._failed(event.id, exc, raw.metadata.num_delivered)
                    if delay is None:
                        self._retrying.discard(event.id)
                        await msg.reject()
                    else:
                        self._retrying.add(event.id)
                        await msg.nack(delay=delay)
                    return
        finally:
            self.events_in_flight -= 1
        self._retrying.discard(event.id)
        self._healthy()
        await msg.ack()

    @contextlib.asynccontextmanager
    async def _heartbeat(self, msg: NatsMessage) -> AsyncIterator[None]:
        """Tell JetStream we are still on it while a flow waits for Grafana."""
        every = self.settings.ack_wait / 3

        async def beat() -> None:
            while True:
                await asyncio.sleep(every)
                await msg.in_progress()

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- health --------------------------------------------------------------------------

    def health(self) -> Health:
        """Ready while NATS is connected and the consumer delivers; Grafana is a fact only.

        Grafana being down is not a reason to take the service out: it keeps the work
        queued and retries, which is what it should be doing.
        """
        connected = nats_connected(self.broker)
        consuming = self.consumer_running()
        grafana_down = self.notes.active(GRAFANA_DOWN)
        facts = {
            "nats_connected": connected,
            "consumer_running": consuming,
            # None until the first reconcile pass has talked to Grafana
            "grafana_reachable": None if self.passes == 0 and not grafana_down else not grafana_down,
            "events_in_flight": self.events_in_flight,
            "events_awaiting_retry": len(self._retrying),
            "reconcile_passes": self.passes,
        }
        if not connected:
            return Health(ready=False, reason="NATS not connected", facts=facts)
        if not consuming:
            return Health(ready=False, reason="the device-event consumer is not running", facts=facts)
        return Health(ready=True, facts=facts)

    # -- reconcile -----------------------------------------------------------------------

    def wake(self) -> None:
        """Run a reconcile pass now instead of at the next interval."""
        self._wake.set()

    async def reconcile_now(self) -> Report:
        report = await self._reconciler().run_once()
        for key, exc in report.failed.items():
            self._failed(key, exc, 1)
        return report

    async def _reconcile_forever(self) -> None:
        attempt = 0
        while True:
            self._wake.clear()
            try:
                report = await self.reconcile_now()
            except Exception as exc:
                report = Report(failed={"reconcile": exc})
                self._failed("reconcile", exc, attempt + 1)
            self.passes += 1
            if report.failed:
                attempt += 1
                wait = self.backoff.delay(attempt)
            else:
                attempt = 0
                wait = self.settings.reconcile_interval
                self._healthy()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    # -- saying things once ---------------------------------------------------------------

    def _healthy(self) -> None:
        if self.notes.cleared(
            GRAFANA_DOWN,
            "Grafana at %s answers again: retrying queued work",
            self.settings.grafana_url,
        ):
            self.wake()
        self.notes.clear_prefix("grafana-refused:")

    def _failed(self, key: str, exc: BaseException, attempt: int) -> float | None:
        """Log once, and return the retry delay; None means: bad input, drop it."""
        what = "the overview" if key == OVERVIEW_KEY else f"dashboard {key}"
        if isinstance(exc, BadEvent | RenderError | InvalidDeviceId):
            self.notes.problem(f"bad:{key}:{exc}", logging.ERROR, "cannot build %s: %s", what, exc)
            return None
        if isinstance(exc, GrafanaError) and exc.transient:
            self.notes.problem(
                GRAFANA_DOWN,
                logging.WARNING,
                "Grafana at %s is not answering (%s): dashboard work stays queued and is "
                "retried with backoff (at most every %g s)",
                self.settings.grafana_url,
                exc,
                self.settings.retry_max,
            )
        elif isinstance(exc, GrafanaError):
            self.notes.problem(
                f"grafana-refused:{exc.status}:{exc.message_id}",
                logging.ERROR,
                "Grafana refused a call for %s: %s (is %r an org Admin, are public "
                "dashboards enabled?); retrying with backoff",
                what,
                exc,
                self.settings.grafana_user,
            )
        elif isinstance(exc, LoadTimeout):
            self.notes.problem(f"load:{exc.uid}:{exc.revision}", logging.WARNING, "%s", exc)
        else:
            self.notes.problem(
                f"error:{key}:{type(exc).__name__}",
                logging.ERROR,
                "%s failed: %r; retrying with backoff",
                what,
                exc,
                exc_info=True,
            )
        return self.backoff.delay(attempt)

    def _lifecycle(self) -> Lifecycle:
        assert self.lifecycle is not None, "service not started"
        return self.lifecycle

    def _reconciler(self) -> Reconciler:
        assert self.reconciler is not None, "service not started"
        return self.reconciler


def create_app(settings: DashboardsSettings | None = None) -> FastStream:
    """The service as a FastStream app: `async with create_app(s):` or `await app.run()`."""
    settings = settings or DashboardsSettings()
    broker = make_broker(settings, name="dashboards")
    service = DashboardsService(settings, broker)
    with warnings.catch_warnings():
        # FastStream advises pull consumers for scaling out; this service is one writer of
        # one folder by design, and a push consumer delivers without polling latency.
        warnings.filterwarnings("ignore", "The JetStream Push consumer", RuntimeWarning)
        subscriber = broker.subscriber(
            subjects.DEVICES_ALL,
            stream=streams.jstream(streams.DEVICES),
            durable=settings.durable,
            config=ConsumerConfig(
                ack_policy=JsAckPolicy.EXPLICIT,
                ack_wait=settings.ack_wait,
                max_ack_pending=settings.concurrency,
            ),
            deliver_policy=DeliverPolicy.ALL,
            max_workers=settings.concurrency,
            ack_policy=AckPolicy.MANUAL,
            title="dashboards:device-events",
            description="device added/removed -> dashboard published/unpublished",
        )
    subscriber(service.on_device_event)
    service.consumer_running = lambda: subscriber.running
    # The endpoint starts first and stops last: /healthz answers (and /readyz says why
    # not) while NATS is still being reached, and until the very end.
    app = FastStream(
        broker,
        on_startup=[service.health_endpoint.start, service.start],
        after_startup=[service.started],
        on_shutdown=[service.stop],
        after_shutdown=[service.close, service.health_endpoint.stop],
        logger=log,
    )
    app.context.set_global(SERVICE_CONTEXT_KEY, service)
    return app


def service_of(app: FastStream) -> DashboardsService:
    service = app.context.get(SERVICE_CONTEXT_KEY)
    assert isinstance(service, DashboardsService)
    return service
