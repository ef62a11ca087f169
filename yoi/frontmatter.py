"""Front matter split without importing ruamel: the fast path of ``yamlio``'s.

``split(text)`` returns what ``yamlio.split_front_matter(text)`` returns, or None where
that function would raise (the caller then calls it for the error message).
``tests/test_cache_yaml.py`` checks the two agree.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"---[ \t]*")


def split(text: str) -> tuple[str, str] | None:
    """``---\\n<yaml>---\\n<body>`` -> ``(yaml_text, body)``, or None (malformed)."""
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if text.startswith("---\n"):
        rest = text[4:]
    else:
        first, _, rest = text.partition("\n")
        if not _FENCE.fullmatch(first):
            return None
    if rest.startswith("---"):
        return _slow(rest)
    offset = rest.find("\n---") + 1  # the first line that may close the front matter
    if offset == 0:
        return None
    end = rest.find("\n", offset)
    line_end = len(rest) if end < 0 else end
    if not _FENCE.fullmatch(rest, offset, line_end):
        return _slow(rest)
    body = rest[line_end + 1 :]
    return rest[:offset], body[1:] if body.startswith("\n") else body


def _slow(rest: str) -> tuple[str, str] | None:
    """Line by line, for fences with trailing blanks or a ``---`` inside a value."""
    offset = 0
    while offset < len(rest):
        end = rest.find("\n", offset)
        line_end = len(rest) if end < 0 else end
        if _FENCE.fullmatch(rest, offset, line_end):
            body = rest[line_end + 1 :]
            return rest[:offset], body[1:] if body.startswith("\n") else body
        offset = line_end + 1
    return None
