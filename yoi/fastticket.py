"""Ticket front matter as yoi writes it, read and checked in one regular expression.

Listing 10,000 tickets from cold leaves about ten microseconds per ticket for reading
its YAML and checking it against ``ticket.schema.json``; the general fast path
(``fastyaml`` then ``fastschema``) takes several times that, and so does any loop over
lines in Python. ``load(front)`` matches the whole front matter against one compiled
pattern: a sequence, in any order, of the ticket's entries (``key: value`` for
scalars; ``key:`` then ``  - item`` lines for lists; ``blocked_on`` items as mappings
indented under their dash), where each value's pattern admits only YAML 1.2 scalars of
the type and form the schema asks for: a plain string starts with a letter and holds
no ``:`` or ``#`` and is not a null or bool word; quoted strings hold no escapes;
timestamps are quoted; numbers are in range. The captured values are then converted.

``load`` returns exactly the mapping ``yamlio.load_plain(front)`` returns when that
mapping is a valid ticket, or None for anything it does not vouch for: another layout,
an ``x-`` key, a duplicate key (an entry matched twice leaves fewer captures than
entries), an escape, a value of an unexpected form, an invalid ticket. None is not an
error: the caller takes the general path, which also words the error of an invalid
ticket. ``tests/test_fastticket.py`` holds the reader to ruamel.yaml plus jsonschema on
real tickets, generated ones and mutated texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

MAX_CHARS = 256 * 1024  # fastyaml.MAX_CHARS (not imported: its patterns cost a start-up)
_WORDS = r"(?!(?:null|Null|NULL|true|True|TRUE|false|False|FALSE)\n)"
_PLAIN = rf"{_WORDS}[A-Za-z][^:#\n]*"
_STRING = rf"{_PLAIN}|'(?:[^'\n]|'')*'|\"[^\"\\\\\n]*\""
_NONEMPTY = rf"{_PLAIN}|'(?:[^'\n]|'')+'|\"[^\"\\\\\n]+\""
_TS = r'"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z"'
_LABEL = rf"{_WORDS}[A-Za-z][A-Za-z0-9_./-]{{0,63}}"
_STATE = "planning|ready|queued|inprogress|done|blocked"
_KIND = "USER_INPUT|EXTERNAL_SYSTEM|DEPENDENCY_CHANGE|DESIGN_DECISION|ENVIRONMENT_ACCESS"


class _No(Exception):
    """Not a ticket this reader vouches for."""


def _string(value: str) -> str:
    first = value[0]
    if first == '"':
        return value[1:-1]
    if first == "'":
        return value[1:-1].replace("''", "'")
    return value


def _optional_string(value: str) -> str | None:
    return None if value == "null" else _string(value)


def _optional_int(value: str) -> int | None:
    return None if value == "null" else int(value)


def _unquote(value: str) -> str:
    return value[1:-1]


def _optional_ts(value: str) -> str | None:
    return None if value == "null" else value[1:-1]


def _items(convert: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def read(block: str) -> list[Any]:
        return [convert(line[4:]) for line in block[:-1].split("\n")]

    return read


def _labels(block: str) -> list[str]:
    labels = [line[4:] for line in block[:-1].split("\n")]
    if len(set(labels)) != len(labels):
        raise _No  # uniqueItems
    return labels


_BLOCKER_FIELD = (
    r"blocker_id: b[0-9]{1,6}"
    f"|kind: (?:{_KIND})"
    f"|description: (?:{_NONEMPTY})"
    "|resolved: (?:true|false)"
    f"|created_at: {_TS}"
    f"|resolved_at: (?:null|{_TS})"
)
_BLOCKER_VALUES: dict[str, Callable[[str], Any]] = {
    "blocker_id": str,
    "kind": str,
    "description": _string,
    "resolved": lambda v: v == "true",
    "created_at": _unquote,
    "resolved_at": _optional_ts,
}
_BLOCKER_REQUIRED = ("blocker_id", "kind", "description", "resolved")


def _blockers(block: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for line in block[:-1].split("\n"):
        if line[2] == "-":
            items.append({})
        key, _sep, value = line[4:].partition(": ")
        item = items[-1]
        if key in item:
            raise _No  # a duplicate key inside one blocker
        item[key] = _BLOCKER_VALUES[key](value)
    for item in items:
        for key in _BLOCKER_REQUIRED:
            if key not in item:
                raise _No
    return items


_OPTIONAL = f"null|{_STRING}"
_LEVEL = "[0-4]"
# key -> (pattern of the value, its conversion); lists have a pattern for their lines.
_SCALARS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "title": (_NONEMPTY, _string),
    "state": (_STATE, str),
    "created_at": (_TS, _unquote),
    "updated_at": (_TS, _unquote),
    "importance": (_LEVEL, int),
    "urgency": (_LEVEL, int),
    "assignee": (_OPTIONAL, _optional_string),
    "base_ref": (_OPTIONAL, _optional_string),
    "runner": (f"null|{_WORDS}[a-z][a-z0-9_-]{{0,39}}", _optional_string),
    "budget_ms": ("null|[1-9][0-9]{0,17}", _optional_int),
    "patch_file": (_OPTIONAL, _optional_string),
    "blocked_reason": (_OPTIONAL, _optional_string),
    "planning_reason": (_OPTIONAL, _optional_string),
    "queued_by": (_OPTIONAL, _optional_string),
    "queued_at": (f"null|{_TS}", _optional_ts),
    "branch": (_OPTIONAL, _optional_string),
    "last_run": ("null|(?=[^\n]{1,100}\n)[a-z]+-[0-9a-z-]+", _optional_string),
}
_LISTS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "acceptance_criteria": (f"(?:  - (?:{_NONEMPTY})\n)+", _items(_string)),
    "labels": (f"(?:  - {_LABEL}\n)+", _labels),
    "context_paths": (f"(?:  - (?:{_NONEMPTY})\n)+", _items(_string)),
    "blocked_on": (f"(?:  - (?:{_BLOCKER_FIELD})\n(?:    (?:{_BLOCKER_FIELD})\n)*)+", _blockers),
}


_REQUIRED = ("title", "state", "created_at", "updated_at")


def _compile() -> tuple[re.Pattern[str], list[tuple[str, Callable[[str], Any]]]]:
    """The document pattern, and per capture group its key and conversion (a list's
    ``key: []`` form has a group of its own)."""
    alternatives: list[str] = []
    groups: list[tuple[str, Callable[[str], Any]]] = []
    for key, (pattern, convert) in _SCALARS.items():
        alternatives.append(f"{key}: ({pattern})\n")
        groups.append((key, convert))
    for key, (pattern, convert) in _LISTS.items():
        alternatives.append(f"{key}:(?: (\\[\\])\n|\n({pattern}))")
        groups.extend([(key, lambda _v: []), (key, convert)])
    return re.compile("(?:" + "|".join(alternatives) + ")+"), groups


_DOCUMENT, _GROUPS = _compile()
_INDEX = {key: i for i, (key, convert) in reversed(list(enumerate(_GROUPS)))}  # first group
_LIST_PAIRS = [(_INDEX[key], _INDEX[key] + 1) for key in _LISTS]
_TITLE, _STATE_AT, _CREATED, _UPDATED = (_INDEX[k] for k in _REQUIRED)
_LABELS_AT = _INDEX["labels"] + 1
_BLOCKED_AT = _INDEX["blocked_on"] + 1


class Front:
    """A ticket front matter this reader vouched for (``match``): what a listing shows
    at once, every value on demand (``values``)."""

    __slots__ = ("blockers", "groups", "labels", "title")

    def __init__(
        self,
        groups: tuple[str | None, ...],
        title: str,
        labels: list[str],
        blockers: list[dict[str, Any]] | None,
    ):
        self.groups, self.title, self.labels, self.blockers = groups, title, labels, blockers

    @property
    def state(self) -> str:
        return self.groups[_STATE_AT] or ""

    @property
    def created_at(self) -> str:
        return _unquote(self.groups[_CREATED] or '""')

    def values(self) -> dict[str, Any]:
        """The mapping ``yamlio.load_plain`` gives for this front matter (fresh lists:
        the labels and blockers ``match`` read already are copied, not read again)."""
        out = {
            key: convert(value)
            for (key, convert), value in zip(_GROUPS, self.groups, strict=True)
            if value is not None and key not in _READ_BY_MATCH
        }
        if self.groups[_LABELS_AT - 1] is not None or self.groups[_LABELS_AT] is not None:
            out["labels"] = list(self.labels)
        if self.groups[_BLOCKED_AT - 1] is not None:
            out["blocked_on"] = []
        elif self.blockers is not None:
            out["blocked_on"] = [dict(b) for b in self.blockers]
        return out


_READ_BY_MATCH = frozenset({"labels", "blocked_on"})


def match(front: str) -> Front | None:
    """The front matter, checked, when it is a valid ticket in the shape this reader
    knows; None when not sure."""
    if not _clean(front):
        return None
    m = _DOCUMENT.fullmatch(front)
    if m is None:
        return None
    groups = m.groups()
    if len(groups) - groups.count(None) != front.count("\n") - front.count("\n  "):
        return None  # an entry repeated: the pattern keeps only its last capture
    for empty, items in _LIST_PAIRS:
        if groups[empty] is not None and groups[items] is not None:
            return None  # `key: []` and `key:` with items
    if None in (groups[_TITLE], groups[_STATE_AT], groups[_CREATED], groups[_UPDATED]):
        return None  # a required key is missing
    title = _string(groups[_TITLE] or "")
    labels = groups[_LABELS_AT]
    blocked = groups[_BLOCKED_AT]
    try:
        got = _labels(labels) if labels is not None else []
        blockers = _blockers(blocked) if blocked is not None else None
    except _No:
        return None
    return Front(groups, title, got, blockers) if len(title) <= 200 else None


def load(front: str) -> dict[str, Any] | None:
    """The valid ticket mapping ``yamlio.load_plain(front)`` gives, or None (not sure)."""
    found = match(front)
    return None if found is None else found.values()


def _clean(front: str) -> bool:
    """Small enough, ends with a newline, no trailing blanks, no control characters."""
    if len(front) > MAX_CHARS or " \n" in front or not front.endswith("\n"):
        return False
    if front.isascii():
        return front.replace("\n", " ").isprintable()
    from yoi.fastyaml import _BAD_CHARS

    return _BAD_CHARS.search(front) is None
