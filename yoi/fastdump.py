"""A fast writer for plain records: the exact text ``yamlio.dump`` produces, or None.

``yamlio.dump`` (ruamel.yaml's emitter) costs about a millisecond per record, and the
engine writes a dozen records per run. ``dump(data)`` emits the same bytes for the
common case and gives up (None: the caller uses ``yamlio.dump``) on anything it is not
sure of: keys other than ``[A-Za-z_][A-Za-z0-9_-]*``, floats, tuples, round-trip
objects, nested sequences, strings that need escapes, literal blocks
that need a chomping or indentation indicator. Which strings are quoted is decided by
``yamlio``'s own rules (``yamlrules``: a literal block when ``literal_ok``, double
quotes when a YAML 1.1 or 1.2 reader would type the text as something else).
``tests/test_cache_dump.py`` compares the two on hypothesis-generated and real records.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PLAIN_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_/")


class _NotMine(Exception):
    pass


def dump(data: Any) -> str | None:
    """``yamlio.dump(data)`` for a plain, non-empty mapping, or None when not sure."""
    if type(data) is not dict or not data:
        return None
    from yoi import yamlrules as rules

    writer = _Writer(rules.typed_elsewhere, rules.literal_ok, rules.not_literal().search)
    try:
        writer.mapping(data, 0, None)
    except (_NotMine, RecursionError):
        return None
    return "".join(writer.out)


def text(data: Any) -> tuple[str, bool]:
    """``yamlio.dump(data)``'s text, and whether this writer made it (True) or ruamel's
    emitter did (False: ruamel.yaml is imported only then)."""
    fast = dump(data)
    if fast is not None:
        return fast, True
    from yoi import yamlio

    return yamlio.dump(data), False


class _Writer:
    def __init__(
        self,
        typed: Callable[[str], bool],
        literal_ok: Callable[[str], bool],
        not_literal: Callable[[str], object],
    ):
        self.typed = typed
        self.literal_ok = literal_ok
        self.not_literal = not_literal
        self.out: list[str] = []

    def mapping(self, data: dict[Any, Any], indent: int, first: str | None) -> None:
        pad = " " * indent
        for i, (key, value) in enumerate(data.items()):
            if type(key) is not str or not _KEY.fullmatch(key) or self.typed(key):
                raise _NotMine
            self.value(f"{first if i == 0 and first is not None else pad}{key}:", value, indent)

    def value(self, head: str, value: Any, indent: int) -> None:
        kind = type(value)
        if kind is dict or kind is list:
            if not value:
                self.out.append(f"{head} {'{}' if kind is dict else '[]'}\n")
            else:
                self.out.append(head + "\n")
                self.nested(value, indent + 2)
        elif kind is str and self.literal_ok(value):
            self.out.append(f"{head} {self.literal(value, indent + 2)}")
        else:
            self.out.append(f"{head} {self.scalar(value)}\n")

    def nested(self, value: Any, indent: int) -> None:
        if type(value) is dict:
            self.mapping(value, indent, None)
            return
        pad = " " * indent
        for item in value:
            kind = type(item)
            if kind is dict and item:
                self.mapping(item, indent + 2, pad + "- ")
            elif kind is dict or kind is list:
                if item:
                    raise _NotMine  # a sequence in a sequence
                self.out.append(f"{pad}- {'{}' if kind is dict else '[]'}\n")
            elif kind is str and self.literal_ok(item):
                self.out.append(f"{pad}- {self.literal(item, indent + 2)}")
            else:
                self.out.append(f"{pad}- {self.scalar(item)}\n")

    def literal(self, text: str, indent: int) -> str:
        if text.endswith("\n\n"):
            raise _NotMine  # needs "|+"
        header = "|" if text.endswith("\n") else "|-"
        lines = text.split("\n")
        if header == "|":
            lines.pop()
        pad = " " * indent
        return header + "\n" + "".join(f"{pad}{line}\n" if line else "\n" for line in lines)

    def scalar(self, value: Any) -> str:
        kind: type = type(value)
        if kind is bool:
            return "true" if value else "false"
        if kind is int:
            return str(value)
        if value is None:
            return "null"
        if not isinstance(value, str) or kind is not str:
            raise _NotMine
        if "\n" in value or self.not_literal(value) or self.typed(value):
            if '"' in value or "\\" in value or "\n" in value or self.not_literal(value):
                raise _NotMine  # needs escapes: leave it to ruamel
            return f'"{value}"'
        if value[0] not in _PLAIN_FIRST or value[-1] == " ":
            raise _NotMine  # ruamel quotes these (or might): leave it to ruamel
        if value[-1] == ":" or ": " in value or " #" in value:
            if "'" in value:
                raise _NotMine
            return f"'{value}'"  # a plain scalar would be misread; ruamel single-quotes it
        return value
