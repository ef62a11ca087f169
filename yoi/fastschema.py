"""A fast yes/no pre-check of records against the packaged JSON Schemas.

``schema.validate`` (jsonschema) reports every problem with a pointer and a message, and
costs a few hundred microseconds per record. Reading 10,000 tickets needs an answer in
microseconds, and nearly every record is valid. ``is_valid(kind, data)`` compiles each
schema once into plain Python closures and answers:

- ``True``: the record is valid (exactly the draft 2020-12 semantics of the keywords
  the schemas use);
- ``False`` or ``None`` (invalid, or not sure): ask ``schema.validate`` for the problems.

It is never more lenient than jsonschema: each supported keyword is implemented
exactly, a keyword it does not know makes the whole kind unsupported (always ``None``),
and a value that is not plain JSON data of the exact Python types yoi's loader produces
(``dict`` with ``str`` keys, ``list``, ``str``, ``int``, ``bool``, ``None``; no floats)
gives ``None``. ``tests/test_cache_schema.py`` checks the agreement on real and random
records.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

Result = bool | None  # True valid, False invalid, None unknown
Check = Callable[[Any], Result]

SCHEMA_DIR = Path(__file__).parent / "schemas"
BASE = "https://yoi.dev/schemas/"
ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "title",
        "description",
        "default",
        "examples",
        "format",
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
_TYPES: dict[type, str] = {
    str: "string",
    int: "integer",
    bool: "boolean",
    type(None): "null",
    list: "array",
    dict: "object",
}


class Unsupported(Exception):
    """The schema uses a keyword (or form) this module does not implement."""


def _all(results: list[Result]) -> Result:
    if False in results:
        return False
    return None if None in results else True


def _every(checks: list[Check]) -> Check:
    def check(v: Any) -> Result:
        result: Result = True
        for c in checks:
            r = c(v)
            if r is not True:
                if r is False:
                    return False
                result = None
        return result

    return check


_OBJECT_KEYWORDS = ("properties", "patternProperties", "additionalProperties", "required")


def _valid(v: Any) -> Result:
    return True


def _invalid(v: Any) -> Result:
    return False


# ----------------------------------------------------------------------------- keywords


def _type(arg: Any) -> Check:
    names = frozenset([arg] if isinstance(arg, str) else arg)
    if not names <= {*_TYPES.values(), "number"}:
        raise Unsupported(f"type {arg!r}")
    if "number" in names:
        names = names | {"integer"}

    def check(v: Any) -> Result:
        name = _TYPES.get(type(v))
        return None if name is None else name in names

    return check


def _scalar_key(v: Any) -> tuple[type, Any] | None:
    return (type(v), v) if type(v) in (str, int, bool, type(None)) else None


def _enum(values: list[Any]) -> Check:
    keys = {_scalar_key(v) for v in values}
    if None in keys:
        raise Unsupported("enum of non-scalars")

    def check(v: Any) -> Result:
        if type(v) not in _TYPES:
            return None
        return _scalar_key(v) in keys

    return check


def ecma_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` with ECMA-262 ``$`` (``\\Z`` outside classes); ``schema`` compiles the
    schemas' patterns with it too, so both checkers read a pattern alike."""
    out: list[str] = []
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            char = r"\Z"
        out.append(char)
    return re.compile("".join(out))


def _string(test: Callable[[str], bool]) -> Check:
    return lambda v: test(v) if type(v) is str else (True if type(v) in _TYPES else None)


def _number(test: Callable[[int], bool]) -> Check:
    return lambda v: test(v) if type(v) is int else (True if type(v) in _TYPES else None)


def _array(test: Callable[[list[Any]], Result]) -> Check:
    return lambda v: test(v) if type(v) is list else (True if type(v) in _TYPES else None)


def _object(test: Callable[[dict[str, Any]], Result]) -> Check:
    return lambda v: test(v) if type(v) is dict else (True if type(v) in _TYPES else None)


