"""Names: dashboard uids, file names and titles, never derived from a raw hostname.

- device dashboard uid `pluto-d-<device id>` (at most 8 + 32 = 40 characters, Grafana's limit);
  the `d-` keeps a device whose id is `overview` away from the overview's uid;
- overview uid `pluto-overview`;
- file name `<uid>.json`.

Titles come from hostnames, which can repeat, change, or hold anything, while
Grafana needs titles unique within the folder (a duplicate revokes the
provider's write access). The rule, first come first served:

- the base is the cleaned hostname (control characters dropped, whitespace
  collapsed, at most 100 characters), or the device id when there is none;
- the base is the title unless another dashboard in the folder already has it
  (case-insensitive), it is the overview's title, or it already ends like a
  disambiguated title (` · <id-like>`);
- otherwise the title is `<base> · <device id>`.

Disambiguated titles end with the device's own id, which no plain title can
do, so no two titles are ever equal. A title never changes while the hostname
stays the same: not when another device arrives, nor when it leaves.
"""

from __future__ import annotations

import re
import unicodedata

from shared.ids import validate_device_id
from shared.subjects import OVERVIEW_KEY

OVERVIEW_UID = "pluto-overview"
OVERVIEW_TITLE = "Pluto fleet overview"
DEVICE_UID_PREFIX = "pluto-d-"
SEPARATOR = " · "
TITLE_BASE_MAX = 100

_DISAMBIGUATED = re.compile(r" · [a-z0-9][a-z0-9_-]*$")


def device_uid(device_id: str) -> str:
    return DEVICE_UID_PREFIX + validate_device_id(device_id)


def uid_of(key: str) -> str:
    """The dashboard uid of a dashboard key (a device id or OVERVIEW_KEY)."""
    return OVERVIEW_UID if key == OVERVIEW_KEY else device_uid(key)


def key_of(uid: str) -> str | None:
    """The dashboard key of one of our uids; None for anybody else's dashboard."""
    if uid == OVERVIEW_UID:
        return OVERVIEW_KEY
    if uid.startswith(DEVICE_UID_PREFIX):
        candidate = uid[len(DEVICE_UID_PREFIX) :]
        try:
            return validate_device_id(candidate)
        except ValueError:
            return None
    return None


def file_name(uid: str) -> str:
    return f"{uid}.json"


def clean_title(raw: str | None) -> str:
    """Printable, single-spaced, bounded; empty when nothing printable is left."""
    if not raw:
        return ""
    kept = "".join(
        " " if ch.isspace() else ch for ch in raw if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    return " ".join(kept.split())[:TITLE_BASE_MAX].strip()


def title_key(title: str) -> str:
    """Two titles that Grafana could consider equal have the same key."""
    return " ".join(title.split()).casefold()


def choose_title(hostname: str | None, device_id: str, taken: set[str], current: str | None = None) -> str:
    """The title of a device's dashboard.

    `taken` holds the title_key()s of the other dashboards in the folder;
    `current` is the device's title today, kept when it still fits the hostname.
    """
    base = clean_title(hostname) or device_id
    disambiguated = f"{base}{SEPARATOR}{device_id}"
    if current == disambiguated:
        return current
    key = title_key(base)
    if key in taken or key == title_key(OVERVIEW_TITLE) or _DISAMBIGUATED.search(key):
        return disambiguated
    return base
