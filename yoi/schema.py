"""The packaged JSON Schemas and record validation.

One schema per record kind ships in ``yoi/schemas/<kind>.schema.json`` (the published copy
is ``schemas/`` at the repository root). ``validate`` reports every problem with a JSON
pointer and a short message; ``check`` raises ``InvalidRecordError`` instead.

jsonschema (and other modules only needed on errors) are imported inside functions:
importing this module stays cheap.
Validators are compiled once per process and kept.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from yoi.errors import InvalidRecordError, Problem, UsageError
from yoi.fastschema import ecma_pattern

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

KINDS: tuple[str, ...] = (
    "ticket",
    "blocker_ref",
    "event",
    "context_snapshot",
    "workorder",
    "output_bundle",
    "run_record",
    "pause_state",
    "claim_record",
    "plan_record",
    "config",
)
SCHEMA_BASE = "https://yoi.dev/schemas/"

Parts = tuple[str | int, ...]
_Raw = tuple[Parts, str]  # (location in the data, message)
_SCALARS = (str, bool, int, float, type(None))
_SHOW_MAX = 80


def schema_id(kind: str) -> str:
    """The ``$id`` of a kind's schema."""
    return f"{SCHEMA_BASE}{_known(kind)}.schema.json"


_SCHEMAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas")


@functools.cache
def schema_text(kind: str) -> str:
    """The packaged schema of ``kind``, as JSON text."""
    path = os.path.join(_SCHEMAS, f"{_known(kind)}.schema.json")
    with open(path, encoding="utf-8") as f:  # not importlib.resources: ~3 ms of imports
        return f.read()


def load_schema(kind: str) -> dict[str, Any]:
    """The packaged schema of ``kind`` (a fresh dict; callers may modify it)."""
    data: dict[str, Any] = json.loads(schema_text(kind))
    return data


def validate(kind: str, data: object, path: str) -> list[Problem]:
    """Every problem of ``data`` as a ``kind`` record, sorted by JSON pointer.

    ``path`` only labels the problems (the file the data came from). Data that is not
    JSON-like (a datetime, a set, a non-string key...) is reported, never a crash.
    """
    validator = _validator(kind)
    foreign, clean = _foreign(data)
    raw = list(foreign)
    try:
        for error in validator.iter_errors(clean):  # type: ignore[arg-type]
            raw.extend(r for r in _expand(error) if not _under_any(r[0], foreign))
    except RecursionError:
        raw.append(((), "the data is nested too deeply to validate"))
    unique = {(parts, message) for parts, message in raw}
    ordered = sorted(unique, key=lambda r: (_sort_key(r[0]), r[1]))
    return [Problem(path=path, pointer=pointer(parts), message=msg) for parts, msg in ordered]


def check(kind: str, data: object, path: str) -> bool:
    """Raise ``InvalidRecordError(path, problems)`` unless ``data`` is a valid ``kind``.
    Data that ``fastschema`` vouches for is valid without jsonschema (the two are held
    equal by tests/test_cache_schema.py; then True); anything else gets jsonschema's
    problems."""
    from yoi import fastschema

    if fastschema.is_valid(kind, data) is True:
        return True
    problems = validate(kind, data, path)
    if problems:
        raise InvalidRecordError(path, problems)
    return False


