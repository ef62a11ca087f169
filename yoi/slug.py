"""Ticket slugs (SPEC §1): ``YYYYMMDD-HHMMSS-<words>``, and resolving names to slugs.

A slug is the ticket's id and directory name, so it is strict: lowercase ASCII letters,
digits and single dashes, at most 64 characters. A name typed by a person resolves to a
slug by exact match, else a unique prefix, else a unique word-suffix
(``plan-tool`` names ``20260607-035710-ticket-orchestration-plan-tool``). Resolution only
ever returns a member of the slug list it was given, and only valid slugs are members:
a name is never used to build a path.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import datetime

from yoi.clock import compact
from yoi.errors import AmbiguousNameError, NotFoundError, UsageError

MAX_SLUG = 64
MAX_WORDS = 40
SLUG_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[a-z0-9]+(-[a-z0-9]+)*$")
_STAMP = len("YYYYMMDD-HHMMSS-")
_NAME_CHARS = re.compile(r"[a-z0-9-]+")
# Letters NFKD does not decompose into ASCII, with an obvious spelling.
_TRANSLIT = str.maketrans(
    {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}
)


def is_valid_slug(text: str) -> bool:
    return len(text) <= MAX_SLUG and SLUG_RE.fullmatch(text) is not None


def _trim(words: str, limit: int) -> str:
    """``words`` cut to ``limit`` chars, at a dash when there is one, never ending in one."""
    if len(words) <= limit:
        return words
    cut = words[:limit]
    if words[limit] != "-" and "-" in cut:
        cut = cut[: cut.rindex("-")]
    return cut.rstrip("-")


def words(title: str) -> str:
    """The words part of a slug: ``"Café: fix  the BUG!"`` -> ``"cafe-fix-the-bug"``."""
    decomposed = unicodedata.normalize("NFKD", title.lower().translate(_TRANSLIT)).lower()
    kept = []
    for char in decomposed:
        if char.isascii():
            kept.append(char if char.isalnum() else " ")
        elif unicodedata.category(char)[0] not in "LM":
            kept.append(" ")  # non-ASCII punctuation, symbols and spaces separate words
    joined = "-".join("".join(kept).split())
    return _trim(joined, MAX_WORDS) or "ticket"


def make_slug(title: str, when: datetime, exists: Callable[[str], bool]) -> str:
    """``YYYYMMDD-HHMMSS-<words>`` for ``when`` (UTC); ``-2``, ``-3``... while ``exists``."""
    stamp = compact(when)
    prefix = f"{stamp[:8]}-{stamp[8:]}-"
    base = words(title)
    slug = prefix + base
    attempt = 1
    while exists(slug):
        attempt += 1
        if attempt > 10_000:
            raise UsageError(f"no free slug for {prefix + base!r} after 10000 attempts")
        suffix = f"-{attempt}"
        slug = prefix + _trim(base, MAX_SLUG - len(prefix) - len(suffix)) + suffix
    return slug


def check_name(name: str) -> None:
    """Reject, with the reason, a name that can never match a slug."""
    problem = None
    if not name:
        problem = "it is empty"
    elif "/" in name or "\\" in name or ".." in name or "\0" in name:
        problem = "it contains a path separator, '..' or NUL"
    elif any(char.isspace() for char in name):
        problem = "it contains whitespace"
    elif name != name.lower():
        problem = "it contains uppercase letters (slugs are lowercase)"
    elif not _NAME_CHARS.fullmatch(name):
        problem = "it contains characters other than a-z, 0-9 and '-'"
    elif len(name) > MAX_SLUG:
        problem = f"it is longer than {MAX_SLUG} characters"
    if problem:
        raise UsageError(
            f"{name!r} cannot name a ticket: {problem}",
            hint="use the slug (YYYYMMDD-HHMMSS-words), a prefix of it, or its last words",
        )


def _word_suffixes(slug: str) -> list[str]:
    """Every ``-``-aligned suffix of the words part, longest first."""
    part = slug[_STAMP:]
    return [part] + [part[i + 1 :] for i, char in enumerate(part) if char == "-"]


def _matches(name: str, slug: str) -> tuple[bool, bool]:
    part = slug[_STAMP:]
    return slug.startswith(name), part == name or part.endswith("-" + name)


def _choose(name: str, prefix: list[str], suffix: list[str]) -> str:
    found = prefix or suffix
    if len(found) == 1:
        return found[0]
    if found:
        raise AmbiguousNameError(name, sorted(found))
    raise NotFoundError(f"no ticket named '{name}'", hint="`yoi ticket list` shows the tickets")


def resolve(name: str, slugs: Iterable[str]) -> str:
    """The one slug ``name`` names: exact, else unique prefix, else unique word-suffix.

    One pass over ``slugs`` (invalid entries are skipped). Use ``SlugIndex`` to resolve
    many names against the same list.
    """
    check_name(name)
    prefix: list[str] = []
    suffix: list[str] = []
    for slug in slugs:
        if not is_valid_slug(slug):
            continue
        if slug == name:
            return slug
        by_prefix, by_suffix = _matches(name, slug)
        if by_prefix:
            prefix.append(slug)
        elif by_suffix:
            suffix.append(slug)
    return _choose(name, prefix, suffix)


class SlugIndex:
    """Slugs indexed once for fast repeated resolution (sorted list + suffix table)."""

    def __init__(self, slugs: Iterable[str]):
        self._sorted = sorted({slug for slug in slugs if is_valid_slug(slug)})
        self._members = frozenset(self._sorted)
        self._by_suffix: dict[str, list[str]] = {}
        for slug in self._sorted:
            for tail in _word_suffixes(slug):
                self._by_suffix.setdefault(tail, []).append(slug)

    def __len__(self) -> int:
        return len(self._sorted)

    def __contains__(self, slug: object) -> bool:
        return slug in self._members

    def resolve(self, name: str) -> str:
        check_name(name)
        if name in self._members:
            return name
        start = bisect.bisect_left(self._sorted, name)
        # every slug starting with `name` sorts in [name, name + U+FFFF): no list copy
        end = bisect.bisect_left(self._sorted, name + "\uffff", lo=start)
        prefix = self._sorted[start:end]
        return _choose(name, prefix, [] if prefix else self._by_suffix.get(name, []))
