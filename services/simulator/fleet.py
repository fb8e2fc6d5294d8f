"""The fleet: every simulated device, and the Python control surface tests use."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.simulator.device import SimDevice
from services.simulator.faults import Fault, RebootFault, make_fault
from services.simulator.overrides import Override
from services.simulator.payloads import STATIC_BUILDERS, asic_payload, dumps
from services.simulator.profiles import Generation, make_profile

INFO = "info"
ASIC = "asic"


class UnknownDevice(KeyError):
    """No simulated device has that name."""


class DeviceSummary(BaseModel):
    """One entry of `GET /control/devices`."""

    model_config = ConfigDict(frozen=True)

    name: str
    url: str
    mac: str | None
    firmware: Generation
    fault: dict[str, Any] | None
    rebooting: bool
    overridden: bool
    requests: int


class Fleet:
    def __init__(
        self,
        base_url: str,
        *,
        seed: int | None = None,
        reboot_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.seed = seed
        self.reboot_seconds = reboot_seconds
        self.clock = clock
        # One generator for per-request values: seeded, so a replayed request order
        # gives the same values.
        self.rng = random.Random(seed)
        self._devices: dict[str, SimDevice] = {}
        self._next_index = 1

    # --- membership -------------------------------------------------------------------

    def add(self, count: int) -> list[SimDevice]:
        now = self.clock()
        added = [self._make_device(self._next_index + i, now) for i in range(count)]
        self._next_index += count
        for device in added:
            self._devices[device.name] = device
        return added

    def _make_device(self, index: int, now: float) -> SimDevice:
        profile = make_profile(index, self.seed)
        return SimDevice(
            profile=profile,
            boot_at=now,
            uptime_at_boot=profile.start_uptime,
            accepted_at_boot=profile.start_accepted,
            rejected_at_boot=profile.start_rejected,
            session_best=profile.best_diff * 0.5,
            static_info=STATIC_BUILDERS[profile.generation](profile),
            asic_body=dumps(asic_payload(profile)),
        )

    def remove(self, name: str) -> None:
        """The device disappears: its URLs answer 404 from now on."""
        self.get(name)
        del self._devices[name]

    def lookup(self, name: str) -> SimDevice | None:
        return self._devices.get(name)

    def get(self, name: str) -> SimDevice:
        device = self._devices.get(name)
        if device is None:
            raise UnknownDevice(name)
        return device

    def __len__(self) -> int:
        return len(self._devices)

    @property
    def names(self) -> list[str]:
        return list(self._devices)

    def url(self, name: str) -> str:
        return f"{self.base_url}/d/{name}"

    @property
    def device_urls(self) -> list[str]:
        return [self.url(name) for name in self._devices]

    # --- control ----------------------------------------------------------------------

    def set_fault(self, name: str, mode: str, **params: Any) -> Fault:
        return self.apply_fault(name, make_fault(mode, **params))

    def apply_fault(self, name: str, fault: Fault) -> Fault:
        device = self.get(name)
        if isinstance(fault, RebootFault):
            # A reboot is an event, not a standing condition.
            self.reboot(name, fault.seconds)
        else:
            device.fault = fault
        return fault

    def clear_fault(self, name: str) -> None:
        self.get(name).fault = None

    def set_override(self, name: str, fields: Mapping[str, Any]) -> None:
        """Serve these fields exactly as given from now on; `_remove` lists fields to omit."""
        self.get(name).override = Override.from_mapping(fields)

    def clear_override(self, name: str) -> None:
        self.get(name).override = None

    def set_omit_mac(self, name: str, omit: bool = True) -> None:
        self.get(name).omit_mac = omit

    def reboot(self, name: str, seconds: float | None = None) -> None:
        self.get(name).reboot(self.clock(), self.reboot_seconds if seconds is None else seconds, self.rng)

    def request_count(self, name: str) -> int:
        return self.get(name).requests

    def stats(self) -> dict[str, int]:
        return {name: device.requests for name, device in self._devices.items()}

    def last_body(self, name: str, endpoint: str = INFO) -> Any:
        """The last body served on `endpoint` (info or asic), parsed; None if not JSON."""
        raw = self.get(name).last_bodies.get(endpoint)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def describe(self, name: str) -> DeviceSummary:
        device = self.get(name)
        return DeviceSummary(
            name=name,
            url=self.url(name),
            mac=None if device.omit_mac else device.profile.mac,
            firmware=device.profile.generation,
            fault=device.fault.model_dump(mode="json") if device.fault else None,
            rebooting=device.is_down(self.clock()),
            overridden=device.override is not None,
            requests=device.requests,
        )

    def describe_all(self, names: Iterable[str] | None = None) -> list[DeviceSummary]:
        return [self.describe(name) for name in (self._devices if names is None else names)]


__all__ = ["ASIC", "INFO", "DeviceSummary", "Fleet", "UnknownDevice"]
