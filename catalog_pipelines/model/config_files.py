"""YAML configuration files checked against pydantic models, with file and line in every error.

- `load_yaml(text)` parses safe YAML and remembers the line of every mapping key and list item
  (`line_of(doc, path)`); duplicate keys are errors (`DuplicateKeyError`).
- `validate(model, doc, file)` validates the decoded document against a pydantic model and turns
  each pydantic error into a `ConfigIssue(file, line, path, message)`: the line is that of the node
  the error's `loc` points at, an unknown key gets a "did you mean" hint from the model's fields.
- `json_schema(model)` is the JSON Schema editors use (the YAML language server), written by
  `catalog-pipelines config schema`.

No I/O and no Dagster here: callers read the files.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

# ---------------------------------------------------------------------------------------------
# YAML with line numbers


class _Map(dict):
    line: int
    key_lines: dict[Any, int]


class _Seq(list):
    line: int
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, line: int):
        self.key, self.line = key, line
        super().__init__(f"duplicate key {key!r}")


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise DuplicateKeyError(key, key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> _Seq:
    out = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def load_yaml(text: str) -> Any:
    """Safe YAML whose mappings and lists know their lines. Raises yaml.YAMLError (DuplicateKeyError)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def yaml_error_line(exc: yaml.YAMLError) -> int:
    if isinstance(exc, DuplicateKeyError):
        return exc.line
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else 1


def line(container: Any, key: Any = None, default: int = 1) -> int:
    """The line of `container[key]` (or of the container itself when key is None)."""
    if isinstance(container, _Map):
        return container.key_lines.get(key, container.line) if key is not None else container.line
    if isinstance(container, _Seq):
        if isinstance(key, int) and 0 <= key < len(container.item_lines):
            return container.item_lines[key]
        return container.line
    return default


def line_of(doc: Any, path: tuple[Any, ...]) -> int:
    """The line of the deepest node of `path` that exists in `doc` (1 when none does)."""
    node, found = doc, line(doc)
    for part in path:
        if isinstance(node, dict) and part in node:
            found, node = line(node, part, found), node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            found, node = line(node, part, found), node[part]
        else:
            break
    return found


# ---------------------------------------------------------------------------------------------
# issues


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int
    message: str
    path: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}" if self.path else f"{self.file}:{self.line}: {self.message}"


def show_path(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def did_you_mean(value: Any, choices: typing.Iterable[str]) -> str:
    hint = difflib.get_close_matches(str(value), sorted(choices), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


# ---------------------------------------------------------------------------------------------
# pydantic errors -> issues


def _members(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [annotation]


def _step(annotation: Any, part: Any) -> list[Any]:
    """The annotations reached from `annotation` by one `loc` part."""
    out: list[Any] = []
    for member in _members(annotation):
        origin = typing.get_origin(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            for name, info in member.model_fields.items():
                if part in (name, info.alias):
                    out.append(info.annotation)
            if part == member.__name__:  # a union tag in loc
                out.append(member)
        elif origin in (list, tuple) and isinstance(part, int):
            out += list(typing.get_args(member)[:1])
        elif origin is dict:
            args = typing.get_args(member)
            out += list(args[1:2])
        elif isinstance(part, str) and isinstance(member, type) and member.__name__ == part:
            out.append(member)
    return out


def known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> set[str]:
    """The keys the model allows in the mapping at `loc`."""
    current: list[Any] = [model]
    for part in loc:
        current = [a for c in current for a in _step(c, part)] or current
    keys: set[str] = set()
    for member in (m for c in current for m in _members(c)):
        if isinstance(member, type) and issubclass(member, BaseModel):
            keys |= {info.alias or name for name, info in member.model_fields.items()}
    return keys


def _in_doc(doc: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """`loc` without pydantic's union tags: the parts that name nodes (or the last, missing key)."""
    node, out = doc, []
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
            out.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            out.append(part)
        elif i == len(loc) - 1 and isinstance(node, dict):
            out.append(part)
    return tuple(out)


def _message(model: type[BaseModel], error: Any) -> str:
    kind, loc = error["type"], tuple(error["loc"])
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}" + did_you_mean(loc[-1], known_keys(model, loc[:-1]))
    message = error["msg"]
    if message.startswith(("Value error, ", "Assertion failed, ")):
        message = message.split(", ", 1)[1]
    if kind == "missing":
        return f"missing required key {loc[-1]!r}"
    if kind in ("model_type", "dict_type"):  # a scalar or list where a mapping belongs
        keys = sorted(known_keys(model, loc)) if kind == "model_type" else []
        message = "must be a mapping" + (f" with keys among {', '.join(keys)}" if keys else "")
    value = error.get("input")
    if kind == "literal_error" and isinstance(value, str):
        choices = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        return f"{value!r} is not one of {', '.join(choices)}" + did_you_mean(value, choices)
    if kind not in ("value_error", "assertion_error") and not isinstance(value, dict | list):
        message += f", got {value!r}"
    return message


def issues_from(model: type[BaseModel], doc: Any, exc: ValidationError, file: str) -> list[ConfigIssue]:
    out: list[ConfigIssue] = []
    seen: set[tuple[int, str, str]] = set()
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        path = _in_doc(doc, loc)
        issue = ConfigIssue(file, line_of(doc, path), _message(model, error), show_path(path))
        if (issue.line, issue.path, issue.message) not in seen:
            seen.add((issue.line, issue.path, issue.message))
            out.append(issue)
    return sorted(out, key=lambda i: i.line)


M = typing.TypeVar("M", bound=BaseModel)


def validate(model: type[M], doc: Any, file: str, context: dict[str, Any] | None = None) -> tuple[M | None, list[ConfigIssue]]:
    """`(instance, [])` when `doc` fits the model, else `(None, issues)` with file:line for each."""
    try:
        return model.model_validate(doc, context=context), []
    except ValidationError as exc:
        return None, issues_from(model, doc, exc, file)


def validate_text(model: type[M], text: str, file: str) -> tuple[M | None, list[ConfigIssue]]:
    """Parse YAML text and validate it; YAML errors become issues too."""
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:
        return None, [yaml_issue(exc, file)]
    return validate(model, doc, file)


def yaml_issue(exc: yaml.YAMLError, file: str) -> ConfigIssue:
    """A YAML syntax error (or duplicate key) of `file` as an issue with its line."""
    problem = f"duplicate key {exc.key!r}" if isinstance(exc, DuplicateKeyError) else f"invalid YAML: {getattr(exc, 'problem', None) or exc}"
    return ConfigIssue(file, yaml_error_line(exc), problem)


def json_schema(model: type[BaseModel], title: str, description: str) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, "description": description, **{k: v for k, v in schema.items() if k not in ("title", "description")}}
