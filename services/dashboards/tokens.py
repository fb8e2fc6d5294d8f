"""The public dashboards' accessTokens: derived from a secret, so they survive anything.

`accessToken = HMAC-SHA256(secret, dashboard uid)`, the first 32 hex digits:
the format Grafana generates itself (a UUID without dashes). The same secret
gives the same URL after Grafana lost its database; without the secret the
token cannot be guessed from the device id.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from services.dashboards.settings import DashboardsSettings


class SecretMissing(RuntimeError):
    pass


def access_token(secret: SecretStr, dashboard_uid: str) -> str:
    key = secret.get_secret_value().encode()
    return hmac.new(key, dashboard_uid.encode(), hashlib.sha256).hexdigest()[:32]


def load_or_create_secret(path: Path) -> SecretStr:
    """The secret kept in `path`; a new random one is written (mode 0600) when missing.

    For the embedded default: one secret per installation, kept across runs.
    """
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (text + "\n").encode())
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)
        return SecretStr(text)
    if len(text) < 16:
        raise SecretMissing(f"token secret in {path} is shorter than 16 characters")
    return SecretStr(text)


def resolve_secret(settings: DashboardsSettings) -> SecretStr:
    if settings.token_secret is not None:
        return settings.token_secret
    if settings.token_secret_file is not None:
        return load_or_create_secret(settings.token_secret_file)
    raise SecretMissing(
        "no token secret: set PLUTO_DASHBOARDS_TOKEN_SECRET (production) or "
        "PLUTO_DASHBOARDS_TOKEN_SECRET_FILE (kept or created there)"
    )
