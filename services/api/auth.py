"""The operator token: mutations and Grafana's auth proxy header need it.

`Authorization: Bearer <token>`, compared in constant time. Without a
configured token, mutations are refused: never open by default.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from services.api.problems import Problem
from services.api.settings import MIN_TOKEN_LENGTH, ApiSettings

_BEARER = "bearer "


def generate_token() -> str:
    """A new operator token (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def load_or_create_token(path: Path) -> SecretStr:
    """The token kept in `path`; a new one is written there (mode 0600) when missing."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = generate_token()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (text + "\n").encode())
        finally:
            os.close(fd)
    if len(text) < MIN_TOKEN_LENGTH:
        raise ValueError(f"operator token in {path} is shorter than {MIN_TOKEN_LENGTH} characters")
    return SecretStr(text)


def resolve_token(settings: ApiSettings) -> SecretStr | None:
    if settings.operator_token is not None:
        return settings.operator_token
    if settings.operator_token_file is not None:
        return load_or_create_token(settings.operator_token_file)
    return None


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[: len(_BEARER)].lower() != _BEARER:
        return None
    return header[len(_BEARER) :].strip() or None


def is_operator(request: web.Request, token: SecretStr | None) -> bool:
    """True when the request carries the operator token (constant-time comparison)."""
    given = bearer(request)
    if token is None or given is None:
        return False
    return hmac.compare_digest(given.encode(), token.get_secret_value().encode())


def require_operator(request: web.Request, token: SecretStr | None) -> None:
    """Raise 403 when mutations are disabled, 401 when the token is missing or wrong."""
    if token is None:
        raise Problem(
            403,
            "mutations_disabled",
            "registering and removing devices is disabled: no operator token is configured "
            "(set PLUTO_API_OPERATOR_TOKEN or PLUTO_API_OPERATOR_TOKEN_FILE)",
        )
    if not is_operator(request, token):
        raise Problem(
            401,
            "unauthorized",
            "this needs the operator token: send `Authorization: Bearer <token>`",
            headers={"WWW-Authenticate": 'Bearer realm="pluto"'},
        )
