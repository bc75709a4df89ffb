"""What every CLI command needs: settings, the database, the Temporal client, output."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from rich.console import Console
from sqlalchemy import Engine, inspect

from db.engine import SessionFactory, make_engine, make_session_factory
from runtime.settings import Settings

if TYPE_CHECKING:
    from schemas.jobs_file import JobsFile


class UserError(Exception):
    """A problem the user can fix; printed without a traceback, exit code 2."""


@dataclass
class CliContext:
    settings: Settings = field(default_factory=Settings)
    console: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True, soft_wrap=True))

    @cached_property
    def engine(self) -> Engine:
        engine = make_engine(self.settings.database_url)
        if not inspect(engine).has_table("alembic_version"):
            raise UserError("the database has no schema yet: run `outbound db upgrade` first")
        return engine

    @cached_property
    def sessions(self) -> SessionFactory:
        return make_session_factory(self.engine)

    def jobs_file(self) -> JobsFile:
        """The job queues: `OUTBOUND_JOBS_FILE`'s and the built-in ones (`verify-email`); a bad
        file is a clear error, not a traceback."""
        from domain.jobs_yaml import JobsFileError
        from runtime.job_queues import configured_jobs

        try:
            return configured_jobs(self.settings)
        except JobsFileError as error:
            raise UserError("the jobs file has problems:\n" + "\n".join(error.problems)) from None

    def use_secret_key(self) -> None:
        """For commands that sign or encrypt (worker, api, demo, add-gmail): on the embedded
        defaults a missing key is made and kept locally (`runtime.local_key`)."""
        from runtime.local_key import LocalKeyError, with_local_secret_key

        try:
            self.settings = with_local_secret_key(self.settings, lambda text: self.err.print(text, highlight=False))
        except LocalKeyError as error:
            raise UserError(str(error)) from None
