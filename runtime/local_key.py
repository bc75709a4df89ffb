"""The embedded default's secret key: made on first use, kept beside the SQLite database.

Every email carries a signed unsubscribe link, and stored mailbox grants are encrypted,
so a deployment always needs `OUTBOUND_SECRET_KEY`. On the embedded defaults (SQLite, the
quick start) a missing key is made once and kept in a file only this user can read, so
`outbound demo`, `outbound worker` and `outbound api` all sign and verify with the same
one. Anywhere else (PostgreSQL: a real deployment) nothing is made: the key belongs in
the operator's secret store, and email sending refuses to start without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet
from pydantic import SecretStr

from runtime.secrets import new_secret_key
from runtime.settings import Settings


class LocalKeyError(RuntimeError):
    """The local key file exists but cannot be used."""


def is_embedded(settings: Settings) -> bool:
    """The embedded defaults: a SQLite database on this machine."""
    return settings.database_url.startswith("sqlite")


def with_local_secret_key(settings: Settings, say: Callable[[str], None]) -> Settings:
    """`settings` with a secret key: the configured one, else (embedded defaults only) the
    local file's, made now if there is none (`say` tells where)."""
    if settings.secret_key is not None or not is_embedded(settings):
        return settings
    path = settings.secret_key_file
    if path.exists():
        key = _read(path)
    else:
        key = _create(path)
        say(
            f"Created a local secret key in {path.resolve()} (it signs unsubscribe links and encrypts"
            " mailbox grants; keep it, and set OUTBOUND_SECRET_KEY in production)"
        )
    return settings.model_copy(update={"secret_key": SecretStr(key)})


def _read(path: Path) -> str:
    key = path.read_text(encoding="utf-8").strip()
    try:
        Fernet(key.encode())
    except ValueError:
        raise LocalKeyError(
            f"{path} does not hold a valid secret key; restore it, or delete it to make a new one"
            " (links already sent stop working and stored mailbox grants must be added again)"
        ) from None
    return key


def _create(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_secret_key()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return _read(path)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(key + "\n")
    return key
