"""Bearer tokens: the operator's `OUTBOUND_API_TOKEN` and the app's API keys.

`/internal/*` lists task queues and worker identities, and `/v1/*` drives the product, so
both answer only a request that carries `Authorization: Bearer <token>`: the operator
token (compared in constant time) or a stored API key (`outbound api-keys create`, kept as
a SHA-256 hash). Neither ever reaches a log line.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fastapi import HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from db.api_keys import key_is_valid
from db.engine import SessionFactory, unit_of_work
from runtime.settings import Settings

_BEARER = HTTPBearer(auto_error=False)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def presented_token(request: Request) -> str | None:
    """The bearer token of the request, if it carries one."""
    credentials: HTTPAuthorizationCredentials | None = await _BEARER(request)
    return credentials.credentials if credentials else None


def token_is_valid(settings: Settings, token: str | None) -> bool:
    if token is None or settings.api_token is None:
        return False
    expected = settings.api_token.get_secret_value()
    return hmac.compare_digest(token.encode(), expected.encode())


def operator_guard(settings: Settings, sessions: SessionFactory) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency for `/internal/*`: the operator token or an API key (401; 403
    when no token is configured and the request has no valid key either)."""

    async def require_token(request: Request) -> None:
        token = await presented_token(request)
        if token_is_valid(settings, token) or await _is_api_key(sessions, token):
            return
        if settings.api_token is None and token is not None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "operator routes are off: set OUTBOUND_API_TOKEN on the API service, or use an API key",
            )
        detail = "missing bearer token" if token is None else "invalid bearer token"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers=_CHALLENGE)

    return require_token


def api_key_guard(settings: Settings, sessions: SessionFactory) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency for `/v1/*`: an API key (or the operator token), else 401."""

    async def require_key(request: Request) -> None:
        token = await presented_token(request)
        if token_is_valid(settings, token) or await _is_api_key(sessions, token):
            return
        detail = "missing bearer token" if token is None else "invalid or revoked API key"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers=_CHALLENGE)

    return require_key


async def _is_api_key(sessions: SessionFactory, token: str | None) -> bool:
    if token is None:
        return False

    def check() -> bool:
        with unit_of_work(sessions) as session:
            return key_is_valid(session, token, datetime.now(UTC))

    return await run_in_threadpool(check)
