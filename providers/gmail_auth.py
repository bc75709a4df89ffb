"""Authorised Gmail API clients for a mailbox, shared by the send side and the inbound sync.

Service objects and httplib2 connections are not thread-safe and activities run in a thread
pool, so a fresh service is built for every call (about 3 ms from the bundled discovery
document). Access tokens, in contrast, are cached per mailbox so a send does not cost a
token refresh.
"""

from __future__ import annotations

import http.client
import socket
import threading
from datetime import datetime
from typing import Any, Protocol

import google_auth_httplib2  # type: ignore[import-untyped]
import httplib2  # type: ignore[import-untyped]
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build  # type: ignore[import-untyped]

from runtime.settings import GmailSettings

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
# send for users.messages.send; readonly for the rfc822msgid: lookup, read-back and inbound sync
# (the narrower gmail.metadata scope does not allow `q` searches).
GMAIL_SCOPES = (
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.readonly",
)
HTTP_TIMEOUT_SECONDS = 30.0


class CredentialSource(Protocol):
    """Where a mailbox's OAuth credentials come from (the database, decrypted, in production)."""

    def credentials(self, address: str) -> Credentials: ...


def oauth_credentials(
    *,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    settings: GmailSettings,
    access_token: str | None = None,
    expiry: datetime | None = None,
) -> Credentials:
    """Credentials google-auth refreshes by itself; `expiry` is naive UTC, as google-auth expects."""
    return Credentials(  # type: ignore[no-untyped-call]
        token=access_token,
        refresh_token=refresh_token,
        client_id=client_id,
        client_secret=client_secret,
        token_uri=settings.token_uri or GOOGLE_TOKEN_URI,
        expiry=expiry,
    )


class SingleAttemptHttp(httplib2.Http):  # type: ignore[misc]
    """httplib2 silently sends a request again when the first response is lost (it takes a
    dropped connection for a stale keep-alive). For `messages.send` that is a second email, so
    non-idempotent requests go out exactly once on a fresh connection and a lost response
    surfaces as an error, which makes the caller check the mailbox instead."""

    def _conn_request(self, conn: Any, request_uri: str, method: str, body: Any, headers: Any) -> Any:
        if method in ("GET", "HEAD"):
            return super()._conn_request(conn, request_uri, method, body, headers)
        conn.close()
        try:
            conn.connect()
            conn.request(method, request_uri, body, headers)
            raw = conn.getresponse()
            content = raw.read()
        except socket.gaierror:
            conn.close()
            raise httplib2.ServerNotFoundError(f"Unable to find the server at {conn.host}") from None
        except (OSError, http.client.HTTPException):
            conn.close()
            raise
        response = httplib2.Response(raw)
        return response, httplib2._decompressContent(response, content, self.limit_kwargs)


class GmailServices:
    """Builds authorised `gmail v1` services for mailboxes, keeping each mailbox's access token."""

    def __init__(self, credentials: CredentialSource, settings: GmailSettings) -> None:
        self._source = credentials
        self._settings = settings
        self._lock = threading.Lock()
        self._cached: dict[str, Credentials] = {}
        self._refreshing: dict[str, threading.Lock] = {}

    def service(self, address: str) -> Any:
        http = google_auth_httplib2.AuthorizedHttp(
            self._credentials(address), http=SingleAttemptHttp(timeout=HTTP_TIMEOUT_SECONDS)
        )
        options = {"api_endpoint": self._settings.api_endpoint} if self._settings.api_endpoint else None
        return build("gmail", "v1", http=http, static_discovery=True, cache_discovery=False, client_options=options)

    def forget(self, address: str) -> None:
        """Drop a mailbox's cached token (after its grant was revoked, for instance)."""
        with self._lock:
            self._cached.pop(address, None)

    def _credentials(self, address: str) -> Credentials:
        fresh = self._source.credentials(address)
        if self._settings.token_uri and fresh.token_uri != self._settings.token_uri:
            overridden = fresh.with_token_uri(self._settings.token_uri)
            overridden.expiry = fresh.expiry  # google-auth's copy forgets it
            fresh = overridden
        with self._lock:
            cached = self._cached.get(address)
            if cached is None or _identity(cached) != _identity(fresh):
                # A reconnected mailbox (new refresh token) replaces the cached token.
                self._cached[address] = cached = fresh
            refreshing = self._refreshing.setdefault(address, threading.Lock())
        with refreshing:
            # One refresh per mailbox: a burst of sends would otherwise each ask for a token.
            if not cached.valid:
                request = google_auth_httplib2.Request(SingleAttemptHttp(timeout=HTTP_TIMEOUT_SECONDS))
                cached.refresh(request)  # type: ignore[no-untyped-call]
        return cached


def _identity(credentials: Credentials) -> tuple[str | None, ...]:
    return (credentials.refresh_token, credentials.client_id, credentials.client_secret, credentials.token_uri)
