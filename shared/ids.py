"""Device ids: one token that is safe everywhere a device is named.

A device id goes into a NATS subject (`pluto.readings.<id>`), a file name
(a dashboard file in Grafana's provisioned folder), a Grafana uid (`pluto-d-<id>`,
at most 40 characters of `[A-Za-z0-9_-]`) and a Prometheus label value. The
raw hostname is never used for any of these: it is user-chosen, can change,
can repeat and can hold any character.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

DEVICE_ID_MAX_LENGTH = 32
_DEVICE_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,30}[a-z0-9])?$")
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(?:[:-]?[0-9a-fA-F]{2}){5}$")


class InvalidDeviceId(ValueError):
    """Raised for a string that is not a valid device id."""


def validate_device_id(value: str) -> str:
    """Return `value` if it is a valid device id, else raise InvalidDeviceId."""
    if not isinstance(value, str) or not _DEVICE_ID_RE.fullmatch(value):
        raise InvalidDeviceId(
            f"invalid device id {value!r}: use 1-{DEVICE_ID_MAX_LENGTH} characters of "
            "a-z, 0-9, '-' and '_', starting and ending with a letter or digit"
        )
    return value


DEVICE_ID_PATTERN = _DEVICE_ID_RE.pattern
# The pattern is only shown in JSON schemas (OpenAPI, AsyncAPI); the validator gives the clear error.
DeviceId = Annotated[
    str,
    Field(json_schema_extra={"pattern": DEVICE_ID_PATTERN}),
    AfterValidator(validate_device_id),
]


def is_device_id(value: str) -> bool:
    return bool(_DEVICE_ID_RE.fullmatch(value))


def normalize_mac(mac: str) -> str | None:
    """`AA:BB:CC:DD:EE:FF` -> `aabbccddeeff`; None when it is not a MAC."""
    if not isinstance(mac, str) or not _MAC_RE.fullmatch(mac.strip()):
        return None
    return re.sub(r"[^0-9a-f]", "", mac.strip().lower())


def device_id_from_mac(mac: str) -> str | None:
    """The stable id of a device that reports its MAC address."""
    return normalize_mac(mac)


def device_id_from_url(url: str) -> str:
    """A deterministic id for a device known only by its URL (old firmware has no MAC).

    A readable slug of host, port and path, plus a short hash of the whole URL so
    that two URLs that slug alike still get different ids.
    """
    parts = urlsplit(url.strip())
    readable = f"{parts.hostname or ''}-{parts.port or ''}-{parts.path}"
    slug = re.sub(r"[^a-z0-9]+", "-", readable.lower()).strip("-")[:22].strip("-")
    digest = hashlib.sha256(url.strip().encode()).hexdigest()[:8]
    return validate_device_id(f"{slug}-{digest}" if slug else f"d-{digest}")
