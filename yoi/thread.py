"""Thread files (``thread.md``): an append-only log of entries (SPEC §3).

Each entry is a marker line, a heading written from the marker's attributes, a blank
line, the Markdown body and one blank line::

    <!-- yoi:entry kind=decision author=alice at=2026-11-20T10:00:00Z -->
    ## Decision · alice · 2026-11-20 10:00 UTC

    Free Markdown body.

State, run and pause entries add one summary line under the heading (``**queued →
inprogress**: reason``). Heading and summary are derived from the attributes and
stripped again on parse, so ``parse_thread(render_entry(e)) == [e]``. ``Entry`` drops
trailing newlines from its body (they are layout), so every rendered entry ends with
exactly one blank line and an empty body renders as nothing after the heading's blank
line. Appending is concatenation; a final blank line lost to an editor is tolerated.

Attribute values are bare when they are non-empty and hold no whitespace, ``"``, ``\\``
or ``=``; otherwise they are double-quoted with ``\\"`` and ``\\\\`` escapes. Values may
not hold line breaks or ``-->``.

Injection: any line that starts with ``<!-- yoi:entry`` is a marker. A body line that
starts with backslashes followed by ``<!-- yoi:entry`` gets one more backslash on write
and loses one on parse, so a body can never forge an entry, and Markdown still shows the
line as text. Lines are split on ``\\n`` only. A file whose every line ends in CRLF (a
Windows checkout) is read as LF; otherwise a ``\\r`` is body text, and ignored at the end
of a marker line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yoi.clock import parse_ts
from yoi.errors import InvalidRecordError, Problem, UsageError

MARKER_PREFIX = "<!-- yoi:entry"

# kind -> (heading title, required extra attributes)
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "created": ("Created", ()),
    "comment": ("Comment", ()),
    "decision": ("Decision", ()),
    "plan": ("Plan", ()),
    "review": ("Review", ()),
    "state": ("State", ("from", "to")),
    "run": ("Run", ("run_id", "result")),
    "pause": ("Pause", ("pause_id", "reason")),
}
_CORE = ("kind", "author", "at")

_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_AT_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")
_BARE_RE = re.compile(r'[^\s"\\=]+')
_VALUE = r'"(?:[^"\\]|\\["\\])*"|[^\s"\\=]+'
_MARKER_RE = re.compile(rf"<!-- yoi:entry((?: +[a-z][a-z0-9_]*=(?:{_VALUE}))*) +-->")
_ATTR_RE = re.compile(rf" +([a-z][a-z0-9_]*)=({_VALUE})")
_ESCAPED_RE = re.compile(r"\\*<!-- yoi:entry")
_UNESCAPE_RE = re.compile(r"\\+<!-- yoi:entry")
_PARSE_HINT = "every line that starts with '<!-- yoi:entry' starts an entry: fix that line"


@dataclass(frozen=True)
class Entry:
    """One thread entry. ``attrs`` are the attributes beyond kind/author/at, in order."""

    kind: str
    author: str
    at: str
    attrs: tuple[tuple[str, str], ...] = field(default=())
    body: str = ""

    def __post_init__(self) -> None:
        # Trailing newlines are layout (the blank line that ends every entry), not content.
        if self.body.endswith("\n"):
            object.__setattr__(self, "body", self.body.rstrip("\n"))

    def get(self, name: str) -> str | None:
        if name in _CORE:
            return str(getattr(self, name))
        return next((value for key, value in self.attrs if key == name), None)

    @property
    def heading(self) -> str:
        title = KINDS.get(self.kind, (self.kind.capitalize(), ()))[0]
        shaped = _AT_RE.match(self.at)
        when = f"{self.at[:10]} {self.at[11:16]} UTC" if shaped else self.at
        return f"## {title} · {self.author} · {when}"

    @property
    def summary(self) -> str | None:
        """The line under the heading for state, run and pause entries."""
        get = self.get
        if self.kind == "state":
            reason = get("reason")
            return f"**{get('from')} → {get('to')}**" + (f": {reason}" if reason else "")
        if self.kind == "run":
            return f"Run `{get('run_id')}`: **{get('result')}**"
        if self.kind == "pause":
            return f"Paused: **{get('reason')}** (`{get('pause_id')}`)"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "author": self.author,
            "at": self.at,
            "attrs": dict(self.attrs),
            "body": self.body,
        }


def make_entry(
    kind: str, author: str, at: str, body: str = "", attrs: Mapping[str, str] | None = None
) -> Entry:
    """Build and validate an entry (``attrs`` keeps its order)."""
    entry = Entry(kind, author, at, tuple((attrs or {}).items()), body)
    validate_entry(entry)
    return entry


# ------------------------------------------------------------------------- validation


def _attr_problems(entry: Entry) -> list[str]:
    """Attribute names and values (the marker syntax guarantees these on parse)."""
    problems: list[str] = []
    names = [name for name, _ in entry.attrs]
    for name in names:
        if not _NAME_RE.fullmatch(name) or name in _CORE or names.count(name) > 1:
            problems.append(f"attribute name '{name}' is invalid or repeated")
    for name, value in [("author", entry.author), ("at", entry.at), *entry.attrs]:
        if "\n" in value or "\r" in value:
            problems.append(f"attribute '{name}' may not contain line breaks")
        if "-->" in value:
            problems.append(f"attribute '{name}' may not contain '-->'")
    return problems


def _shape_problems(entry: Entry) -> list[str]:
    """Known kind, an author, a valid timestamp and the kind's required attributes."""
    problems: list[str] = []
    if entry.kind not in KINDS:
        problems.append(f"unknown entry kind '{entry.kind}' (kinds: {', '.join(KINDS)})")
    if not entry.author:
        problems.append("attribute 'author' is empty")
    try:
        parse_ts(entry.at)
    except ValueError as exc:
        problems.append(f"attribute 'at': {exc}")
    for name in KINDS.get(entry.kind, ("", ()))[1]:
        if not entry.get(name):
            problems.append(f"a {entry.kind} entry needs attribute '{name}'")
    return problems


