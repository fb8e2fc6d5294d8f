"""Grafana's provisioned folder: atomic writes, deletes and a scan, nothing else.

A file is written beside its final name under a dot-name Grafana ignores,
flushed, then renamed over the final name: Grafana's scanner never reads a
half-written dashboard. Names come from dashboard uids only (checked against
Grafana's uid rule), so no path can leave the folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path

from services.dashboards.naming import file_name

log = logging.getLogger(__name__)

_UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class DashboardFolder:
    def __init__(self, path: Path, mode: int = 0o644) -> None:
        self.path = path
        self.mode = mode

    def path_of(self, uid: str) -> Path:
        if not _UID_RE.fullmatch(uid):
            raise ValueError(f"not a dashboard uid: {uid!r}")
        return self.path / file_name(uid)

    async def read(self, uid: str) -> str | None:
        return await asyncio.to_thread(self._read, self.path_of(uid))

    async def write(self, uid: str, text: str) -> bool:
        """Write the dashboard file; False when it already held exactly `text`."""
        return await asyncio.to_thread(self._write, self.path_of(uid), text)

    async def delete(self, uid: str) -> bool:
        """Remove the file; False when it was already gone (which is fine)."""
        return await asyncio.to_thread(self._delete, self.path_of(uid))

    async def scan(self) -> dict[str, str]:
        """uid -> title of every dashboard file in the folder (anyone's, not only ours)."""
        return await asyncio.to_thread(self._scan)

    # -- blocking parts, run in a thread ---------------------------------------------------

    @staticmethod
    def _read(path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def _write(self, path: Path, text: str) -> bool:
        if self._read(path) == text:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, self.mode)  # mkstemp makes 0600; Grafana runs as another user
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return True

    @staticmethod
    def _delete(path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def _scan(self) -> dict[str, str]:
        found: dict[str, str] = {}
        try:
            entries = sorted(self.path.glob("*.json"))
        except FileNotFoundError:
            return found
        for entry in entries:
            try:
                doc = json.loads(entry.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # Grafana skips it too
            if isinstance(doc, dict) and isinstance(doc.get("uid"), str):
                found[doc["uid"]] = str(doc.get("title") or "")
        return found
