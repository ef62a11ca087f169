"""The rules of ``yamlio`` that the fast paths share, without importing ruamel.yaml:
which strings a YAML reader would type as something else and which can be literal blocks
(the dumper's quoting), plain data out of round-trip objects, and the size cap.

``fastdump`` writes nearly every record the engine and the CLI write, and asks these
rules for every string; importing ruamel.yaml only to read its resolver table cost each
such process ~10 ms. ``RESOLVERS`` is a copy of that table (ruamel.yaml's
``implicit_resolvers``, every tag but ``str``, YAML 1.1 and 1.2) and ``CORE_SCHEMA`` is
the YAML 1.2 core schema ``yamlio`` loads with; ``tests/test_yamlio.py`` holds the copy
equal to ruamel's own table, and ``typed_elsewhere`` equal to matching each resolver.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Mapping
from typing import Any

from yoi import bounded

MAX_BYTES = 1 << 20  # the largest YAML text yoi loads

# (name, pattern, the characters a match can start with) of the YAML 1.2 core schema.
CORE_SCHEMA: list[tuple[str, str, str]] = [
    ("null", r"~|null|Null|NULL|", "~nN"),
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    (
        "float",
        r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        "-+0123456789.",
    ),
]

# ruamel.yaml's implicit resolvers (0.18/0.19), their tags but ``str``: (pattern, flags)
# with ``re.X`` where ruamel compiles them verbose.
_X = "x"
RESOLVERS: list[tuple[str, str]] = [
    ("^(?:true|True|TRUE|false|False|FALSE)$", _X),
    (
        "^(?:y|Y|yes|Yes|YES|n|N|no|No|NO\n        |true|True|TRUE|false|False|FALSE\n"
        "        |on|On|ON|off|Off|OFF)$",
        _X,
    ),
    (
        "^(?:\n         [-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+]?[0-9]+)?\n"
        "        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)\n"
        "        |[-+]?\\.[0-9_]+(?:[eE][-+][0-9]+)?\n"
        "        |[-+]?\\.(?:inf|Inf|INF)\n        |\\.(?:nan|NaN|NAN))$",
        _X,
    ),
    (
        "^(?:\n         [-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+]?[0-9]+)?\n"
        "        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)\n"
        "        |\\.[0-9_]+(?:[eE][-+][0-9]+)?\n"
        "        |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*  # sexagesimal float\n"
        "        |[-+]?\\.(?:inf|Inf|INF)\n        |\\.(?:nan|NaN|NAN))$",
        _X,
    ),
    (
        "^(?:[-+]?0b[0-1_]+\n        |[-+]?0o?[0-7_]+\n        |[-+]?[0-9_]+\n"
        "        |[-+]?0x[0-9a-fA-F_]+)$",
        _X,
    ),
    (
        "^(?:[-+]?0b[0-1_]+\n        |[-+]?0?[0-7_]+\n        |[-+]?(?:0|[1-9][0-9_]*)\n"
        "        |[-+]?0x[0-9a-fA-F_]+\n        |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
        _X,
    ),
    ("^(?:<<)$", ""),
    ("^(?: ~\n        |null|Null|NULL\n        | )$", _X),
    (
        "^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]\n"
        "        |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?\n"
        "        (?:[Tt]|[ \\t]+)[0-9][0-9]?\n"
        "        :[0-9][0-9] :[0-9][0-9] (?:\\.[0-9]*)?\n"
        "        (?:[ \\t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
        _X,
    ),
    ("^(?:=)$", ""),
    ("^(?:!|&|\\*)$", ""),
]


def core_pattern(pattern: str) -> str:
    """A core-schema pattern as ``yamlio`` compiles it (the whole text must match)."""
    return rf"\A(?:{pattern})\Z"


# One pass instead of one ``match`` per resolver: the alternation matches at the start
# exactly when one of its members does. Compiled on first use: compiling it costs a
# process a few milliseconds, and a command that only reads records never needs it.
@functools.cache
def _typed_one() -> re.Pattern[str]:
    every = [f"(?{flags}:{p})" if flags else f"(?:{p})" for p, flags in RESOLVERS]
    every += [f"(?:{core_pattern(p)})" for _name, p, _first in CORE_SCHEMA]
    return re.compile("|".join(every))


# Every resolver above matches only text that is empty or starts with one of these
# (tests/test_yamlio.py checks each character): most strings are answered without a match.
TYPED_FIRST = frozenset("~nNtTfFyYoO0123456789+-._!&*<=\n")

# Answers of the alternation by text: the engine asks it ~400 times per run, mostly of the
# same keys, ids and timestamps (over nine in ten asked before). Bounded: cleared when full.
_MEMO: dict[str, bool] = {}
MEMO_MAX = 1 << 16


def typed_elsewhere(text: str) -> bool:
    """True when a YAML 1.1 or 1.2 reader (ruamel's or ``yamlio``'s) would read ``text``,
    written plain, as anything but that string."""
    if text and text[0] not in TYPED_FIRST:
        return False
    known = _MEMO.get(text)
    if known is None:
        known = bounded.put(_MEMO, text, _typed_one().match(text) is not None, MEMO_MAX)
    return known


@functools.cache
def not_literal() -> re.Pattern[str]:
    """What a literal block cannot hold (compiled on first use): the characters outside
    YAML's printable set but the line feed. Written as the few ranges it holds rather than
    the complement of the many printable ones, which took ~3 ms to compile, the same
    set (tests/test_yamlio.py checks every code point)."""
    return re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


def literal_ok(text: str) -> bool:
    """A literal block (``|``) reproduces ``text`` exactly."""
    if "\n" not in text or not text.strip() or not_literal().search(text):
        return False
    lines = text.split("\n")
    return not any(line != line.rstrip(" ") for line in lines) and not text[0].isspace()


def to_plain(obj: Any) -> Any:
    """Round-trip objects (and their scalar subclasses) as plain JSON-like values; plain
    data comes back as a copy."""
    if isinstance(obj, Mapping):
        return {to_plain(key): to_plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(item) for item in obj]
    if isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, int):
        return bool(obj) if _scalar_boolean(obj) else int(obj)
    if isinstance(obj, float):
        return float(obj)
    return obj


def _scalar_boolean(obj: int) -> bool:
    """ruamel's round-trip boolean (an int subclass); none exists before ruamel is loaded."""
    module = sys.modules.get("ruamel.yaml.scalarbool")
    return module is not None and isinstance(obj, module.ScalarBoolean)
