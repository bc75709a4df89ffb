"""Campaign files: problems reported as `file:line: field: message`, all at once."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from domain.campaign_yaml import CampaignFileError, load_campaign_file
from schemas.enums import Channel

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

VALID = """\
name: Spring outreach
timezone: America/New_York
lead_groups: [Group A]
senders:
  email: [sales@outbound.example]
  sms: ["+15005550006"]
steps:
  - channel: email
    subject: Hello
    body: Hi {{ first_name | default("there") }}
  - channel: sms
    wait: 2d
    body: Following up
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "campaign.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(CampaignFileError) as raised:
        load_campaign_file(path)
    return [problem.removeprefix(f"{path}:") for problem in raised.value.problems]


def test_a_valid_file_loads() -> None:
    spec = load_campaign_file(EXAMPLES / "demo-campaign.yaml")
    assert spec.lead_groups == ["Group A", "Group B"]
    assert [step.channel for step in spec.steps] == [Channel.EMAIL, Channel.SMS, Channel.VOICEMAIL]
    assert spec.window.always
    assert spec.steps[1].wait.seconds == 20


def test_a_bad_value_is_reported_at_its_line_with_its_field_path(tmp_path: Path) -> None:
    text = VALID.replace("timezone: America/New_York", "timezone: Mars/Olympus").replace("wait: 2d", "wait: 2 days")
    assert problems(tmp_path, text) == [
        "2: timezone: unknown time zone 'Mars/Olympus' (use an IANA name such as America/New_York)",
        "12: steps[1].wait: invalid duration '2 days': use a number with a unit, e.g. 30s, 15m, 4h, 2d, 1w",
    ]


def test_an_unknown_key_is_reported_at_the_key(tmp_path: Path) -> None:
    text = VALID.replace("    subject: Hello\n", "    subject: Hello\n    subjet: typo\n")
    assert problems(tmp_path, text) == ["10: steps[0].subjet: Extra inputs are not permitted"]


def test_a_missing_field_is_reported_at_its_parent(tmp_path: Path) -> None:
    text = VALID.replace('    body: Hi {{ first_name | default("there") }}\n', "")
    assert problems(tmp_path, text) == ["8: steps[0]: an email step needs a body"]


THREAD = (
    VALID
    + """\
  - channel: email
    wait: 1d
    body: Any thoughts?
"""
)


def test_a_threaded_follow_up_may_leave_the_subject_out(tmp_path: Path) -> None:
    spec = load_campaign_file(write(tmp_path, THREAD))
    assert spec.steps[2].subject is None


def test_the_first_email_and_a_new_thread_need_a_subject(tmp_path: Path) -> None:
    assert problems(tmp_path, THREAD.replace("    subject: Hello\n", "")) == [
        "8: steps[0]: the campaign's first email needs a subject (only a follow-up in the same thread may"
        " leave it out: it is sent as 'Re: <the thread's subject>')"
    ]
    new_thread = THREAD.replace("    body: Any thoughts?\n", "    new_thread: true\n    body: Any thoughts?\n")
    assert problems(tmp_path, new_thread) == [
        "14: steps[2]: an email that starts a new thread needs a subject (only a follow-up in the same thread"
        " may leave it out: it is sent as 'Re: <the thread's subject>')"
    ]


def test_a_missing_top_level_field_is_reported_at_the_first_line(tmp_path: Path) -> None:
    assert problems(tmp_path, VALID.replace("name: Spring outreach\n", "")) == ["1: name: Field required"]


def test_a_duplicated_key_is_an_error_not_silently_the_last_value(tmp_path: Path) -> None:
    text = VALID.replace("    body: Following up\n", "    body: Following up\n    body: Again\n")
    assert problems(tmp_path, text) == ["14: duplicate key 'body'"]


def test_clock_times_are_not_read_as_base_60_numbers(tmp_path: Path) -> None:
    # YAML 1.1 reads 17:00 as 1020; the window would silently end at 00:17.
    spec = load_campaign_file(write(tmp_path, VALID + "window:\n  start: 08:30\n  end: 17:00\n"))
    assert (spec.window.start, spec.window.end) == (time(8, 30), time(17, 0))


def test_invalid_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, VALID.replace("lead_groups: [Group A]", "lead_groups: [Group A"))
    assert problem.startswith("4: not valid YAML: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "the campaign file is empty"), ("- a\n- b\n", "the campaign file is a list, not a mapping")],
)
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    [problem] = problems(tmp_path, text)
    assert problem.startswith(f"1: {expected}")


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(CampaignFileError, match=r"nope\.yaml: no such file"):
        load_campaign_file(tmp_path / "nope.yaml")