def validate_entry(entry: Entry) -> None:
    """Raise ``UsageError`` unless the entry has a known kind and its required attributes."""
    problems = _attr_problems(entry) + _shape_problems(entry)
    if problems:
        raise UsageError(f"invalid thread entry: {'; '.join(problems)}")


# --------------------------------------------------------------------------- rendering


def _quote(value: str) -> str:
    if _BARE_RE.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def marker_line(entry: Entry) -> str:
    pairs = [("kind", entry.kind), ("author", entry.author), ("at", entry.at), *entry.attrs]
    return MARKER_PREFIX + "".join(f" {name}={_quote(value)}" for name, value in pairs) + " -->"


def _escape_body(body: str) -> str:
    if MARKER_PREFIX not in body:
        return body
    lines = body.split("\n")
    return "\n".join("\\" + line if _ESCAPED_RE.match(line) else line for line in lines)


def _header(entry: Entry) -> str:
    summary = entry.summary
    return entry.heading + "\n" + (summary + "\n" if summary is not None else "")


def render_entry(entry: Entry) -> str:
    """The entry as thread text, ending with one blank line (append it to the file)."""
    validate_entry(entry)
    text = marker_line(entry) + "\n" + _header(entry) + "\n"
    return text + _escape_body(entry.body) + "\n\n" if entry.body else text


def thread_header(title: str) -> str:
    """The preamble written when a ticket is created."""
    return f"# Thread: {' '.join(title.split())}\n\n"


# ----------------------------------------------------------------------------- parsing


def _parse_marker(line: str) -> tuple[list[tuple[str, str]], str | None]:
    line = line.removesuffix("\r")
    match = _MARKER_RE.fullmatch(line)
    if match is None:
        return [], "malformed entry marker (expected <!-- yoi:entry kind=... author=... at=... -->)"
    if "\r" in line or line.find("-->") < len(line) - 3:
        return [], "an attribute value in the entry marker holds '-->' or a line break"
    pairs = []
    for name, raw in _ATTR_RE.findall(match.group(1)):
        value = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw[0] == '"' else raw
        pairs.append((name, value))
    return pairs, None


def _entry_from(pairs: list[tuple[str, str]]) -> tuple[Entry, list[str]]:
    names = [name for name, _ in pairs]
    problems = [f"entry marker has no '{name}' attribute" for name in _CORE if name not in names]
    problems += [f"attribute '{n}' is repeated" for n in dict.fromkeys(names) if names.count(n) > 1]
    found = dict(pairs)
    extra = tuple(pair for pair in pairs if pair[0] not in _CORE)
    entry = Entry(found.get("kind", ""), found.get("author", ""), found.get("at", ""), extra)
    return entry, problems or _shape_problems(entry)


def _body_from(segment: str, entry: Entry) -> str:
    header = _header(entry)
    if segment.startswith(header):
        segment = segment[len(header) :]
    segment = segment.removeprefix("\n").rstrip("\n")
    if MARKER_PREFIX not in segment:
        return segment
    lines = segment.split("\n")
    return "\n".join(line[1:] if _UNESCAPE_RE.match(line) else line for line in lines)


def parse_thread(text: str, *, path: str) -> list[Entry]:
    """All entries in ``text``; text before the first marker is a free preamble.

    Raises ``InvalidRecordError`` listing every bad marker (syntax, missing or repeated
    attributes, unknown kind, bad timestamp) with its line number.
    """
    text = text.removeprefix("\ufeff")
    if "\r\n" in text and text.count("\n") == text.count("\r\n"):
        text = text.replace("\r\n", "\n")  # a CRLF checkout (rendered text is never all-CRLF)
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith(MARKER_PREFIX)]
    entries: list[Entry] = []
    problems: list[Problem] = []
    for n, start in enumerate(starts):
        pairs, syntax = _parse_marker(lines[start])
        entry, bad = _entry_from(pairs) if syntax is None else (Entry("", "", ""), [syntax])
        problems += [Problem(path, "", f"line {start + 1}: {message}") for message in bad]
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        segment = "\n".join(lines[start + 1 : end]) + ("\n" if end < len(lines) else "")
        body = _body_from(segment, entry)
        entries.append(Entry(entry.kind, entry.author, entry.at, entry.attrs, body))
    if problems:
        raise InvalidRecordError(path, problems, hint=_PARSE_HINT)
    return entries
