"""One simulated device's running state: boot clock, counters, fault, pinned fields."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from services.simulator.faults import Fault
from services.simulator.overrides import Override
from services.simulator.profiles import DeviceProfile


@dataclass(slots=True, eq=False)
class SimDevice:
    profile: DeviceProfile
    # Monotonic clock time the current boot began; in the future while rebooting.
    boot_at: float
    uptime_at_boot: float
    accepted_at_boot: int
    rejected_at_boot: int
    session_best: float
    # Built once: the fields that never change, copied into each payload.
    static_info: dict[str, Any]
    asic_body: bytes
    down_until: float = 0.0
    fault: Fault | None = None
    override: Override | None = None
    omit_mac: bool = False
    requests: int = 0
    # Raw bytes of the last body served per endpoint (None: nothing was sent);
    # parsed only when someone asks, so the hot path stays cheap.
    last_bodies: dict[str, bytes | None] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.profile.name

    def is_down(self, now: float) -> bool:
        return now < self.down_until

    def up_for(self, now: float) -> float:
        """Seconds since the current boot finished (never negative)."""
        return max(0.0, now - self.boot_at)

    def uptime(self, now: float) -> int:
        return int(self.uptime_at_boot + self.up_for(now))

    def shares(self, now: float) -> tuple[int, int]:
        """(accepted, rejected): a pure function of time since boot, so never decreasing."""
        up = self.up_for(now)
        accepted = self.accepted_at_boot + int(self.profile.share_rate * up)
        rejected = self.rejected_at_boot + int(self.profile.share_rate * self.profile.reject_ratio * up)
        return accepted, rejected

    def reboot(self, now: float, seconds: float, rng: random.Random) -> None:
        """Down for `seconds`, then back with uptime and counters from zero."""
        self.down_until = now + seconds
        self.boot_at = self.down_until
        self.uptime_at_boot = 0.0
        self.accepted_at_boot = 0
        self.rejected_at_boot = 0
        self.session_best = self.profile.best_diff * rng.uniform(0.0001, 0.01)
