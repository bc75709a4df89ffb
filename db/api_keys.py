"""API keys: made here, shown once, stored as a SHA-256 hash, revoked by name.

A key is 32 random bytes, so a plain SHA-256 (no salt, no slow hash) is enough to make a
leaked table useless, and a look-up is one indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.engine import changed_rows
from db.models import ApiKey

KEY_PREFIX = "obk_"


class ApiKeyError(Exception):
    """A key request that cannot be done (a name taken, an unknown key)."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, name: str, now: datetime) -> str:
    """A new key named `name`; the key itself is returned once and never stored."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ApiKeyError("a key's name is 1 to 100 characters")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    try:
        with session.begin_nested():
            session.add(ApiKey(name=name, key_hash=hash_key(key), key_prefix=key[:12], created_at=now))
    except IntegrityError:
        raise ApiKeyError(f"there is already a key named {name!r} (revoke it, or choose another name)") from None
    return key


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(session: Session, name: str, now: datetime) -> None:
    changed = changed_rows(
        session.execute(
            update(ApiKey)
            .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    if not changed:
        raise ApiKeyError(f"no active key named {name!r}")


def key_is_valid(session: Session, key: str, now: datetime) -> bool:
    """A stored, unrevoked key (its last use is noted, to spot keys nobody uses)."""
    if not key.startswith(KEY_PREFIX):
        return False
    found = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)))
    if found is None:
        return False
    found.last_used_at = now
    return True
