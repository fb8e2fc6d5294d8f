"""One GET of a device's `/api/system/info`, bounded in time and size.

Real devices hang or reboot when hammered, so every request has a hard
deadline (body included) and a body cap; the answer is either a decoded JSON
value or a typed failure, never an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from shared.models import ReadingError

INFO_PATH = "/api/system/info"


@dataclass(frozen=True, slots=True)
class FetchFailure:
    kind: ReadingError
    message: str


@dataclass(frozen=True, slots=True)
class FetchSuccess:
    payload: Any


FetchResult = FetchSuccess | FetchFailure


def make_session(max_connections: int) -> aiohttp.ClientSession:
    # As many connections as requests may be in flight: a request never waits for one
    # (that wait would count against its deadline).
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),  # devices have no sessions; keep nothing between polls
        headers={"Accept": "application/json", "User-Agent": "pluto-poller"},
        auto_decompress=True,
    )


def info_url(base_url: str) -> URL:
    return URL(base_url.rstrip("/") + INFO_PATH)


def request_timeout(timeout_s: float) -> aiohttp.ClientTimeout:
    """One hard deadline for connect, headers and body.

    aiohttp's `total` timer runs until the connection is released, so it bounds
    the body read too (a dribbling device times out). `ceil_threshold` off: a
    deadline is exact, not rounded up to the next whole second.
    """
    return aiohttp.ClientTimeout(total=timeout_s, ceil_threshold=float("inf"))


async def fetch_info(
    session: aiohttp.ClientSession, url: URL, *, timeout: aiohttp.ClientTimeout, max_body_bytes: int
) -> FetchResult:
    try:
        return await _fetch(session, url, timeout, max_body_bytes)
    except TimeoutError:
        return FetchFailure(ReadingError.TIMEOUT, f"no complete answer within {timeout.total:g}s")
    except aiohttp.ClientError as exc:
        return FetchFailure(ReadingError.CONNECTION, f"{type(exc).__name__}: {exc}"[:300])
    except OSError as exc:
        return FetchFailure(ReadingError.CONNECTION, f"{type(exc).__name__}: {exc}"[:300])


async def _fetch(
    session: aiohttp.ClientSession, url: URL, timeout: aiohttp.ClientTimeout, max_body_bytes: int
) -> FetchResult:
    async with session.get(url, allow_redirects=False, timeout=timeout) as response:
        if response.status != 200:
            return FetchFailure(ReadingError.HTTP_STATUS, f"HTTP {response.status}")
        declared = response.content_length
        if declared is not None:
            if declared > max_body_bytes:
                return FetchFailure(
                    ReadingError.BODY_TOO_LARGE, f"body of {declared} bytes exceeds {max_body_bytes}"
                )
            body = await response.read()  # aiohttp reads exactly the declared length
        else:  # chunked: count while reading
            chunks = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                chunks += chunk
                if len(chunks) > max_body_bytes:
                    return FetchFailure(ReadingError.BODY_TOO_LARGE, f"body exceeds {max_body_bytes} bytes")
            body = bytes(chunks)
    try:
        return FetchSuccess(orjson.loads(body))
    except orjson.JSONDecodeError:
        pass
    try:
        # orjson (3x faster) rejects NaN/Infinity, which devices can send; the stdlib
        # parser accepts them, and the normalizer then drops those fields one by one.
        return FetchSuccess(json.loads(body))
    except (ValueError, UnicodeDecodeError) as exc:
        # Never quote the body: it may carry secrets.
        return FetchFailure(ReadingError.INVALID_JSON, f"body is not JSON ({type(exc).__name__})")
