"""The whole system around the gateway, in the test's event loop: the simulator, the real
poller, exporter and dashboards service, the Grafana double, and the gateway with its
/grafana/ proxy pointing at the double."""

from __future__ import annotations

import random
from pathlib import Path

from faststream import FastStream

from services.exporter.app import ExporterApp
from services.exporter.settings import ExporterSettings
from services.poller.app import create_app as create_poller
from services.poller.settings import PollerSettings
from services.simulator.server import RunningSimulator, start_simulator
from tests.api_helpers import Gateway, api_settings
from tests.bus_helpers import wait_for
from tests.grafana_double import GrafanaDouble
from tests.grafana_double.harness import Service as DashboardsHarness
from tests.grafana_double.harness import settings_for as dashboards_settings

INTERVAL = 0.5  # the poller's interval in these tests


class Stack:
    def __init__(self, nats_url: str, tmp: Path, *, devices: int = 3, exporter: bool = True) -> None:
        self.nats_url, self.tmp, self.devices, self.with_exporter = nats_url, tmp, devices, exporter
        self.simulator: RunningSimulator | None = None
        self.poller: FastStream | None = None
        self.exporter: ExporterApp | None = None
        self.grafana: GrafanaDouble | None = None
        self.dashboards: DashboardsHarness | None = None
        self.gateway: Gateway | None = None

    async def start(self) -> Stack:
        self.simulator = await start_simulator(devices=self.devices, seed=5)
        self.poller = create_poller(
            PollerSettings(
                nats_url=self.nats_url,
                interval_s=INTERVAL,
                timeout_s=0.4,
                jitter=0.1,
                backoff_after=3,
                backoff_max_s=2.0,
            ),
            rng=random.Random(3),
        )
        await self.poller.start()
        if self.with_exporter:
            self.exporter = ExporterApp(
                ExporterSettings(nats_url=self.nats_url, host="127.0.0.1", port=0, poll_interval=INTERVAL)
            )
            await self.exporter.start()
            await self.exporter.wait_ready(30)
        folder = self.tmp / "grafana-dashboards"
        folder.mkdir(parents=True, exist_ok=True)
        self.grafana = GrafanaDouble(folder, scan_interval=0.5)
        await self.grafana.start()
        self.dashboards = await DashboardsHarness(
            dashboards_settings(self.nats_url, self.grafana.url, folder)
        ).start()
        self.gateway = await Gateway(
            api_settings(self.nats_url, grafana_url=self.grafana.url, offline_after=3 * INTERVAL)
        ).start()
        await wait_for(self.gateway.ready, what="gateway caught up")
        return self

    @property
    def api(self) -> Gateway:
        assert self.gateway is not None
        return self.gateway

    @property
    def sim(self) -> RunningSimulator:
        assert self.simulator is not None
        return self.simulator

    async def restart_gateway(self) -> Gateway:
        assert self.gateway is not None
        settings = self.gateway.settings
        await self.gateway.stop()
        self.gateway = await Gateway(settings).start()
        await wait_for(self.gateway.ready, what="gateway caught up after restart")
        return self.gateway

    async def stop(self) -> None:
        for part in (self.gateway, self.dashboards, self.exporter):
            if part is not None:
                await part.stop()
        if self.poller is not None:
            await self.poller.stop()
        if self.grafana is not None:
            await self.grafana.stop()
        if self.simulator is not None:
            await self.simulator.stop()
