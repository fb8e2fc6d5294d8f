"""Readings onto the bus, a few milliseconds' worth per socket write.

Polls finish spread over time, so publishing each reading as it comes costs one
write to the NATS socket per reading, and on loopback a write runs the receiver's
TCP path too: profiled, that was 40% of the poller's CPU at 1,000 polls/s.
Holding readings for one short window (default 10 ms, nothing next to a 5 s
interval) lets nats-py send them in one write.
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client


class BatchingPublisher:
    def __init__(self, connection: Client, window_s: float = 0.01):
        self._connection = connection
        self._window_s = window_s
        self._batch: list[tuple[str, bytes]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def publish(self, subject: str, payload: bytes) -> None:
        self._batch.append((subject, payload))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._window_s, self._send_batch)

    def _send_batch(self) -> None:
        self._timer = None
        batch, self._batch = self._batch, []
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[str, bytes]]) -> None:
        # No await yields between these publishes (the flush queue has room), so
        # nats-py's flusher finds the whole batch pending and writes it once.
        for subject, payload in batch:
            await self._connection.publish(subject, payload)

    async def close(self) -> None:
        """Send what is held, then wait for every send to be handed to the connection."""
        if self._timer is not None:
            self._timer.cancel()
            self._send_batch()
        await asyncio.gather(*self._sending)
