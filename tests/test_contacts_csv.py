"""Reading contact CSV files: normalisation, per-row errors with line numbers, streaming."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.contacts_csv import ContactCsv, ContactRecord, CsvFileError, RowError, open_contacts_csv, variable_name

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def read(text: str, **options: str) -> list[ContactRecord | RowError]:
    return list(ContactCsv(io.StringIO(text), **options))


def records(text: str, **options: str) -> list[ContactRecord]:
    rows = read(text, **options)
    assert all(isinstance(row, ContactRecord) for row in rows), [str(row) for row in rows]
    return [row for row in rows if isinstance(row, ContactRecord)]


def errors(text: str) -> list[str]:
    return [str(row) for row in read(text) if isinstance(row, RowError)]


def test_header_names_are_matched_whatever_their_case_and_spacing() -> None:
    [contact] = records(
        " EMAIL ,Phone Number,First Name,last_name,Company,TITLE,Time Zone\na@example.com,,Ann,Lee,Acme,CEO,UTC\n"
    )
    assert (contact.email, contact.first_name, contact.last_name, contact.company, contact.title, contact.timezone) == (
        "a@example.com",
        "Ann",
        "Lee",
        "Acme",
        "CEO",
        "UTC",
    )


def test_other_columns_become_template_variables_with_identifier_names() -> None:
    [contact] = records("email,Favourite Color,2024 Revenue ($),class\na@example.com,red,5m,VIP\n")
    assert contact.variables == {"favourite_color": "red", "v_2024_revenue": "5m", "class_": "VIP"}


@pytest.mark.parametrize(
    ("header", "name"), [("Favourite Color", "favourite_color"), ("  pain-point ", "pain_point"), ("If", "if_")]
)
def test_variable_names_are_valid_jinja_identifiers(header: str, name: str) -> None:
    assert variable_name(header) == name


def test_empty_cells_are_left_out_so_template_defaults_apply() -> None:
    [contact] = records("email,first_name,pain_point\na@example.com,  ,\n")
    assert contact.first_name is None
    assert contact.variables == {}


def test_emails_are_trimmed_and_lowercased() -> None:
    [contact] = records("email\n  Ann.Lee@Example.COM \n")
    assert contact.email == "ann.lee@example.com"


@pytest.mark.parametrize("phone", ["(415) 555-0101", "415-555-0101", "415.555.0101", "+1 415 555 0101", "14155550101"])
def test_phone_numbers_are_stored_in_e164(phone: str) -> None:
    [contact] = records(f'phone\n"{phone}"\n')
    assert contact.phone == "+14155550101"


def test_the_default_region_applies_to_numbers_without_a_country_code() -> None:
    [contact] = records("phone\n020 7946 0958\n", default_region="GB")
    assert contact.phone == "+442079460958"


def test_a_missing_time_zone_is_taken_from_the_phone_number_when_it_has_only_one() -> None:
    text = "phone,timezone\n(212) 555-0101,\n(800) 555-0100,\n(212) 555-0102,Europe/London\n"
    contacts = records(text)
    assert [contact.timezone for contact in contacts] == ["America/New_York", None, "Europe/London"]
    assert [contact.timezone_guessed for contact in contacts] == [True, False, False]


def test_an_unknown_default_region_is_refused() -> None:
    with pytest.raises(CsvFileError, match="unknown default region 'XX'"):
        read("email\n", default_region="XX")


def test_each_bad_row_is_reported_with_its_line_number_and_the_reason() -> None:
    text = "email,phone,timezone\n" + "ok@example.com,,\n" * 5 + "x@example.com,12,\n" + "bad@,,\n,,Mars/Base\n"
    assert errors(text) == [
        "line 7: phone '12' is not a valid phone number",
        "line 8: email 'bad@' is not a valid email address",
        "line 9: needs an email or a phone; unknown time zone 'Mars/Base' (use an IANA name such as America/New_York)",
    ]


@pytest.mark.parametrize(
    "email", ["plainaddress", "a@b", "a..b@example.com", ".a@example.com", "a@-example.com", "a b@x.io"]
)
def test_obviously_bad_emails_are_rejected(email: str) -> None:
    assert errors(f"email\n{email}\n") == [f"line 2: email '{email}' is not a valid email address"]


def test_line_numbers_are_physical_lines_despite_blank_lines_and_quoted_newlines() -> None:
    text = 'email,title\na@example.com,"Head of\nSales"\n\nb@example.com,CEO\nnot-an-email,x\n'
    rows = read(text)
    assert [row.line for row in rows] == [2, 5, 6]
    assert isinstance(rows[0], ContactRecord)
    assert rows[0].title == "Head of\nSales"


def test_a_row_needs_an_email_or_a_phone() -> None:
    assert errors("email,phone,first_name\n,,Ann\n") == ["line 2: needs an email or a phone"]


def test_a_row_with_more_fields_than_the_header_is_rejected_and_a_short_row_is_padded() -> None:
    rows = read("email,first_name\na@example.com,Ann,extra\nb@example.com\n")
    assert str(rows[0]) == "line 2: 3 fields but the header has 2"
    assert isinstance(rows[1], ContactRecord)
    assert rows[1].email == "b@example.com"


def test_overlong_names_are_rejected_rather_than_truncated() -> None:
    assert errors(f"email,company\na@example.com,{'x' * 201}\n") == ["line 2: company is longer than 200 characters"]


def test_semicolon_separated_files_from_spreadsheets_are_read() -> None:
    [contact] = records("email;first_name\na@example.com;Ann\n")
    assert contact.first_name == "Ann"


def test_a_file_without_an_email_or_phone_column_is_not_a_contacts_csv() -> None:
    with pytest.raises(CsvFileError, match="not a contacts CSV: the header needs an `email` or a `phone` column"):
        read("name,company\nAnn,Acme\n")


def test_a_file_without_a_header_row_is_refused() -> None:
    with pytest.raises(CsvFileError, match="looks like a contact, not a header"):
        read("ann@example.com,+14155550101\n")


def test_two_columns_meaning_the_same_field_are_refused() -> None:
    with pytest.raises(CsvFileError, match="columns 1 and 2 both mean 'email'"):
        read("Email,E-mail\n")


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(CsvFileError, match="the file is empty"):
        read("")


def test_a_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    with pytest.raises(CsvFileError, match="not a UTF-8 text file"), open_contacts_csv(path):
        pass


def test_a_missing_file_is_reported_by_name(tmp_path: Path) -> None:
    with pytest.raises(CsvFileError, match=r"cannot read .*missing\.csv"), open_contacts_csv(tmp_path / "missing.csv"):
        pass


def test_an_excel_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffemail\na@example.com\n".encode())
    with open_contacts_csv(path) as rows:
        assert [row.email for row in rows if isinstance(row, ContactRecord)] == ["a@example.com"]


class _LazyFile:
    """A file of `total` rows generated on demand, counting how many lines were read."""

    def __init__(self, total: int) -> None:
        self.read_lines = 0
        self._lines = self._generate(total)

    def _generate(self, total: int) -> Iterator[str]:
        yield "email,first_name\n"
        for index in range(total):
            yield f"person{index}@example.com,P{index}\n"

    def readline(self) -> str:
        return next(self)

    def __iter__(self) -> _LazyFile:
        return self

    def __next__(self) -> str:
        self.read_lines += 1
        return next(self._lines)


def test_rows_are_streamed_not_read_all_at_once() -> None:
    file = _LazyFile(100_000)
    rows = iter(ContactCsv(file))  # type: ignore[arg-type]
    first = next(rows)
    assert isinstance(first, ContactRecord)
    assert first.email == "person0@example.com"
    assert file.read_lines < 10


def test_the_example_files_are_clean_and_share_five_people() -> None:
    emails = []
    for name in ("leads-a.csv", "leads-b.csv"):
        with open_contacts_csv(EXAMPLES / name) as rows:
            contacts = [row for row in rows if isinstance(row, ContactRecord)]
            assert rows.custom_variables == ("pain_point",)
        assert len(contacts) == 30
        emails.append({contact.email for contact in contacts})
    assert len(emails[0] & emails[1]) == 5
