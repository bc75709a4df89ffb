"""Message templates: sandboxed, strict about variables, checked at campaign creation."""

from __future__ import annotations

import pytest

from db.models import Contact
from domain import templates
from domain.templates import TemplateRenderError, check_templates, contact_context, render_template

STANDARD = {"email", "phone", "first_name", "last_name", "company", "title", "timezone"}


def test_variables_are_rendered_as_plain_text_without_html_escaping() -> None:
    text = render_template(
        "Hi {{ first_name }} at {{ company }}", {"first_name": "Ann", "company": "Smith & Sons <Ltd>"}
    )
    assert text == "Hi Ann at Smith & Sons <Ltd>"


def test_a_default_applies_when_the_variable_is_missing() -> None:
    assert render_template('Hi {{ first_name | default("there") }},', {}) == "Hi there,"


def test_a_missing_variable_without_a_default_fails_naming_the_field_and_variable() -> None:
    with pytest.raises(TemplateRenderError, match=r"^steps\[0\]\.body: 'first_name' is undefined$"):
        render_template("Hi {{ first_name }}", {"email": "ann@example.com"}, field="steps[0].body")


def test_an_error_message_never_contains_contact_values() -> None:
    context = {"email": "ann@example.com", "phone": "+14155550101"}
    with pytest.raises(TemplateRenderError) as raised:
        render_template('{{ {"x": 1}[email] }} {{ phone ~ 1 + 1 }}', context, field="steps[0].body")
    message = str(raised.value)
    assert message.startswith("steps[0].body: ")
    assert "ann@example.com" not in message
    assert "+14155550101" not in message


def test_templates_cannot_reach_python_internals() -> None:
    with pytest.raises(TemplateRenderError, match="unsafe"):
        render_template("{{ email.__class__.__mro__ }}", {"email": "ann@example.com"})


def test_a_syntax_error_names_the_field_and_line() -> None:
    with pytest.raises(TemplateRenderError, match=r"^steps\[1\]\.subject: syntax error on line 2: "):
        render_template("Hello\n{{ first_name ", {}, field="steps[1].subject")


def test_a_template_is_compiled_once_for_many_contacts() -> None:
    source = "Hi {{ first_name }} (cache test)"
    before = templates._compile.cache_info()
    for index in range(100):
        render_template(source, {"first_name": f"P{index}"})
    after = templates._compile.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 99


def test_the_contact_context_leaves_out_empty_fields_so_defaults_apply() -> None:
    contact = Contact(
        email="ann@example.com",
        phone=None,
        first_name="",
        company="Acme",
        variables={"pain_point": "slow follow-ups", "empty": "", "none": None},
    )
    context = contact_context(contact)
    assert context == {"email": "ann@example.com", "company": "Acme", "pain_point": "slow follow-ups"}
    assert render_template('Hi {{ first_name | default("there") }}', context) == "Hi there"


def test_standard_fields_win_over_custom_variables_of_the_same_name() -> None:
    contact = Contact(email="ann@example.com", variables={"email": "other@example.com"})
    assert contact_context(contact)["email"] == "ann@example.com"


def test_templates_using_known_variables_and_defaults_pass_the_check() -> None:
    check_templates(
        {
            "steps[0].subject": "Idea for {{ company | default('your team') }}",
            "steps[0].body": "Hi {{ first_name }}, {{ pain_point }} {{ unknown | default('') }}",
            "steps[1].body": "{% if nickname is defined %}{{ nickname }}{% else %}Hi{% endif %}",
        },
        STANDARD | {"pain_point"},
    )


def test_the_check_names_the_field_and_the_undefined_variable() -> None:
    with pytest.raises(TemplateRenderError, match=r"steps\[2\]\.say: 'pain_piont' is undefined \(known: "):
        check_templates({"steps[2].say": "About {{ pain_piont }}"}, STANDARD | {"pain_point"})


def test_the_check_finds_undefined_variables_in_branches_the_placeholders_skip() -> None:
    source = "{% if not company %}{{ nickname }}{% endif %}Hi"
    with pytest.raises(TemplateRenderError, match="'nickname' is undefined"):
        check_templates({"steps[0].body": source}, STANDARD)


def test_the_check_reports_every_problem_at_once() -> None:
    with pytest.raises(TemplateRenderError) as raised:
        check_templates(
            {"steps[0].subject": "{{ oops", "steps[0].body": "{{ a }} {{ b }}", "steps[1].body": "fine"}, STANDARD
        )
    assert [problem.split(":")[0] for problem in raised.value.problems] == [
        "steps[0].subject",
        "steps[0].body",
        "steps[0].body",
    ]
    assert "'a' is undefined" in raised.value.problems[1]
    assert "'b' is undefined" in raised.value.problems[2]
