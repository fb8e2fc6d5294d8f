"""The file provider: scan a folder, load what changed, delete what vanished.

As in Grafana: `*.json` anywhere below the folder, dot-folders (and dot-files)
skipped; a file is (re)loaded when its MD5 differs from the last one loaded;
its `id` is ignored; a missing uid is invented; a uid over 40 characters or
outside `[A-Za-z0-9_-]` fails; an empty title fails; invalid JSON is logged and
skipped (an already loaded version stays); a removed file's dashboard is
deleted. A duplicate uid or title in the folder is logged and revokes the
provider's write access (Grafana's validator does that within 30 s): later
changes are silently not saved.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from .state import UID_RE, Dashboard, Database, new_uid, rfc3339_now

log = logging.getLogger("grafana_double.provisioning")


@dataclass(frozen=True)
class FileSnapshot:
    path: str  # relative to the folder
    md5: str
    data: bytes


def read_folder(folder: Path) -> list[FileSnapshot]:
    """Blocking: every provisionable file with its checksum (run in a thread)."""
    found: list[FileSnapshot] = []
    if not folder.is_dir():
        return found
    for path in sorted(folder.rglob("*.json")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue  # vanished between listing and reading
        found.append(FileSnapshot(str(relative), hashlib.md5(data).hexdigest(), data))
    return found


class Provisioner:
    def __init__(self, *, delete_public_with_dashboard: bool) -> None:
        self.delete_public_with_dashboard = delete_public_with_dashboard
        self.errors: list[str] = []
        self.write_revoked = False
        self._reported: set[tuple[str, str]] = set()

    def _error(self, path: str, md5: str, message: str) -> None:
        if (path, md5) not in self._reported:
            self._reported.add((path, md5))
            self.errors.append(f"{path}: {message}")
            log.warning("provisioning: %s: %s", path, message)

    def apply(self, db: Database, files: list[FileSnapshot]) -> None:
        present = {f.path for f in files}
        # like Grafana's walkDisk: dashboards of missing files go first, then changed files load
        for dashboard in list(db.dashboards.values()):
            if dashboard.provisioned_path and dashboard.provisioned_path not in present:
                self._delete(db, dashboard)
                db.checksums.pop(dashboard.provisioned_path, None)
        for snapshot in files:
            if db.checksums.get(snapshot.path) == snapshot.md5:
                continue
            self._load(db, snapshot)

    def _load(self, db: Database, snapshot: FileSnapshot) -> None:
        try:
            doc = json.loads(snapshot.data)
        except ValueError as exc:
            self._error(snapshot.path, snapshot.md5, f"invalid JSON, skipped: {exc}")
            return
        if not isinstance(doc, dict):
            self._error(snapshot.path, snapshot.md5, "not a dashboard object")
            return
        uid = doc.get("uid") or new_uid()
        if not isinstance(uid, str) or not UID_RE.fullmatch(uid):
            self._error(snapshot.path, snapshot.md5, f"invalid uid {uid!r}")
            return
        title = doc.get("title")
        if not isinstance(title, str) or not title.strip():
            self._error(snapshot.path, snapshot.md5, "Dashboard title cannot be empty")
            return
        owner = db.dashboards.get(uid)
        if owner is not None and owner.provisioned_path not in (None, snapshot.path):
            self._error(snapshot.path, snapshot.md5, f"duplicate uid {uid} (also {owner.provisioned_path})")
            self.write_revoked = True
            return
        same_title = db.by_title("", title)
        if same_title is not None and same_title.uid != uid:
            self._error(snapshot.path, snapshot.md5, f"duplicate title {title!r} (uid {same_title.uid})")
            self.write_revoked = True
            return
        if self.write_revoked:
            return  # the validator took the provider's write access away
        # the file changed its uid: the old dashboard of this file goes
        for other in list(db.dashboards.values()):
            if other.provisioned_path == snapshot.path and other.uid != uid:
                self._delete(db, other)
        doc.pop("id", None)
        if owner is None:
            db.dashboards[uid] = Dashboard(
                id=db.take_id(),
                uid=uid,
                title=title,
                data=doc,
                version=1,
                provisioned_path=snapshot.path,
            )
        else:
            owner.title, owner.data, owner.version = title, doc, owner.version + 1
            owner.provisioned_path, owner.updated = snapshot.path, rfc3339_now()
        db.checksums[snapshot.path] = snapshot.md5

    def _delete(self, db: Database, dashboard: Dashboard) -> None:
        db.dashboards.pop(dashboard.uid, None)
        if self.delete_public_with_dashboard:  # Grafana >= ~11.5; before, the row was orphaned
            public = db.public_of(dashboard.uid)
            if public is not None:
                db.publics.pop(public.uid, None)
