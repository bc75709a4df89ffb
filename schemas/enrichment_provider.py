"""An enrichment provider as a jobs file describes it (a queue with `handler: enrich`):
where to ask, how to authenticate, and which fields of its JSON answer become which
contact fields or template variables."""

from __future__ import annotations

import re
import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Contact columns a provider may fill (not the phone: sends need it in E.164, as imported).
CONTACT_FIELDS = ("first_name", "last_name", "company", "title", "timezone")
# What a URL or body template may name about the contact.
PLACEHOLDERS = ("email", "domain", "first_name", "last_name", "company", "phone")
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
PATH = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


class ProviderAuth(BaseModel):
    """A header whose value carries a secret from the settings, never from the file:
    `OUTBOUND_ENRICHMENT_SECRETS__<NAME>` (e.g. `OUTBOUND_ENRICHMENT_SECRETS__ACME_DATA=...`)."""

    model_config = ConfigDict(extra="forbid")

    header: str = Field("Authorization", pattern=r"^[A-Za-z0-9-]{1,64}$")
    value: str = Field("Bearer {secret}", description="The header's value; `{secret}` is replaced by the secret.")
    secret: str = Field(pattern=r"^[a-z0-9_]{1,64}$", description="The secret's name in the settings (lower case).")

    @field_validator("value")
    @classmethod
    def _has_secret(cls, value: str) -> str:
        if placeholders(value) != {"secret"}:
            raise ValueError("the header's value must contain {secret} and nothing else in braces")
        return value


class ProviderBatch(BaseModel):
    """A provider's batch endpoint: one POST for many contacts, `{"<key>": [emails]}`, whose
    answer lists one result per contact it knows, each naming the contact's email."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="The batch endpoint (POST, JSON).")
    size: int = Field(25, ge=2, le=100, description="Contacts per request, at most what the provider accepts.")
    key: str = Field("emails", pattern=r"^[A-Za-z0-9_]{1,64}$", description="The body's key for the list of emails.")
    results: str = Field("results", description="Path to the list of results in the answer.")
    match: str = Field("email", description="Path, within a result, to the email it is about.")

    @model_validator(mode="after")
    def _well_formed(self) -> ProviderBatch:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("batch.url must start with http:// or https://")
        if placeholders(self.url):
            raise ValueError("batch.url takes no placeholders: the contacts go in the body")
        for path in (self.results, self.match):
            if not PATH.match(path):
                raise ValueError(f"batch: {path!r} is not a path into the answer (a.b.0.c)")
        return self


class EnrichmentProvider(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="The provider's URL; {email}, {domain}, {first_name}, {last_name}, {company}, {phone} are"
        " replaced (URL-encoded) by the contact's values."
    )
    method: Literal["GET", "POST"] = "GET"
    body: dict[str, str] | None = Field(None, description="POST: a JSON object whose string values are templates.")
    auth: ProviderAuth | None = None
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Contact field: path into the JSON answer (`title: person.employment.title`).",
    )
    variables: dict[str, str] = Field(
        default_factory=dict,
        description="Template variable: path (`company_size: company.metrics.employees` → {{ company_size }}).",
    )
    overwrite: bool = Field(False, description="Replace values the contact already has (imported ones win otherwise).")
    batch: ProviderBatch | None = Field(None, description="Ask about many contacts per request, when the provider can.")

    @model_validator(mode="after")
    def _well_formed(self) -> EnrichmentProvider:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        templates = [self.url, *(self.body or {}).values()]
        unknown = sorted(set().union(*(placeholders(template) for template in templates)) - set(PLACEHOLDERS))
        if unknown:
            raise ValueError(f"unknown placeholder(s) {', '.join(unknown)}; known: {', '.join(PLACEHOLDERS)}")
        if self.body is not None and self.method != "POST":
            raise ValueError("a body needs method: POST")
        if not self.fields and not self.variables:
            raise ValueError("map at least one of `fields` (contact fields) and `variables` (template variables)")
        for target in self.fields:
            if target not in CONTACT_FIELDS:
                raise ValueError(
                    f"fields: {target!r} is not a contact field ({', '.join(CONTACT_FIELDS)});"
                    " anything else goes under `variables:`"
                )
        for target in self.variables:
            if not VARIABLE.match(target) or target in CONTACT_FIELDS:
                raise ValueError(f"variables: {target!r} is not a variable name (letters, digits, _; not a field)")
        for target, path in {**self.fields, **self.variables}.items():
            if not PATH.match(path):
                raise ValueError(f"{target}: {path!r} is not a path into the answer (a.b.0.c)")
        return self

    @property
    def mapping(self) -> dict[str, str]:
        """Every target and its path."""
        return {**self.fields, **self.variables}
