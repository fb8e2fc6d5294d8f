"""The double's database: dashboards, public dashboards, users. In memory, per start."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_OFFSET = timezone(timedelta(hours=2))  # Grafana answers in its server's zone


def rfc3339_now() -> str:
    """Like Grafana: nanoseconds and an offset, e.g. 2024-05-01T12:00:00.123456789+02:00."""
    now = datetime.now(UTC).astimezone(_OFFSET)
    zone = now.strftime("%z")
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}789{zone[:3]}:{zone[3:]}"


def new_uid() -> str:
    return secrets.token_hex(7)


def valid_access_token(token: str) -> bool:
    """Grafana accepts what parses as a UUID (32 hex, or dashed)."""
    try:
        uuid.UUID(token)
    except ValueError:
        return False
    return bool(re.fullmatch(r"[0-9a-fA-F]{32}|[0-9a-fA-F-]{36}", token))


@dataclass
class User:
    id: int
    login: str
    role: str  # Viewer, Editor, Admin
    server_admin: bool = False


@dataclass
class Dashboard:
    id: int
    uid: str
    title: str
    data: dict[str, Any]
    version: int
    folder_uid: str = ""
    provisioned_path: str | None = None  # relative to the provisioned folder
    created: str = field(default_factory=rfc3339_now)
    updated: str = field(default_factory=rfc3339_now)

    @property
    def tags(self) -> list[str]:
        tags = self.data.get("tags")
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []

    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-") or "dashboard"


@dataclass
class PublicDashboard:
    uid: str
    dashboard_uid: str
    access_token: str
    is_enabled: bool = False
    time_selection_enabled: bool = False
    annotations_enabled: bool = False
    share: str = "public"
    created_by: int = 0
    updated_by: int = 0
    created_at: str = field(default_factory=rfc3339_now)
    updated_at: str = field(default_factory=rfc3339_now)

    def body(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "dashboardUid": self.dashboard_uid,
            "accessToken": self.access_token,
            "createdBy": self.created_by,
            "updatedBy": self.updated_by,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "isEnabled": self.is_enabled,
            "timeSelectionEnabled": self.time_selection_enabled,
            "annotationsEnabled": self.annotations_enabled,
            "share": self.share,
        }


@dataclass
class Database:
    dashboards: dict[str, Dashboard] = field(default_factory=dict)
    publics: dict[str, PublicDashboard] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)  # provisioned path -> MD5
    next_id: int = 1

    def take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def user(self, login: str, *, server_admin_allowed: bool) -> User:
        """Auth proxy: `admin` is org Admin and server admin; anyone else is auto-created as Viewer."""
        found = self.users.get(login)
        if found is None:
            is_admin = login == "admin"
            found = User(self.take_id(), login, "Admin" if is_admin else "Viewer", is_admin)
            self.users[login] = found
        if found.login == "admin":
            found.server_admin = server_admin_allowed
        return found

    def public_of(self, dashboard_uid: str) -> PublicDashboard | None:
        for public in self.publics.values():
            if public.dashboard_uid == dashboard_uid:
                return public
        return None

    def public_by_token(self, token: str) -> PublicDashboard | None:
        for public in self.publics.values():
            if public.access_token == token:
                return public
        return None

    def by_title(self, folder_uid: str, title: str) -> Dashboard | None:
        key = title.casefold()
        for dashboard in self.dashboards.values():
            if dashboard.folder_uid == folder_uid and dashboard.title.casefold() == key:
                return dashboard
        return None
