"""Find a unified diff inside text a tool or a model printed.

Everything works on bytes, line by line on ``\\n`` only, so CRLF and other bytes inside
hunks survive exactly. A diff starts at a ``diff --git `` line, or at a ``--- `` line
directly followed by ``+++ `` and ``@@`` lines.
"""

from __future__ import annotations

import re

_DIFF_LANGS = {b"diff", b"patch", b"udiff", b"git"}
_FENCE = re.compile(rb"^[ \t]{0,3}(`{3,}|~{3,})[ \t]*([A-Za-z0-9_+.-]*)[^\r\n`]*\r?\n?$")
_HUNK = re.compile(rb"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
_LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")


def split_lines(data: bytes) -> list[bytes]:
    """Lines of ``data`` with their ``\\n`` kept; ``b"".join`` gives ``data`` back."""
    return _LINE.findall(data)


def diff_start(lines: list[bytes]) -> int | None:
    """Index of the first line that starts a diff, or None."""
    for i, line in enumerate(lines):
        if line.startswith(b"diff --git "):
            return i
        if (
            line.startswith(b"--- ")
            and i + 2 < len(lines)
            and lines[i + 1].startswith(b"+++ ")
            and lines[i + 2].startswith(b"@@ ")
        ):
            return i
    return None


def looks_like_diff(data: bytes) -> bool:
    return diff_start(split_lines(data)) is not None


def with_final_newline(data: bytes) -> bytes:
    return data if not data or data.endswith(b"\n") else data + b"\n"


def extract_diff(data: bytes) -> bytes:
    """The diff in ``data`` (chatter before it dropped, and chatter after the last hunk
    when the hunk's line counts show where it ends), or ``b""`` if there is none."""
    lines = split_lines(data)
    start = diff_start(lines)
    if start is None:
        return b""
    return with_final_newline(b"".join(_trim_after_last_hunk(lines[start:])))


def extract_fenced(data: bytes) -> bytes | None:
    """The content of the first fenced block marked diff/patch whose content is a diff,
    else of the first unmarked fenced block that is a diff; None if there is neither."""
    plain: bytes | None = None
    for lang, body in _fenced_blocks(split_lines(data)):
        if not looks_like_diff(body):
            continue
        if lang.lower() in _DIFF_LANGS:
            return with_final_newline(body)
        if plain is None and not lang:
            plain = body
    return None if plain is None else with_final_newline(plain)


def extract_from_reply(text: str) -> bytes:
    """The diff in a model's reply: a fenced block first, else the bare diff text."""
    data = text.encode("utf-8")
    fenced = extract_fenced(data)
    return fenced if fenced is not None else extract_diff(data)


def _fenced_blocks(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    blocks: list[tuple[bytes, bytes]] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, lang = opening.group(1), opening.group(2)
        end = i + 1
        while end < len(lines) and not _closes(lines[end], fence):
            end += 1
        blocks.append((lang, b"".join(lines[i + 1 : end])))  # an unclosed fence runs to the end
        i = end + 1
    return blocks


def _closes(line: bytes, fence: bytes) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(fence) and stripped == fence[:1] * len(stripped)


def _trim_after_last_hunk(lines: list[bytes]) -> list[bytes]:
    last = max((i for i, line in enumerate(lines) if line.startswith(b"@@ ")), default=None)
    if last is None or any(line.startswith(b"diff --git ") for line in lines[last + 1 :]):
        return lines  # no hunk, or a later (e.g. binary) file section: keep everything
    match = _HUNK.match(lines[last])
    if match is None:
        return lines
    old = int(match.group(1) or b"1")
    new = int(match.group(2) or b"1")
    i = last + 1
    while i < len(lines) and (old > 0 or new > 0):
        kind = lines[i][:1]
        if kind in (b" ", b"\n", b"\r"):
            old, new = old - 1, new - 1
        elif kind == b"-":
            old -= 1
        elif kind == b"+":
            new -= 1
        elif kind != b"\\":
            return lines  # not hunk text: leave it for the apply step to judge
        i += 1
    while i < len(lines) and lines[i].startswith(b"\\"):  # "\ No newline at end of file"
        i += 1
    return lines[:i]
