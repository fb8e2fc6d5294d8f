"""Pool names for `shares_by_pool_*{pool}`, as the reference system named them."""

from __future__ import annotations

KNOWN_POOLS: dict[str, str] = {
    "mine.ocean.xyz:3334": "Ocean Main",
    "solo.ckpool.org:3333": "CKPool Main",
    "solo.ckpool.org:4334": "CKPool High Diff",
    "umbrel.local:2018": "Public Pool Local",
}

UNKNOWN_POOL = "unknown"


def pool_name(url: str | None, port: int | None) -> str:
    """`mine.ocean.xyz` + 3334 -> "Ocean Main"; any other pool -> `host:port`."""
    if not url or not url.strip():
        return UNKNOWN_POOL
    host = url.strip().lower()
    if "://" in host:  # `stratum+tcp://host:port/...`
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    if port is not None and ":" not in host:
        host = f"{host}:{port}"
    return KNOWN_POOLS.get(host, host)
