"""Message templates: Jinja2 in a sandbox, strict about variables, checked before launch.

Templates are written by users, so they render in `SandboxedEnvironment`; undefined
variables raise (`StrictUndefined`) instead of sending "Hi ," to a prospect; and the
same checks run when a campaign is created so a typo fails then, not at 3 a.m. on
contact 40,000. Error messages name fields and variables, never contact values (they
end up in logs and workflow history).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

CONTACT_FIELDS = ("email", "phone", "first_name", "last_name", "company", "title", "timezone")
PLACEHOLDER = "placeholder"
_GUARD_FILTERS = frozenset({"default", "d"})
_GUARD_TESTS = frozenset({"defined", "undefined"})
_ENVIRONMENT = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class TemplateRenderError(Exception):
    """A template that cannot be rendered; the message is safe to log (no contact data)."""

    def __init__(self, message: str, *, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems or (message,)


@lru_cache(maxsize=1024)
def _compile(source: str) -> Template:
    """Compile once per distinct source: a step renders the same text for every contact."""
    return _ENVIRONMENT.from_string(source)


def render_template(source: str, context: Mapping[str, Any], *, field: str = "template") -> str:
    """Render `source` with `context`; `field` (e.g. `steps[0].body`) names it in errors."""
    try:
        return _compile(source).render(context)
    except TemplateSyntaxError as error:
        raise TemplateRenderError(_syntax_message(field, error)) from None
    except TemplateError as error:
        raise TemplateRenderError(f"{field}: {_redact(str(error), context)}") from None
    except Exception as error:  # e.g. TypeError from `{{ first_name + 1 }}`
        message = _redact(str(error), context)
        raise TemplateRenderError(f"{field}: {type(error).__name__}: {message}") from None


def _syntax_message(field: str, error: TemplateSyntaxError) -> str:
    return f"{field}: syntax error on line {error.lineno}: {error.message}"


def _redact(message: str, context: Mapping[str, Any]) -> str:
    """Remove any context value an exception message may quote (e.g. 'abc' in a KeyError)."""
    for value in context.values():
        text = str(value)
        if len(text) >= 3 and text in message:
            message = message.replace(text, "…")
    return message


class ContactFields(Protocol):
    """What a template can see of a contact (an ORM row or a read-only view)."""

    @property
    def variables(self) -> dict[str, Any]: ...


def contact_context(contact: ContactFields) -> dict[str, Any]:
    """The variables a template sees for one contact.

    Empty values are left out rather than set to "" so `{{ first_name | default("there") }}`
    falls back for a contact without a first name; a plain `{{ first_name }}` then fails
    for that contact, which is better than sending "Hi ,".
    """
    context: dict[str, Any] = {
        key: value for key, value in (contact.variables or {}).items() if value is not None and value != ""
    }
    for name in CONTACT_FIELDS:
        value = getattr(contact, name)
        if value is not None and value != "":
            context[name] = value
    return context


def check_templates(
    templates: Mapping[str, str], known_variables: set[str], objects: Mapping[str, Any] | None = None
) -> None:
    """Fail now for a template that could not render for the campaign's contacts.

    Each template (keyed by its field, e.g. `steps[1].body`) is rendered with every
    known variable set to a placeholder, which catches syntax errors and unknown
    variables on the rendered path; a static pass also catches unknown variables in
    branches the placeholders do not take, unless the name is guarded somewhere by
    `default` or `is defined`. Every problem is reported, not just the first.
    """
    context: dict[str, Any] = dict.fromkeys(known_variables, PLACEHOLDER) | dict(objects or {})
    known_variables = known_variables | set(objects or {})
    problems: list[str] = []
    for field, source in templates.items():
        problems += _problems_in(field, source, known_variables, context)
    if problems:
        raise TemplateRenderError("\n".join(problems), problems=tuple(problems))


def _problems_in(field: str, source: str, known_variables: set[str], context: Mapping[str, Any]) -> list[str]:
    try:
        unknown = sorted(_unguarded_unknown_names(source, known_variables))
        if not unknown:
            render_template(source, context, field=field)
    except TemplateSyntaxError as error:
        return [_syntax_message(field, error)]
    except TemplateRenderError as error:
        return [str(error)]
    return [f"{field}: {name!r} is undefined (known: {_known(known_variables)})" for name in unknown]


def _known(known_variables: set[str]) -> str:
    names = sorted(known_variables)
    return ", ".join(names[:20]) + (", …" if len(names) > 20 else "")


def uses_variable(source: str, name: str) -> bool:
    """Whether the template places `name` itself (say `{{ unsubscribe_url }}`)."""
    return name in _referenced_names(source)


@lru_cache(maxsize=1024)
def _referenced_names(source: str) -> frozenset[str]:
    try:
        return frozenset(meta.find_undeclared_variables(_ENVIRONMENT.parse(source)))
    except TemplateSyntaxError:
        return frozenset()


def _unguarded_unknown_names(source: str, known_variables: set[str]) -> set[str]:
    tree = _ENVIRONMENT.parse(source)
    unknown = meta.find_undeclared_variables(tree) - known_variables
    return unknown - _guarded_names(tree) if unknown else set()


def _guarded_names(tree: nodes.Node) -> set[str]:
    """Variables that appear under `| default(...)` or `is defined` anywhere in the template."""
    guarded: set[str] = set()
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        if node.name in _GUARD_FILTERS | _GUARD_TESTS:
            guarded |= {name.name for name in node.find_all(nodes.Name)}
    return guarded
