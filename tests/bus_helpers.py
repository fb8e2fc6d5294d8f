"""Test helpers: watch what crosses the bus, wait for conditions with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable

import nats
from nats.aio.msg import Msg
from pydantic import ValidationError

from shared.models import DeviceReading


async def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll `condition` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


class BusTap:
    """Every message on the bus (raw), and every reading decoded, per device, in arrival order."""

    def __init__(self) -> None:
        self.raw: list[tuple[str, bytes]] = []
        # Checked at stop: an exception in the callback would only be logged.
        self.invalid_readings: list[str] = []
        self.readings: dict[str, list[DeviceReading]] = defaultdict(list)
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self._client: nats.NATS | None = None

    async def start(self, url: str) -> BusTap:
        self._client = await nats.connect(url, name="test-tap")
        await self._client.subscribe(">", cb=self._on_message)
        await self._client.flush()
        return self

    async def _on_message(self, msg: Msg) -> None:
        if msg.subject.startswith("$JS") or msg.subject.startswith("_INBOX"):
            return
        self.raw.append((msg.subject, msg.data))
        if msg.subject.startswith("pluto.readings."):
            try:
                reading = DeviceReading.model_validate_json(msg.data)
            except ValidationError as exc:
                self.invalid_readings.append(f"{msg.subject}: {exc}")
                return
            if msg.subject != f"pluto.readings.{reading.device_id}":
                self.invalid_readings.append(f"{msg.subject}: a reading of {reading.device_id}")
                return
            self.readings[reading.device_id].append(reading)
            self.arrivals[reading.device_id].append(time.monotonic())

    def latest(self, device_id: str) -> DeviceReading | None:
        got = self.readings.get(device_id)
        return got[-1] if got else None

    def count(self, device_id: str) -> int:
        return len(self.readings.get(device_id, ()))

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        assert not self.invalid_readings, f"readings that are not DeviceReadings: {self.invalid_readings[:3]}"
