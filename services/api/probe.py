"""Asking a device that is being registered who it is: its MAC (for the id) and hostname.

Best effort, as `pluto devices add` does: a short deadline, a capped body, no
redirects, no cookies; any failure means "unknown", never an error.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import aiohttp

from shared.ids import normalize_mac

INFO_PATH = "/api/system/info"
MAX_BODY = 256 * 1024


@dataclass(frozen=True, slots=True)
class Identity:
    mac: str | None = None  # as the device reports it, only when it is a MAC
    hostname: str | None = None


def make_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"Accept": "application/json", "User-Agent": "pluto-api"},
    )


async def identify(session: aiohttp.ClientSession, base_url: str, timeout: float) -> Identity:
    try:
        async with asyncio.timeout(timeout):
            async with session.get(base_url.rstrip("/") + INFO_PATH, allow_redirects=False) as resp:
                if resp.status != 200:
                    return Identity()
                body = await resp.content.read(MAX_BODY)
        info = json.loads(body)
    except (aiohttp.ClientError, TimeoutError, ValueError, OSError):
        return Identity()
    if not isinstance(info, dict):
        return Identity()
    mac = info.get("macAddr")
    hostname = info.get("hostname")
    return Identity(
        mac=mac.strip() if isinstance(mac, str) and normalize_mac(mac) else None,
        hostname=_printable(hostname)[:256] if isinstance(hostname, str) and hostname.strip() else None,
    )


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in text.strip())
