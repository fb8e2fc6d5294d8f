"""One poll of one device: fetch, normalize, publish one reading (ok or error)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp

from services.poller.client import FetchFailure, fetch_info, request_timeout
from services.poller.normalize import normalize
from services.poller.scheduler import Target
from services.poller.settings import PollerSettings
from shared.models import DeviceReading, ReadingError

log = logging.getLogger(__name__)

PublishReading = Callable[[DeviceReading], Awaitable[None]]


class DevicePoller:
    """Turns a device into readings. Logs a device's trouble when it starts and ends, not per poll."""

    def __init__(self, session: aiohttp.ClientSession, settings: PollerSettings, publish: PublishReading):
        self._session = session
        self._settings = settings
        self._publish = publish
        self._timeout = request_timeout(settings.timeout_s)
        self._failing: dict[str, ReadingError] = {}
        self._invalid: dict[str, tuple[str, ...]] = {}

    @property
    def failing_devices(self) -> int:
        """Devices whose newest poll failed."""
        return len(self._failing)

    def forget(self, device_id: str) -> None:
        self._failing.pop(device_id, None)
        self._invalid.pop(device_id, None)

    async def poll_once(self, target: Target) -> bool:
        started = time.time()
        result = await fetch_info(
            self._session,
            target.info_url,
            timeout=self._timeout,
            max_body_bytes=self._settings.max_body_bytes,
        )
        finished = time.time()
        if isinstance(result, FetchFailure):
            reading = _error(target, started, finished, result.kind, result.message)
        elif not isinstance(result.payload, dict):
            reading = _error(
                target,
                started,
                finished,
                ReadingError.INVALID_PAYLOAD,
                f"expected a JSON object, got {type(result.payload).__name__}",
            )
        else:
            normalized = normalize(result.payload)
            if normalized.usable:
                reading = DeviceReading(
                    device_id=target.device_id,
                    ok=True,
                    poll_started_at=started,
                    poll_finished_at=finished,
                    firmware=normalized.firmware,
                    invalid_fields=normalized.invalid_fields,
                    **normalized.values,
                )
            else:
                reading = _error(
                    target,
                    started,
                    finished,
                    ReadingError.INVALID_PAYLOAD,
                    "no usable measurement in the payload",
                )
            self._note_invalid_fields(target, normalized.invalid_fields)
        self._note_outcome(target, reading)
        await self._publish(reading)
        return reading.ok

    def _note_outcome(self, target: Target, reading: DeviceReading) -> None:
        previous = self._failing.get(target.device_id)
        if reading.error is None:
            if previous is not None:
                del self._failing[target.device_id]
                log.info("device %s answers again", target.device_id)
        elif previous != reading.error:
            self._failing[target.device_id] = reading.error
            log.warning(
                "device %s at %s: %s (%s)",
                target.device_id,
                target.info_url,
                reading.error.value,
                reading.error_message,
            )

    def _note_invalid_fields(self, target: Target, fields: tuple[str, ...]) -> None:
        if fields and self._invalid.get(target.device_id) != fields:
            log.warning("device %s sent unusable fields, dropped: %s", target.device_id, ", ".join(fields))
        if fields:
            self._invalid[target.device_id] = fields
        else:
            self._invalid.pop(target.device_id, None)


def _error(
    target: Target, started: float, finished: float, kind: ReadingError, message: str
) -> DeviceReading:
    return DeviceReading(
        device_id=target.device_id,
        ok=False,
        error=kind,
        error_message=message,
        poll_started_at=started,
        poll_finished_at=finished,
    )
