"""Per-host metric names (`{hostname}_power_watts`), as the reference system made them, made safe.

The reference replaced every character outside `[A-Za-z0-9_]` by `__` and used
the result as a name prefix. That stays, so queries written for it keep working,
with three repairs:

- a prefix that would start with a digit gets a leading `_` (`1miner` -> `_1miner`),
  so the name is always valid (the reference crashed);
- no hostname: the device id stands in;
- collisions (two devices called `bitaxe`, `miner-1` vs `miner.1`, a hostname whose
  names would equal one of the exporter's own families or another device's names):
  the device registered first keeps the plain prefix, the others get
  `{prefix}__{device id}`. The assignment is a pure function of the fleet, so
  every scrape, replica and restart agrees.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import count

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def sanitize(hostname: str) -> str:
    """The reference's sanitization, plus a leading `_` where a digit would lead."""
    prefix = _UNSAFE.sub("__", hostname)
    if prefix[:1].isdigit():
        prefix = "_" + prefix
    return prefix


@dataclass(frozen=True, slots=True)
class Claim:
    """A device asking for a per-host prefix. Lower `priority` wins a contested prefix."""

    priority: float  # registration time; +inf when unknown
    device_id: str
    hostname: str | None


def assign_prefixes(
    claims: Iterable[Claim], suffixes: Sequence[str], reserved: frozenset[str]
) -> dict[str, str]:
    """device id -> a prefix whose names `{prefix}{suffix}` are valid and unique.

    Unique among every device's names and never equal to a name in `reserved`.
    """
    taken: set[str] = set(reserved)
    prefixes: dict[str, str] = {}
    for claim in sorted(claims, key=lambda c: (c.priority, c.device_id)):
        base = sanitize(claim.hostname or claim.device_id)
        for candidate in _candidates(base, claim.device_id):
            names = [candidate + suffix for suffix in suffixes]
            if not any(name in taken for name in names):
                taken.update(names)
                prefixes[claim.device_id] = candidate
                break
    return prefixes


def _candidates(base: str, device_id: str) -> Iterable[str]:
    yield base
    qualified = f"{base}__{sanitize(device_id).lstrip('_')}"
    yield qualified
    for n in count(2):  # only for names built on purpose to collide with qualified ones
        yield f"{qualified}_{n}"
