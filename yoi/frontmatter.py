"""Front matter split without importing ruamel (``yamlio.split_front_matter`` words
the errors).

``split(text)`` returns ``(yaml_text, body)`` for ``---\n<yaml>---\n<body>``, or None
when the text has no front matter. A leading UTF-8 BOM is dropped and CRLF line endings
are read as LF (yoi writes LF, so a rewrite normalizes the file). Fence lines may carry
trailing blanks. Only the first closing ``---`` ends the front matter; the body may hold
more. One blank line after the closing fence is part of the layout
(``join`` writes it), not of the body.
"""

from __future__ import annotations

import re

FENCE = re.compile(r"---[ \t]*")


def split(text: str) -> tuple[str, str] | None:
    """``---\\n<yaml>---\\n<body>`` -> ``(yaml_text, body)``, or None (malformed)."""
    end = text.find("\n---", 3)  # the layout yoi writes: exact fences, LF, no BOM
    if end > 0 and text.startswith("\n", end + 4) and text.startswith("---\n") and "\r" not in text:
        body = text[end + 5 :]
        return text[4 : end + 1], body[1:] if body.startswith("\n") else body
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if text.startswith("---\n"):
        rest = text[4:]
    else:
        first, _, rest = text.partition("\n")
        if not FENCE.fullmatch(first):
            return None
    if rest.startswith("---"):
        return _slow(rest)
    offset = rest.find("\n---") + 1  # the first line that may close the front matter
    if offset == 0:
        return None
    end = rest.find("\n", offset)
    line_end = len(rest) if end < 0 else end
    if not FENCE.fullmatch(rest, offset, line_end):
        return _slow(rest)
    body = rest[line_end + 1 :]
    return rest[:offset], body[1:] if body.startswith("\n") else body


def _slow(rest: str) -> tuple[str, str] | None:
    """Line by line, for fences with trailing blanks or a ``---`` inside a value."""
    offset = 0
    while offset < len(rest):
        end = rest.find("\n", offset)
        line_end = len(rest) if end < 0 else end
        if FENCE.fullmatch(rest, offset, line_end):
            body = rest[line_end + 1 :]
            return rest[:offset], body[1:] if body.startswith("\n") else body
        offset = line_end + 1
    return None


def join(yaml_text: str, body: str) -> str:
    """The inverse of ``split``: fences, YAML, a blank line, the body."""
    if yaml_text and not yaml_text.endswith("\n"):
        yaml_text += "\n"
    return f"---\n{yaml_text}---\n" + (f"\n{body}" if body else "")
