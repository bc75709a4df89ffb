"""Campaign files (YAML) loaded into `CampaignFile`, every problem at its line
(`domain.yaml_files`)."""

from __future__ import annotations

from pathlib import Path

from domain.yaml_files import YamlFileError, load_yaml_model
from schemas.campaign_file import CampaignFile


class CampaignFileError(YamlFileError):
    """A campaign file that cannot be used; `problems` holds one line per problem."""


def load_campaign_file(path: Path) -> CampaignFile:
    """Read and validate a campaign file; raise `CampaignFileError` listing every problem.
    The `ai:` prompts are read now, relative to the file, and kept with the campaign."""
    spec = load_yaml_model(
        path,
        CampaignFile,
        what="the campaign file",
        expected="name, lead_groups, senders, steps",
        error=CampaignFileError,
    )
    return with_prompts(spec, path.parent)


def with_prompts(spec: CampaignFile, folder: Path) -> CampaignFile:
    problems: list[str] = []
    texts = {}
    for name, text in spec.ai.items():
        prompt = folder / text.prompt
        try:
            texts[name] = text.model_copy(update={"prompt_text": prompt.read_text(encoding="utf-8")})
        except (OSError, UnicodeDecodeError) as error:
            problems.append(f"ai.{name}.prompt: cannot read {prompt}: {getattr(error, 'strerror', None) or error}")
    if problems:
        raise CampaignFileError(problems)
    return spec.model_copy(update={"ai": texts}) if texts else spec
