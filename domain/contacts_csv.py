"""Contact CSV files: read, validate and normalise rows one at a time (no database).

Rows are streamed so a 100,000-row export never sits in memory at once, and each bad
row becomes a `RowError` with its physical line number instead of stopping the import:
a sales-ops person fixes the few bad lines and re-imports, which is idempotent.
"""

from __future__ import annotations

import csv
import keyword
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import phonenumbers

from domain.addresses import EMAIL_PATTERN, MAX_EMAIL_LENGTH, normalise_email, normalise_phone_with_zone, shorten
from schemas.campaign_file import validate_timezone

STANDARD_FIELDS = ("email", "phone", "first_name", "last_name", "company", "title", "timezone")
# Headers that exports from common CRMs use for the standard fields.
_ALIASES = {
    "e_mail": "email",
    "email_address": "email",
    "phone_number": "phone",
    "mobile": "phone",
    "mobile_phone": "phone",
    "firstname": "first_name",
    "lastname": "last_name",
    "company_name": "company",
    "job_title": "title",
    "time_zone": "timezone",
    "tz": "timezone",
}
_MAX_LENGTHS = {
    "email": MAX_EMAIL_LENGTH,
    "first_name": 200,
    "last_name": 200,
    "company": 200,
    "title": 200,
    "timezone": 64,
}
# Words a Jinja expression cannot use as a plain variable name.
_JINJA_RESERVED = {"true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if", "else"}
_DELIMITERS = (",", ";", "\t")


class CsvFileError(ValueError):
    """The file as a whole is unusable (unreadable, not text, not a contacts CSV)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactRecord:
    """One valid, normalised contact row; `line` is where it starts in the file.

    `timezone_guessed` marks a zone taken from the phone number: it fills a contact's
    missing zone but never replaces one the contact already has.
    """

    line: int
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    timezone: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    timezone_guessed: bool = False


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that was skipped, with the reason a person can act on."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def variable_name(header: str) -> str:
    """A CSV header as a template variable: `Favourite Color` -> `favourite_color`."""
    name = re.sub(r"[^0-9a-z]+", "_", header.strip().lower()).strip("_")
    if not name:
        return ""
    if name[0].isdigit():
        name = f"v_{name}"
    if keyword.iskeyword(name) or name in _JINJA_RESERVED:
        name = f"{name}_"
    return name


class ContactCsv:
    """A contacts CSV whose header has been checked; iterate it for records and errors.

    The header is read on construction so a wrong file fails before any row is used.
    """

    def __init__(self, file: TextIO, *, default_region: str = "US") -> None:
        if default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise CsvFileError(f"unknown default region {default_region!r} (use a code such as US or GB)")
        self._file = file
        self._region = default_region.upper()
        first_line = self._read_header_line()
        self._delimiter = max(_DELIMITERS, key=first_line.count)
        header = next(csv.reader([first_line], delimiter=self._delimiter), [])
        self._columns = _map_columns(header)
        self.custom_variables = tuple(name for name in self._columns if name and name not in STANDARD_FIELDS)

    def _read_header_line(self) -> str:
        try:
            line = self._file.readline()
        except UnicodeDecodeError:
            raise CsvFileError("this is not a UTF-8 text file; export the contacts as CSV (UTF-8)") from None
        if not line.strip():
            raise CsvFileError("the file is empty: a contacts CSV starts with a header row (email, phone, ...)")
        if "\x00" in line:
            raise CsvFileError("this is a binary file, not a CSV; export the contacts as CSV (UTF-8)")
        return line

    def __iter__(self) -> Iterator[ContactRecord | RowError]:
        reader = csv.reader(self._file, delimiter=self._delimiter)
        previous_end = 1  # the header line
        try:
            for row in reader:
                start, previous_end = previous_end + 1, reader.line_num + 1
                if any(cell.strip() for cell in row):
                    yield self._record(start, row)
        except UnicodeDecodeError:
            raise CsvFileError(f"the file is not UTF-8 text (near line {previous_end + 1})") from None
        except csv.Error as error:
            raise CsvFileError(f"line {previous_end + 1}: the CSV cannot be read ({error})") from None

    def _record(self, line: int, row: list[str]) -> ContactRecord | RowError:
        if len(row) > len(self._columns):
            return RowError(line, f"{len(row)} fields but the header has {len(self._columns)}")
        values: dict[str, str] = {}
        for name, cell in zip(self._columns, row, strict=False):
            if name and cell.strip():
                values[name] = cell.strip()
        problems: list[str] = []
        row_fields = set(values)
        if "email" not in values and "phone" not in values:
            problems.append("needs an email or a phone")
        standard: dict[str, str | None] = {}
        for name in STANDARD_FIELDS:
            if name in values:
                self._set_standard(name, values, standard, problems)
        if problems:
            return RowError(line, "; ".join(problems))
        guessed = "timezone" in standard and "timezone" not in row_fields
        return ContactRecord(line=line, variables=values, timezone_guessed=guessed, **standard)

    def _set_standard(
        self, name: str, values: dict[str, str], standard: dict[str, str | None], problems: list[str]
    ) -> None:
        """Move one standard field from `values` into `standard`, validated; a phone also
        gives the time zone when the row has none."""
        value = values.pop(name)
        try:
            if name == "email":
                standard[name] = normalise_email(value)
            elif name == "phone":
                find_zone = "timezone" not in values
                standard[name], zone = normalise_phone_with_zone(value, self._region, find_zone=find_zone)
                if zone:
                    standard["timezone"] = zone
            elif name == "timezone":
                standard[name] = validate_timezone(value)
            elif len(value) > _MAX_LENGTHS[name]:
                problems.append(f"{name} is longer than {_MAX_LENGTHS[name]} characters")
            else:
                standard[name] = value
        except ValueError as error:
            problems.append(str(error))


def _map_columns(header: list[str]) -> list[str]:
    """Column names as record fields; '' marks a column to ignore (no header text)."""
    columns: list[str] = []
    for cell in header:
        name = variable_name(cell)
        columns.append(_ALIASES.get(name, name))
    if any(_looks_like_data(cell) for cell in header):
        raise CsvFileError("the first line looks like a contact, not a header: add a header row (email, phone, ...)")
    if "email" not in columns and "phone" not in columns:
        looks_like_header = all(len(cell) <= 40 for cell in header)
        found = f" (found: {', '.join(shorten(c) for c in header[:10])})" if looks_like_header else ""
        raise CsvFileError(f"this is not a contacts CSV: the header needs an `email` or a `phone` column{found}")
    seen: dict[str, int] = {}
    for index, name in enumerate(columns, start=1):
        if name and name in seen:
            raise CsvFileError(f"columns {seen[name]} and {index} both mean {name!r}; keep one of them")
        seen[name] = index
    return columns


def _looks_like_data(cell: str) -> bool:
    value = cell.strip()
    return bool(EMAIL_PATTERN.match(value.lower())) or bool(re.fullmatch(r"\+?[\d\s().-]{7,}", value))


@contextmanager
def open_contacts_csv(path: Path, *, default_region: str = "US") -> Iterator[ContactCsv]:
    """Open a contacts CSV (UTF-8, with or without Excel's byte-order mark)."""
    try:
        file = path.open(encoding="utf-8-sig", newline="")
    except IsADirectoryError:
        raise CsvFileError(f"{path} is a directory, not a CSV file") from None
    except OSError as error:
        raise CsvFileError(f"cannot read {path}: {error.strerror or error}") from None
    with file:
        yield ContactCsv(file, default_region=default_region)
