"""Hand-edited YAML files (campaigns, job queues) loaded into pydantic models, with errors
that point at lines.

People edit these by hand, so every problem is reported at once as
`file:line: field.path: message`, the way compilers and linters do. The loader reads
YAML 1.2-style numbers: PyYAML's YAML 1.1 default turns `17:00` into the integer 1020
(base 60), which would silently become a wrong sending window.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Model = TypeVar("Model", bound=BaseModel)


class YamlFileError(ValueError):
    """A file that cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's sexagesimal numbers (`9:30` stays a string)."""


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def load_yaml_model(
    path: Path, model: type[Model], *, what: str, expected: str, error: type[YamlFileError] = YamlFileError
) -> Model:
    """Read and validate `path` as `model`; raise `error` listing every problem. `what` names
    the file ("the campaign file"), `expected` its top-level keys, for an empty or odd file."""
    node, data = _parse(path, what, error)
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        raise error([f"{path}:1: {what} is {kind} (expected {expected})"])
    problems = [f"{path}:{line}: {message}" for line, message in _duplicate_keys(node)]
    try:
        loaded = model.model_validate(data)
    except ValidationError as invalid:
        problems += [_describe(path, node, item) for item in invalid.errors(include_url=False)]
    if problems:
        raise error(problems)
    return loaded


def _parse(path: Path, what: str, failure: type[YamlFileError]) -> tuple[Node | None, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise failure([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise failure([f"{path}: cannot read {what} ({error})"]) from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        raise failure([f"{path}:{line}: not valid YAML: {error.problem or error}"]) from None
    except yaml.YAMLError as error:
        raise failure([f"{path}: not valid YAML: {error}"]) from None
    finally:
        loader.dispose()


# A whole-file check that blames one list item says so first: "steps[2]: ...".
_ITEM_BLAMED = re.compile(r"^(?P<field>[a-z_]+)\[(?P<index>\d+)\]:? (?P<message>.*)$", re.DOTALL)


def _describe(path: Path, root: Node | None, error: Any) -> str:
    loc = tuple(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    blamed = _ITEM_BLAMED.match(message) if not loc else None
    if blamed:
        loc, message = (blamed["field"], int(blamed["index"])), blamed["message"]
    field = _field_path(loc) or "(file)"
    return f"{path}:{_line_of(root, loc)}: {field}: {message}"


def _field_path(loc: tuple[Any, ...]) -> str:
    """Pydantic's loc as people write it: `steps[1].wait` (validator names left out)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _is_internal(part):
            text += f".{part}" if text else str(part)
    return text


def _is_internal(part: Any) -> bool:
    # Pydantic inserts pseudo-locations such as `function-before[_window(), SendingWindow]`.
    return isinstance(part, str) and ("[" in part or "(" in part)


def _line_of(root: Node | None, loc: tuple[Any, ...]) -> int:
    """The line of the deepest node on `loc` (a missing field reports its parent's line)."""
    if root is None:
        return 1
    node, line = root, root.start_mark.line + 1
    for part in loc:
        if isinstance(node, MappingNode) and isinstance(part, str):
            pair = next(((k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == part), None)
            if pair is None:
                if _is_internal(part):
                    continue
                break
            node, line = pair[1], pair[0].start_mark.line + 1
        elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        elif not _is_internal(part):
            break
    return line


def _duplicate_keys(node: Node | None) -> list[tuple[int, str]]:
    """YAML allows `subject:` twice and keeps the last; a hand-edited file should not."""
    found: list[tuple[int, str]] = []
    if isinstance(node, MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value in seen:
                found.append((key.start_mark.line + 1, f"duplicate key {key.value!r}"))
            seen.add(key.value if isinstance(key, ScalarNode) else "")
            found += _duplicate_keys(value)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            found += _duplicate_keys(item)
    return found
