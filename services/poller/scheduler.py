"""Keeps one polling loop per registered device.

Each device gets its own task: at most one request in flight per device, and a
slow or hung device only ever delays itself. Loops start at a random offset so
a fleet registered at once does not poll in lockstep; each interval is
jittered; after `backoff_after` consecutive failures the wait doubles up to
`backoff_max_s`, because real devices crash when hammered while unwell.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class Polled(Protocol):
    """What the scheduler needs of a target: which device it is (and equality)."""

    @property
    def device_id(self) -> str: ...


T = TypeVar("T", bound=Polled)


@dataclass(frozen=True, slots=True)
class Cadence:
    interval_s: float
    jitter: float
    backoff_after: int
    backoff_max_s: float

    def next_delay(self, failures: int, rng: random.Random) -> float:
        delay = self.interval_s
        if failures >= self.backoff_after:
            delay = min(self.interval_s * 2 ** (failures - self.backoff_after + 1), self.backoff_max_s)
        return delay * (1 + rng.uniform(-self.jitter, self.jitter))


class Scheduler(Generic[T]):
    def __init__(
        self,
        poll_once: Callable[[T], Awaitable[bool]],  # True when the device answered usefully
        cadence: Cadence,
        rng: random.Random | None = None,
    ):
        self._poll_once = poll_once
        self._cadence = cadence
        self._rng = rng or random.Random()
        self._loops: dict[str, tuple[T, asyncio.Task[None]]] = {}

    @property
    def device_ids(self) -> set[str]:
        return set(self._loops)

    def upsert(self, target: T) -> None:
        """Start polling a device, or restart its loop if its URL changed."""
        current = self._loops.get(target.device_id)
        if current is not None:
            if current[0] == target:
                return
            current[1].cancel()
        task = asyncio.create_task(self._run(target), name=f"poll:{target.device_id}")
        self._loops[target.device_id] = (target, task)

    def remove(self, device_id: str) -> None:
        """Stop polling now; a request in flight is cancelled and publishes nothing."""
        current = self._loops.pop(device_id, None)
        if current is not None:
            current[1].cancel()

    async def close(self) -> None:
        tasks = [task for _, task in self._loops.values()]
        self._loops.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, target: T) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self._rng.uniform(0, self._cadence.interval_s)
        failures = 0
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            try:
                answered = await self._poll_once(target)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in one poll must not end this device's loop
                log.exception("poll of device %s failed unexpectedly", target.device_id)
                answered = False
            failures = 0 if answered else failures + 1
            # Anchor to the schedule, not to when the poll ended, so the cadence
            # does not drift by the request time; never schedule in the past.
            next_at = max(next_at + self._cadence.next_delay(failures, self._rng), loop.time())
