"""`jobs.yaml` loaded into `JobsFile`, every problem at its line (`domain.yaml_files`)."""

from __future__ import annotations

from pathlib import Path

from domain.yaml_files import YamlFileError, load_yaml_model
from schemas.jobs_file import JobsFile


class JobsFileError(YamlFileError):
    """A jobs file that cannot be used; `problems` holds one line per problem."""


def load_jobs_file(path: Path) -> JobsFile:
    return load_yaml_model(path, JobsFile, what="the jobs file", expected="queues", error=JobsFileError)
