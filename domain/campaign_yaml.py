"""Campaign files (YAML) loaded into `CampaignFile`, every problem at its line
(`domain.yaml_files`)."""

from __future__ import annotations

from pathlib import Path

from domain.yaml_files import YamlFileError, load_yaml_model
from schemas.campaign_file import CampaignFile


class CampaignFileError(YamlFileError):
    """A campaign file that cannot be used; `problems` holds one line per problem."""


def load_campaign_file(path: Path) -> CampaignFile:
    """Read and validate a campaign file; raise `CampaignFileError` listing every problem."""
    return load_yaml_model(
        path,
        CampaignFile,
        what="the campaign file",
        expected="name, lead_groups, senders, steps",
        error=CampaignFileError,
    )
