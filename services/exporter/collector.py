"""`/metrics`, built at scrape time from the latest reading of every device.

A custom collector in the Prometheus sense: nothing is kept as Gauge objects;
each scrape walks the fleet state once per family and writes the text
exposition format (0.0.4) directly. Going through prometheus_client's
`GaugeMetricFamily` + `generate_latest` builds an object and escapes the labels
of every sample on every scrape: 2.3 s at 10,000 devices, against a 1 s budget
(docs/exporter.md). Here a device's label text is escaped once when its
hostname changes, and each sample is one f-string. prometheus_client still renders the
exporter's own process metrics, appended at the end.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from shared.fleet import DeviceFigures, fleet_totals

from . import families as f
from .hostnames import Claim, assign_prefixes
from .state import HASHRATE, POWER, Device, FleetState, escape_label

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ACCEPTED = [c.attr for c in f.COUNTS].index("shares_accepted")
REJECTED = [c.attr for c in f.COUNTS].index("shares_rejected")


def _header(name: str, kind: str, help_text: str) -> str:
    help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


class FleetCollector:
    """Renders the fleet state; one per exporter."""

    def __init__(
        self,
        state: FleetState,
        *,
        per_host_names: bool = True,
        overview: bool = True,
        ready: Callable[[], bool] = lambda: True,
        process_metrics: bool = True,
    ) -> None:
        self.state = state
        self.per_host_names = per_host_names
        self.overview = overview
        self._ready = ready
        self.last_render_seconds = 0.0
        self._process = CollectorRegistry(auto_describe=True)
        if process_metrics:
            ProcessCollector(registry=self._process)
            PlatformCollector(registry=self._process)
            GCCollector(registry=self._process)
        own = {m.name for m in self._process.collect()}
        self._reserved = f.all_family_names() | own | {f"{n}_total" for n in own}
        self._prefixes: tuple[int, dict[str, str]] = (-1, {})

    def render(self, now: float | None = None) -> bytes:
        # A render makes ~40 short-lived strings per device and no cycles: pausing the
        # cyclic GC saves it from rescanning the whole fleet state several times over.
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._render(now)
        finally:
            if paused:
                gc.enable()

    def _render(self, now: float | None) -> bytes:
        started = time.perf_counter()
        now = time.time() if now is None else now
        state = self.state
        state.prune(now)
        devices = list(state.devices.values())
        up = [state.is_online(d, now) for d in devices]  # once per device, in `devices` order
        online = [d for d, is_up in zip(devices, up, strict=True) if is_up]
        out: list[str] = []
        self._measures(out, online)
        self._counts(out, devices)
        self._device_families(out, devices, up)
        if self.per_host_names:
            self._per_host(out, devices, online)
        if self.overview:
            self._overview(out, devices, up)
        self._self_metrics(out, len(devices))
        body = "".join(out).encode()
        self.last_render_seconds = time.perf_counter() - started
        return body + generate_latest(self._process)

    # --- per device, labelled ---------------------------------------------

    def _measures(self, out: list[str], online: list[Device]) -> None:
        for i, m in enumerate(f.MEASURES):
            name = m.name
            out.append(_header(name, "gauge", m.help))
            out.extend(
                f"{name}{{{d.labels}}} {v}\n" for d in online if (v := d.values[i]) is not None
            )

    def _counts(self, out: list[str], devices: list[Device]) -> None:
        # A count is cumulative: still true while the device is offline, so it stays.
        for i, c in enumerate(f.COUNTS):
            name = c.name
            out.append(_header(name, "counter", c.help))
            out.extend(
                f"{name}{{{d.labels}}} {v}\n" for d in devices if (v := d.counts[i]) is not None
            )

    def _device_families(self, out: list[str], devices: list[Device], up: list[bool]) -> None:
        kinds = {name: (kind, help_text) for name, kind, help_text in f.DEVICE_FAMILIES}

        out.append(_header(f.DEVICE_UP, *kinds[f.DEVICE_UP]))
        out.extend(
            f"{f.DEVICE_UP}{{{d.labels}}} {1 if is_up else 0}\n"
            for d, is_up in zip(devices, up, strict=True)
        )
        out.append(_header(f.DEVICE_INFO, *kinds[f.DEVICE_INFO]))
        out.extend(f"{f.DEVICE_INFO}{{{d.labels},{d.info}}} 1\n" for d in devices)
        out.append(_header(f.DEVICE_LAST_SUCCESS, *kinds[f.DEVICE_LAST_SUCCESS]))
        out.extend(
            f"{f.DEVICE_LAST_SUCCESS}{{{d.labels}}} {d.last_ok_at}\n"
            for d in devices if d.last_ok_at is not None
        )
        out.append(_header(f.DEVICE_REBOOTS, *kinds[f.DEVICE_REBOOTS]))
        out.extend(f"{f.DEVICE_REBOOTS}{{{d.labels}}} {d.reboots}\n" for d in devices)
        out.append(_header(f.DEVICE_POLL_ERRORS, *kinds[f.DEVICE_POLL_ERRORS]))
        out.extend(
            f'{f.DEVICE_POLL_ERRORS}{{{d.labels},error="{kind}"}} {n}\n'
            for d in devices for kind, n in d.poll_errors.items()
        )
        out.append(_header(f.INVALID_FIELDS, *kinds[f.INVALID_FIELDS]))
        out.extend(
            f'{f.INVALID_FIELDS}{{{d.labels},field="{escape_label(field)}"}} {n}\n'
            for d in devices for field, n in d.invalid_fields.items()
        )

    # --- per device, the reference's per-host names ------------------------

    def prefixes(self) -> dict[str, str]:
        """device id -> per-host name prefix, recomputed only when hostnames or the fleet change."""
        version, prefixes = self._prefixes
        if version != self.state.naming_version:
            state = self.state
            claims = [
                Claim(state.registered_at(d.device_id), d.device_id, d.hostname or None)
                for d in state.devices.values()
            ]
            prefixes = assign_prefixes(claims, f.HOST_SUFFIXES, self._reserved)
            self._prefixes = (state.naming_version, prefixes)
        return prefixes

    def _per_host(self, out: list[str], devices: list[Device], online: list[Device]) -> None:
        prefixes = self.prefixes()
        gauges = [(i, m.host_suffix) for i, m in enumerate(f.MEASURES) if m.host_suffix]
        counters = [(i, c.host_suffix) for i, c in enumerate(f.COUNTS) if c.host_suffix]
        for d in online:
            p = prefixes[d.device_id]
            out.extend(
                f"# TYPE {p}{suffix} gauge\n{p}{suffix} {v}\n"
                for i, suffix in gauges if (v := d.values[i]) is not None
            )
        for d in devices:
            p = prefixes[d.device_id]
            out.extend(
                f"# TYPE {p}{suffix} counter\n{p}{suffix} {v}\n"
                for i, suffix in counters if (v := d.counts[i]) is not None
            )

    # --- the overview ---------------------------------------------------------

    def _overview(self, out: list[str], devices: list[Device], up: list[bool]) -> None:
        """The fleet rules' totals (shared/fleet.py), the numbers the recording rules compute too."""
        totals = fleet_totals(
            DeviceFigures(
                is_up, d.values[HASHRATE], d.values[POWER], d.firmware_version, d.pool,
                d.counts[ACCEPTED], d.counts[REJECTED],
            )
            for d, is_up in zip(devices, up, strict=True)
        )
        helps = dict(f.OVERVIEW)

        def gauge(name: str, value: float) -> None:
            out.append(f"{_header(name, 'gauge', helps[name])}{name} {value}\n")

        def by_label(name: str, label: str, values: dict[str, int] | dict[str, float]) -> None:
            out.append(_header(name, "gauge", helps[name]))
            out.extend(f'{name}{{{label}="{escape_label(k)}"}} {v}\n' for k, v in values.items())

        gauge("total_hardware", totals.total_hardware)
        gauge("hardware_online", totals.hardware_online)
        gauge("hardware_offline", totals.hardware_offline)
        gauge("total_hashrate", totals.total_hashrate_ghs)
        gauge("average_hashrate", totals.average_hashrate_ghs)
        gauge("total_power_watts", totals.total_power_watts)
        out.append(_header("total_efficiency", "gauge", helps["total_efficiency"]))
        if totals.total_efficiency_jth is not None:  # undefined without hashrate: absent, not 0
            out.append(f"total_efficiency {totals.total_efficiency_jth}\n")
        by_label("firmware_version_distribution", "version", totals.firmware_versions)
        by_label("shares_by_pool_accepted", "pool", totals.shares_accepted_by_pool)
        by_label("shares_by_pool_rejected", "pool", totals.shares_rejected_by_pool)

    # --- the exporter itself ----------------------------------------------------

    def _self_metrics(self, out: list[str], device_count: int) -> None:
        kinds = {name: (kind, help_text) for name, kind, help_text in f.SELF_FAMILIES}
        state = self.state

        def one(name: str, value: float) -> None:
            out.append(f"{_header(name, *kinds[name])}{name} {value}\n")

        one("pluto_exporter_readings_total", state.readings_applied)
        name = "pluto_exporter_rejected_messages_total"
        out.append(_header(name, *kinds[name]))
        out.extend(f'{name}{{reason="{r}"}} {n}\n' for r, n in state.rejected.items())
        one("pluto_exporter_devices", device_count)
        one("pluto_exporter_ready", 1 if self._ready() else 0)
        one("pluto_exporter_render_seconds", self.last_render_seconds)
