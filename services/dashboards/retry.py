"""Retrying done right: capped backoff with jitter, and saying a problem once."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Exponential delays, capped, with downward jitter so retries spread out."""

    initial: float
    cap: float
    factor: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1 for the first retry)."""
        exponent = min(max(attempt - 1, 0), 64)
        base = min(self.cap, self.initial * self.factor**exponent)
        return base * (1.0 - self.jitter * random.random())


class OnceLog:
    """Log a condition when it starts and when it ends, never in between.

    `problem(key, ...)` logs the first time a key goes bad; `cleared(key, ...)`
    logs when it is good again. Keyed by what went wrong (e.g. a device and
    a revision), so a retried failure is one line, not one per retry.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._active: set[str] = set()

    def problem(self, key: str, level: int, message: str, *args: object, exc_info: bool = False) -> bool:
        """Log unless already said; True when it was logged now."""
        if key in self._active:
            return False
        self._active.add(key)
        self._log.log(level, message, *args, exc_info=exc_info)
        return True

    def cleared(self, key: str, message: str | None = None, *args: object) -> bool:
        """Log `message` if the condition was active; True when it was."""
        if key not in self._active:
            return False
        self._active.discard(key)
        if message:
            self._log.info(message, *args)
        return True

    def clear_prefix(self, prefix: str) -> None:
        """Forget every condition whose key starts with `prefix` (silently)."""
        self._active = {key for key in self._active if not key.startswith(prefix)}

    def active(self, key: str) -> bool:
        return key in self._active
