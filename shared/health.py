"""A health endpoint for the services that serve no HTTP of their own (poller, dashboards).

- `GET /healthz`, liveness: 200 whenever the event loop gets to run the handler, with
  the service's facts. It says nothing bad about NATS or Grafana: restarting the
  process would not bring those back.
- `GET /readyz`, readiness: 200 when the service says it is ready, else 503 with the
  reason ("NATS not connected", "replaying the device registry", ...).

The service passes a cheap callable returning its `Health`; it is called once per
request, so a probe every few seconds costs nothing next to the service's own work.
`HealthServer` is started and stopped by the service's lifecycle (FastStream hooks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from faststream.nats import NatsBroker

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Health:
    """What a service says about itself: ready or why not, and a few facts for operators."""

    ready: bool
    reason: str = ""  # why not ready; empty when ready
    facts: Mapping[str, Any] = field(default_factory=dict)


HealthCheck = Callable[[], Health]


@dataclass(frozen=True, slots=True)
class _Probe:
    service: str
    check: HealthCheck
    started_at: float  # time.monotonic() when the app was built

    def health(self) -> Health:
        try:
            return self.check()
        except Exception as exc:
            # A bug in the facts must not fail liveness (the orchestrator would restart a
            # working service over it); it shows as not ready, and in the log.
            log.exception("%s: the health check failed", self.service)
            return Health(ready=False, reason=f"health check failed: {exc!r}")


PROBE = web.AppKey("pluto_health_probe", _Probe)


async def _healthz(request: web.Request) -> web.Response:
    probe = request.app[PROBE]
    health = probe.health()
    body: dict[str, Any] = {
        **health.facts,
        # written after the facts, so a fact can never pass for one of these
        "service": probe.service,
        "alive": True,
        "ready": health.ready,
        "reason": health.reason or None,
        "uptime_s": round(time.monotonic() - probe.started_at, 3),
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def _readyz(request: web.Request) -> web.Response:
    probe = request.app[PROBE]
    health = probe.health()
    body: dict[str, Any] = {"service": probe.service, "ready": health.ready}
    if not health.ready:
        body["reason"] = health.reason or "not ready"
    return web.json_response(body, status=200 if health.ready else 503, headers={"Cache-Control": "no-store"})


def create_health_app(service: str, check: HealthCheck) -> web.Application:
    """The aiohttp application: `/healthz` and `/readyz` over `check`."""
    app = web.Application()
    app[PROBE] = _Probe(service, check, time.monotonic())
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


class HealthServer:
    """Serves `create_health_app` on host:port (port 0: any free port, see `port`)."""

    def __init__(self, service: str, check: HealthCheck, *, host: str, port: int) -> None:
        self.service = service
        self.host = host
        self._requested_port = port
        self._check = check
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port while serving

    @property
    def url(self) -> str | None:
        """Base URL for a local client, None when not serving."""
        if self.port is None:
            return None
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}" if ":" not in host else f"http://[{host}]:{self.port}"

    async def start(self) -> None:
        # No access log: probes every few seconds would drown the service's own lines.
        runner = web.AppRunner(create_health_app(self.service, self._check), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._requested_port).start()
        except OSError as exc:
            # The endpoint watches the service; it must not be the reason the service stops.
            # A probe that cannot connect still says so (and restarts the pod on Kubernetes).
            await runner.cleanup()
            log.error(
                "%s: cannot serve /healthz and /readyz on %s:%d (%s); running without them",
                self.service,
                self.host,
                self._requested_port,
                exc,
            )
            return
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("%s: health at %s/healthz and /readyz", self.service, self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None
        self.port = None


def nats_connected(broker: NatsBroker) -> bool:
    """The broker's nats-py connection is up right now (False before the first connect)."""
    # connection_state is falsy until the broker has connected; `connection` raises then.
    return bool(broker.config.connection_state) and broker.connection.is_connected
