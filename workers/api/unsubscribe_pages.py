"""One-click unsubscribe (RFC 8058) and the page behind the link in a message.

`GET` only shows a confirmation with a button: mail security scanners fetch every link
in a message, and a GET that unsubscribed would opt out every recipient whose company
runs one. `POST` (the button, or the mailbox provider's one-click request with
`List-Unsubscribe=One-Click`) does it. The token is the only credential, so it never
reaches a log, and the pages tell the browser not to pass it on in a Referer.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from db.engine import SessionFactory, unit_of_work
from db.webhook_events import unsubscribe
from domain.unsubscribe_tokens import InvalidUnsubscribeToken, UnsubscribeClaim, verify_unsubscribe
from runtime.secrets import SecretBox, SecretKeyInvalid, SecretKeyMissing
from runtime.settings import Settings

log = logging.getLogger("outbound.api.unsubscribe")
UNSUBSCRIBE_PURPOSE = "unsubscribe"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}"
    "button{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}"
)


def unsubscribe_key(settings: Settings) -> bytes | None:
    """The link-signing key, or None when no secret key is configured (links cannot be checked)."""
    try:
        return SecretBox(settings.secret_key).signing_key(UNSUBSCRIBE_PURPOSE)
    except (SecretKeyMissing, SecretKeyInvalid):
        return None


def unsubscribe_router(settings: Settings, sessions: SessionFactory, clock: Callable[[], datetime]) -> APIRouter:
    router = APIRouter()
    key = unsubscribe_key(settings)

    def claim_or_page(token: str) -> UnsubscribeClaim | HTMLResponse:
        if key is None:
            log.error("unsubscribe link used but OUTBOUND_SECRET_KEY is not set")
            return _page(503, "Unsubscribe is unavailable", "Please try again later.")
        try:
            return verify_unsubscribe(key, token, clock())
        except InvalidUnsubscribeToken as error:
            if error.expired:
                return _page(
                    400,
                    "This link has expired",
                    "Unsubscribe links stay valid for a limited time. Reply to the message with "
                    "“unsubscribe” and we will not contact you again.",
                )
            return _page(
                400,
                "This link is not valid",
                "Check that the whole link was copied from the message, or reply to the message with "
                "“unsubscribe” and we will not contact you again.",
            )

    @router.get("/unsubscribe/{token}", response_class=HTMLResponse)
    def confirm(token: str) -> HTMLResponse:
        found = claim_or_page(token)
        if isinstance(found, HTMLResponse):
            return found
        form = (
            '<form method="post">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            "<button type=submit>Unsubscribe</button></form>"
        )
        return _page(
            200,
            "Unsubscribe?",
            "You will stop receiving messages from us in every campaign.",
            extra=form,
        )

    @router.post("/unsubscribe/{token}", response_class=HTMLResponse)
    async def one_click(token: str) -> HTMLResponse:
        """The body (`List-Unsubscribe=One-Click`) is not required: the signed token is
        the whole authorisation, and refusing a client that encodes the body differently
        would only keep someone subscribed against their will."""
        found = claim_or_page(token)
        if isinstance(found, HTMLResponse):
            return found
        claim, now = found, clock()

        def run() -> bool:
            with unit_of_work(sessions) as session:
                return unsubscribe(session, claim, now)

        try:
            known = await run_in_threadpool(run)
        except SQLAlchemyError as error:
            log.error("unsubscribe of contact %d failed: %s", claim.contact_id, type(error).__name__)
            return _page(503, "Unsubscribe is unavailable", "We could not record your request; please try again.")
        log.info("contact %d unsubscribed by link%s", claim.contact_id, "" if known else " (contact no longer exists)")
        return _page(200, "You are unsubscribed", "You will not receive any more messages from us.")

    return router


def _page(status: int, title: str, message: str, *, extra: str = "") -> HTMLResponse:
    """A small self-contained page; `title` and `message` are escaped, `extra` is trusted markup."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{extra}</body></html>"
    )
    return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)
