"""A Grafana test double (aiohttp, in memory) that behaves as the reference facts say."""

from .server import GrafanaDouble, Seen

__all__ = ["GrafanaDouble", "Seen"]
