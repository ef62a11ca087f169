"""A fast reader for the YAML that yoi itself writes, and nothing more.

``yamlio`` (ruamel.yaml, strict) costs about a millisecond per small record; listing
10,000 tickets needs microseconds. ``load(text)`` reads the block-style subset that
``yamlio.dump`` produces and returns exactly what ``yamlio.load_plain(text)`` returns,
or ``None`` when the text is anything else, in which case the caller uses ``yamlio``
(which then also produces the right error for an invalid file). The accepted subset:

- a top-level block mapping; keys ``[A-Za-z_][A-Za-z0-9_-]*`` (not a null/bool word),
  no duplicates; nested mappings indented by 2; sequences as ``  - item`` (dash 2 deeper
  than the key, items that are mappings continue 2 deeper than the dash);
- scalars: plain strings that cannot be read as anything else, ``null``/``~``, the
  ``true``/``false`` spellings of the YAML 1.2 core schema, decimal ints without a sign
  or leading zero (other numbers: not accepted), single-line double-quoted strings with
  the common escapes, single-line single-quoted strings, ``[]`` and ``{}``, and literal
  blocks ``|`` / ``|-`` without an indentation indicator;
- no comments, tabs, trailing blanks, blank lines outside literal blocks, control or
  line-separator characters, documents markers, anchors, aliases or tags.

``tests/test_cache_yaml.py`` checks the equivalence with ``yamlio`` (real records,
hypothesis-generated data dumped by ``yamlio.dump``, and hostile texts).
"""

from __future__ import annotations

import re
from sys import intern
from typing import Any

from yoi.yamlrules import not_literal

MAX_CHARS = 256 * 1024
MAX_DEPTH = 16