def _unique(items: list[Any]) -> Result:
    keys = [_scalar_key(i) for i in items]
    if None in keys:
        return None
    return len(set(keys)) == len(keys)


# ----------------------------------------------------------------------------- compiler


class _Compiler:
    def __init__(self, load: Callable[[str], Mapping[str, Any]]):
        self.load = load
        self.refs: dict[str, Check] = {}

    def ref(self, ref: str, base: str) -> Check:
        doc, _, frag = ref.partition("#")
        target = (doc or base) + "#" + frag
        if target not in self.refs:
            cell: list[Check] = []
            self.refs[target] = lambda v: cell[0](v)
            root_id = doc or base
            node: Any = self.load(root_id)
            for part in [p for p in frag.split("/") if p]:
                node = node[part]
            cell.append(self.node(node, root_id))
        return self.refs[target]

    def node(self, node: Any, base: str) -> Check:
        if node is True or node == {}:
            return _valid
        if node is False:
            return _invalid
        skip = {*ANNOTATIONS, "then", "else"}
        checks = []
        if any(k in node for k in _OBJECT_KEYWORDS):
            checks.append(self.object(node, base))
            skip.update(_OBJECT_KEYWORDS)
        checks.extend(self.keyword(k, arg, node, base) for k, arg in node.items() if k not in skip)
        return checks[0] if len(checks) == 1 else _every(checks)

    def object(self, node: Mapping[str, Any], base: str) -> Check:
        """properties, patternProperties, additionalProperties and required in one pass
        over the keys (the same semantics as the four keywords applied one by one)."""
        props = {k: self.node(s, base) for k, s in node.get("properties", {}).items()}
        pats = [
            (re.compile(p), self.node(s, base))
            for p, s in node.get("patternProperties", {}).items()
        ]
        extra = (
            self.node(node["additionalProperties"], base)
            if ("additionalProperties" in node)
            else None
        )
        required = tuple(node.get("required", ()))

        def check(d: Any) -> Result:
            if type(d) is not dict:
                return True if type(d) in _TYPES else None
            for k in required:
                if k not in d:
                    return False
            result: Result = True
            for k, v in d.items():
                sub = props.get(k)
                results = [] if sub is None else [sub(v)]
                for rx, pat in pats:
                    if rx.search(k):
                        results.append(pat(v))
                if not results and extra is not None:
                    results.append(extra(v))
                for r in results:
                    if r is False:
                        return False
                    if r is None:
                        result = None
            return result

        return check

    def keyword(self, key: str, arg: Any, node: Mapping[str, Any], base: str) -> Check:
        simple = _SIMPLE.get(key)
        if simple is not None:
            return simple(arg)
        method = getattr(self, "kw_" + key.lstrip("$"), None)
        if method is None:
            raise Unsupported(key)
        check: Check = method(arg, node, base)
        return check

    def kw_ref(self, arg: str, node: Mapping[str, Any], base: str) -> Check:
        return self.ref(arg, base)

    def kw_properties(self, arg: Mapping[str, Any], node: Mapping[str, Any], base: str) -> Check:
        props = {k: self.node(s, base) for k, s in arg.items()}
        return _object(lambda d: _all([c(d[k]) for k, c in props.items() if k in d]))

    def kw_patternProperties(
        self, arg: Mapping[str, Any], node: Mapping[str, Any], base: str
    ) -> Check:
        pats = [(re.compile(p), self.node(s, base)) for p, s in arg.items()]
        return _object(
            lambda d: _all([c(v) for k, v in d.items() for rx, c in pats if rx.search(k)])
        )

    def kw_additionalProperties(self, arg: Any, node: Mapping[str, Any], base: str) -> Check:
        known = frozenset(node.get("properties", {}))
        pats = [re.compile(p) for p in node.get("patternProperties", {})]
        sub = self.node(arg, base)

        def extra(d: dict[str, Any]) -> Result:
            return _all(
                [
                    sub(v)
                    for k, v in d.items()
                    if k not in known and not any(rx.search(k) for rx in pats)
                ]
            )

        return _object(extra)

    def kw_propertyNames(self, arg: Any, node: Mapping[str, Any], base: str) -> Check:
        sub = self.node(arg, base)
        return _object(lambda d: _all([sub(k) for k in d]))

    def kw_items(self, arg: Any, node: Mapping[str, Any], base: str) -> Check:
        sub = self.node(arg, base)
        return _array(lambda items: _all([sub(i) for i in items]))

    def kw_allOf(self, arg: list[Any], node: Mapping[str, Any], base: str) -> Check:
        subs = [self.node(s, base) for s in arg]
        return lambda v: _all([s(v) for s in subs])

    def kw_oneOf(self, arg: list[Any], node: Mapping[str, Any], base: str) -> Check:
        subs = [self.node(s, base) for s in arg]

        def check(v: Any) -> Result:
            results = [s(v) for s in subs]
            return None if None in results else results.count(True) == 1

        return check

    def kw_if(self, arg: Any, node: Mapping[str, Any], base: str) -> Check:
        cond = self.node(arg, base)
        then = self.node(node.get("then", True), base)
        else_ = self.node(node.get("else", True), base)

        def check(v: Any) -> Result:
            chosen = cond(v)
            if chosen is None:
                return None
            return then(v) if chosen else else_(v)

        return check


