"""Bearer tokens for the API's operator routes.

`/internal/*` lists task queues and worker identities, so it answers only a request that
carries `Authorization: Bearer <OUTBOUND_API_TOKEN>`; with no token configured it answers
nobody. The comparison is constant-time, and the token never reaches a log line.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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


def operator_guard(settings: Settings) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency refusing requests without the operator token (401, or 403
    when the service has no token configured at all, which no request can fix)."""

    async def require_token(request: Request) -> None:
        if settings.api_token is None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "operator routes are off: set OUTBOUND_API_TOKEN on the API service to use them",
            )
        token = await presented_token(request)
        if not token_is_valid(settings, token):
            detail = "missing bearer token" if token is None else "invalid bearer token"
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers=_CHALLENGE)

    return require_token