# YAML's non-printable characters but the line feed: what a literal block cannot hold,
# and what this reader leaves to ruamel (one compiled pattern for both).
_BAD_CHARS = not_literal()
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_WORDS = frozenset(
    {
        "null",
        "Null",
        "NULL",
        "true",
        "True",
        "TRUE",
        "false",
        "False",
        "FALSE",
        "y",
        "Y",
        "n",
        "N",
        "yes",
        "Yes",
        "YES",
        "no",
        "No",
        "NO",
        "on",
        "On",
        "ON",
        "off",
        "Off",
        "OFF",
    }
)
_PLAIN_WORDS: dict[str, Any] = {
    "~": None,
    "null": None,
    "Null": None,
    "NULL": None,
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
}
_INT = re.compile(r"0|[1-9][0-9]*|-[1-9][0-9]*")
# The YAML 1.2 core schema's non-string plain scalars (yamlio._CORE_SCHEMA).
_CORE_TYPED = re.compile(
    r"~|null|Null|NULL|true|True|TRUE|false|False|FALSE"
    r"|[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+"
    r"|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_PLAIN_FIRST_BAD = frozenset("?:,[]{}#&*!|>'\"%@` ")
_TYPED_FIRST = frozenset("~nNtTfF0123456789-+.")  # where a core-schema non-string can start
_DQ = re.compile(r'"((?:[^"\\]|\\.)*)"')
_SQ = re.compile(r"'((?:[^']|'')*)'")
_ESCAPES = {
    "\\": "\\",
    '"': '"',
    "/": "/",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "f": "\f",
    "v": "\v",
    " ": " ",
}
_HEX = {"x": 2, "u": 4, "U": 8}


class _NotMine(Exception):
    """The text is outside the subset: let yamlio read it."""


def load(text: str) -> dict[str, Any] | None:
    """The mapping ``yamlio.load_plain(text)`` would return, or None (not sure)."""
    if len(text) > MAX_CHARS or not text.endswith("\n") or " \n" in text:
        return None  # too big, no final newline, or trailing blanks somewhere
    if _BAD_CHARS.search(text):
        return None
    lines = text.split("\n")
    lines.pop()
    if not lines:
        return None
    try:
        reader = _Reader(lines)
        data = reader.mapping(0, 0)
        if reader.i != len(lines):
            return None
    except (_NotMine, RecursionError):
        return None
    return data


class _Reader:
    __slots__ = ("i", "lines")

    def __init__(self, lines: list[str]):
        self.lines = lines
        self.i = 0

    def _indent_of(self, i: int) -> int:
        line = self.lines[i]
        stripped = len(line) - len(line.lstrip(" "))
        if stripped == len(line) or line.endswith(" "):
            raise _NotMine  # blank line, or trailing blanks
        return stripped

    def mapping(self, indent: int, depth: int, first: str | None = None) -> dict[str, Any]:
        """Entries at ``indent``; ``first`` is an entry already cut from a ``- `` line.
        (The loop handles ``key: scalar`` lines itself: they are most lines.)"""
        if depth > MAX_DEPTH:
            raise _NotMine
        out: dict[str, Any] = {}
        if first is not None:
            self._entry(out, first, indent, depth)
        lines, count, i = self.lines, len(self.lines), self.i
        while i < count:
            line = lines[i]
            at = len(line) - len(line.lstrip(" "))
            if at != indent:
                if at > indent:
                    raise _NotMine
                break
            key, _sep, value = (line[indent:] if indent else line).partition(":")
            if (
                value[:1] == " "
                and value[1:2] not in ("", " ", "|")
                and _KEY.fullmatch(key)
                and key not in _WORDS
                and key not in out
            ):
                out[intern(key)] = scalar(value[1:])
                i += 1
                continue
            self.i = i
            self._entry(out, line[indent:], indent, depth)
            i = self.i
        self.i = i
        return out

    def _entry(self, out: dict[str, Any], rest: str, indent: int, depth: int) -> None:
        key, sep, value = rest.partition(":")
        if not sep or not _KEY.fullmatch(key) or key in _WORDS or key in out:
            raise _NotMine
        self.i += 1
        key = intern(key)  # shared by every record: cheaper to cache and compare
        if not value:
            out[key] = self._nested(indent, depth)
        elif value[0] != " " or value[1:2] == " ":
            raise _NotMine
        elif value[1] == "|":
            out[key] = self._literal(value[1:], indent)
        else:
            out[key] = scalar(value[1:])

    def _nested(self, indent: int, depth: int) -> Any:
        if self.i >= len(self.lines):
            return None
        at = self._indent_of(self.i)
        if at <= indent:
            return None
        if at != indent + 2:
            raise _NotMine
        line = self.lines[self.i]
        if line.startswith("- ", at) or line.endswith("-"):
            return self.sequence(at, depth + 1)
        return self.mapping(at, depth + 1)

    def sequence(self, indent: int, depth: int) -> list[Any]:
        if depth > MAX_DEPTH:
            raise _NotMine
        out: list[Any] = []
        while self.i < len(self.lines):
            at = self._indent_of(self.i)
            if at < indent:
                break
            line = self.lines[self.i]
            if at > indent or not line.startswith("- ", at):
                raise _NotMine
            item = line[at + 2 :]
            if item[:1] in ("-", " ", "|", ">", "?", ""):
                raise _NotMine
            if item[0] not in "\"'" and _is_entry(item):
                out.append(self.mapping(at + 2, depth + 1, first=item))
            else:
                self.i += 1
                out.append(scalar(item))
        return out

    def _literal(self, header: str, indent: int) -> str:
        if header not in ("|", "|-"):
            raise _NotMine
        lines, start = self.lines, self.i
        if start >= len(lines) or not lines[start]:
            raise _NotMine
        block = len(lines[start]) - len(lines[start].lstrip(" "))
        if block <= indent:
            raise _NotMine
        pad = " " * block
        body: list[str] = []
        while self.i < len(lines):
            line = lines[self.i]
            if line:
                if not line.startswith(pad):
                    break
                if line.endswith(" ") or not line.strip(" "):
                    raise _NotMine
            body.append(line[block:])
            self.i += 1
        while body and not body[-1]:
            body.pop()  # trailing blank lines are not content (clip and strip)
        text = "\n".join(body)
        return text if header == "|-" else text + "\n"


def _is_entry(item: str) -> bool:
    """``key: value`` or ``key:`` (a mapping item), as opposed to a scalar item."""
    key, sep, value = item.partition(":")
    if not sep:
        return False
    if value and value[0] != " ":
        if "#" in item or ": " in item:
            raise _NotMine
        return False  # a plain scalar with a colon inside, like a:b
    if not _KEY.fullmatch(key):
        raise _NotMine
    return True


def scalar(text: str) -> Any:
    """One single-line scalar as ``yamlio.load_plain`` types it, else ``_NotMine``."""
    first = text[0]
    if first == '"':
        return _double(text)
    if first == "'":
        m = _SQ.fullmatch(text)
        if m is None:
            raise _NotMine
        return m.group(1).replace("''", "'")
    if text in ("[]", "{}"):
        return [] if text == "[]" else {}
    if first in _TYPED_FIRST:
        if text in _PLAIN_WORDS:
            return _PLAIN_WORDS[text]
        if _INT.fullmatch(text):
            return int(text)
        if first in "-+." or _CORE_TYPED.fullmatch(text):
            raise _NotMine
    elif first in _PLAIN_FIRST_BAD:
        raise _NotMine
    if ": " in text or " #" in text or text[-1] == ":":
        raise _NotMine
    return text


def _double(text: str) -> str:
    m = _DQ.fullmatch(text)
    if m is None:
        raise _NotMine
    body = m.group(1)
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        j = body.find("\\", i)
        if j < 0:
            out.append(body[i:])
            break
        out.append(body[i:j])
        code = body[j + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            i = j + 2
        elif code in _HEX:
            digits = body[j + 2 : j + 2 + _HEX[code]]
            if len(digits) != _HEX[code] or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise _NotMine
            value = int(digits, 16)
            if 0xD800 <= value <= 0xDFFF or value > 0x10FFFF:
                raise _NotMine
            out.append(chr(value))
            i = j + 2 + _HEX[code]
        else:
            raise _NotMine
    return "".join(out)