def _required(arg: list[str]) -> Check:
    keys = tuple(arg)
    return _object(lambda d: all(k in d for k in keys))


def _pattern(arg: str) -> Check:
    search = ecma_pattern(arg).search
    return _string(lambda s: search(s) is not None)


_SIMPLE: dict[str, Callable[[Any], Check]] = {
    "type": _type,
    "enum": _enum,
    "const": lambda a: _enum([a]),
    "pattern": _pattern,
    "minLength": lambda n: _string(lambda s: len(s) >= n),
    "maxLength": lambda n: _string(lambda s: len(s) <= n),
    "minimum": lambda n: _number(lambda i: i >= n),
    "maximum": lambda n: _number(lambda i: i <= n),
    "exclusiveMinimum": lambda n: _number(lambda i: i > n),
    "exclusiveMaximum": lambda n: _number(lambda i: i < n),
    "required": _required,
    "minItems": lambda n: _array(lambda items: len(items) >= n),
    "maxItems": lambda n: _array(lambda items: len(items) <= n),
    "uniqueItems": lambda on: _array(_unique) if on else _valid,
}


def _load_packaged(doc_id: str) -> Mapping[str, Any]:
    if not doc_id.startswith(BASE):
        raise Unsupported(f"$ref to {doc_id}")
    return _schema_json(doc_id[len(BASE) :])


@functools.cache
def _schema_json(name: str) -> Mapping[str, Any]:
    path = SCHEMA_DIR / name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        from yoi import schema

        text = schema.schema_text(name.removesuffix(".schema.json"))
    data: Mapping[str, Any] = json.loads(text)
    return data


@functools.cache
def checker(kind: str) -> Check | None:
    """The compiled check of ``kind``, or None when its schema is not supported."""
    try:
        return _Compiler(_load_packaged).ref(f"{BASE}{kind}.schema.json", BASE)
    except (Unsupported, OSError, ValueError, KeyError, re.error):
        return None


def plain(data: Any, depth: int = 0) -> bool:
    """JSON data of the exact types the loaders produce (str keys, no floats)."""
    kind = type(data)
    if kind is dict:
        return depth < 64 and all(type(k) is str and plain(v, depth + 1) for k, v in data.items())
    if kind is list:
        return depth < 64 and all(plain(v, depth + 1) for v in data)
    return kind in _SCALARS


_SCALARS = (str, int, bool, type(None))


def is_valid(kind: str, data: Any) -> Result:
    """True when ``data`` is certainly a valid ``kind`` record; else False or None."""
    check = checker(kind)
    if check is None or not plain(data):
        return None
    return check(data)