def pointer(parts: Sequence[str | int]) -> str:
    """RFC 6901 JSON pointer of a location ("" is the root)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


# ----------------------------------------------------------------------------- compiling


def _known(kind: str) -> str:
    if kind not in KINDS:
        raise UsageError(f"unknown record kind '{kind}'; known kinds: {', '.join(KINDS)}")
    return kind


@functools.cache
def _validator(kind: str) -> Validator:
    validator: Validator = _validator_class()(load_schema(_known(kind)), registry=_registry())
    return validator


@functools.cache
def _registry() -> Any:
    from referencing import Registry, Resource

    resources_ = [(schema_id(k), Resource.from_contents(load_schema(k))) for k in KINDS]
    return Registry().with_resources(resources_)


@functools.cache
def _validator_class() -> Any:
    from jsonschema import Draft202012Validator, validators

    return validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator, {"pattern": _pattern}
    )


def _pattern(validator: Any, pattern: str, instance: object, schema: object) -> Iterator[Any]:
    """``pattern`` with ECMA-262 semantics for ``$`` (Python's ``$`` accepts a final newline)."""
    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and not _compiled(pattern).search(instance):
        message = f"{_show(instance)} does not match {pattern!r}"
        if isinstance(schema, Mapping) and "description" in schema:
            message += f" ({str(schema['description']).rstrip('.')})"
        yield ValidationError(message)


# ECMA-262 ``$`` (``\Z`` outside classes): the translation fastschema checks with too.
_compiled = functools.lru_cache(maxsize=256)(ecma_pattern)


# ----------------------------------------------------------------------------- foreign data


def _foreign(data: object) -> tuple[list[_Raw], object]:
    """Problems for values that are not JSON data, and the data with string keys only."""
    problems: list[_Raw] = []
    stack: list[tuple[Parts, object]] = [((), data)]
    bad_keys = False
    while stack:
        parts, value = stack.pop()
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    bad_keys = True
                    problems.append(((*parts, str(key)), f"key {key!r} is not a string"))
                stack.append(((*parts, str(key)), item))
        elif isinstance(value, list):
            stack.extend(((*parts, i), item) for i, item in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append((parts, f"{value!r} is not a valid number"))
        elif not isinstance(value, _SCALARS):
            problems.append((parts, _foreign_message(value)))
    return problems, (_string_keys(data) if bad_keys else data)


def _foreign_message(value: object) -> str:
    import datetime

    if isinstance(value, datetime.date | datetime.time):
        return "a date/time object is not valid here: write timestamps as quoted strings"
    return f"a {type(value).__name__} is not valid record data"


def _string_keys(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


def _under_any(parts: Parts, roots: list[_Raw]) -> bool:
    return any(parts[: len(root)] == root for root, _ in roots)


# ----------------------------------------------------------------------------- messages


def _expand(error: ValidationError) -> list[_Raw]:
    """One error as problems: unknown keys one by one, a oneOf by its matching branch."""
    if error.validator == "additionalProperties":
        return _unknown_keys(error)
    if error.validator == "oneOf":
        chosen = _one_of(error)
        if chosen is not None:
            return chosen
    parts: Parts = tuple(error.absolute_path)
    if "propertyNames" in error.schema_path:
        parts = (*parts, str(error.instance))
    return [(parts, _message(error))]


def _unknown_keys(error: ValidationError) -> list[_Raw]:
    import difflib

    schema = error.schema if isinstance(error.schema, Mapping) else {}
    known = list(schema.get("properties", {}))
    patterns = list(schema.get("patternProperties", {}))
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    base: Parts = tuple(error.absolute_path)
    out: list[_Raw] = []
    for key in instance:
        if key in known or any(re.search(p, key) for p in patterns):
            continue
        close = difflib.get_close_matches(key, known, n=1)
        if close:
            hint = f"did you mean {close[0]!r}?"
        else:
            extra = [f"keys matching {p!r}" for p in patterns]
            hint = "allowed: " + ", ".join([*known, *extra])
        out.append(((*base, key), f"unknown key {key!r} ({hint})"))
    return out


def _one_of(error: ValidationError) -> list[_Raw] | None:
    """Report a oneOf whose branches are told apart by a ``const`` (runner ``type``)."""
    if not error.context or not isinstance(error.validator_value, list):
        return None
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    consts = [e for e in error.context if e.validator == "const"]
    count = len(error.validator_value)
    open_ = [i for i in range(count) if all(e.validator != "const" for e in branches.get(i, []))]
    if len(open_) == 1:
        return [r for sub in branches[open_[0]] for r in _expand(sub)]
    at = {tuple(e.absolute_path) for e in consts}
    if not open_ and len(at) == 1:
        allowed = ", ".join(_show(e.validator_value) for e in consts)
        return [(at.pop(), f"{_show(consts[0].instance)} is not one of [{allowed}]")]
    common = set.intersection(*({r for e in b for r in _expand(e)} for b in branches.values()))
    return sorted(common, key=str) or None


def _message(error: ValidationError) -> str:
    formatter = _FORMATTERS.get(str(error.validator))
    text = formatter(error.instance, error.validator_value) if formatter else error.message
    schema = error.schema
    if "then" in error.schema_path and isinstance(schema, Mapping) and "description" in schema:
        text = f"{text} ({schema['description']})"
    return text if len(text) <= 400 else text[:397] + "..."


def _types(value: object) -> str:
    names = value if isinstance(value, list) else [value]
    return " or ".join(repr(n) for n in names)


_FORMATTERS: dict[str, Callable[[Any, Any], str]] = {
    "type": lambda inst, val: f"{_show(inst)} is not of type {_types(val)}",
    "enum": lambda inst, val: f"{_show(inst)} is not one of [{', '.join(map(_show, val))}]",
    "const": lambda inst, val: f"{_show(inst)} is not {_show(val)}",
    "maxLength": lambda inst, val: f"{_show(inst)} is longer than {val} characters",
    "minItems": lambda inst, val: f"has {len(inst)} items; at least {val} required",
    "maxItems": lambda inst, val: f"has {len(inst)} items; at most {val} allowed",
}


def _show(value: object) -> str:
    """A short, JSON-flavoured rendering of a value for messages."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    text = repr(value)
    return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 3] + "..."


def _sort_key(parts: Parts) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in parts)
