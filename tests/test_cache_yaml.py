"""fastyaml and frontmatter agree with yamlio: whenever the fast reader answers, it gives
exactly what the strict ruamel loader gives (types included), on records yoi dumps, on
hostile texts, and on records built by yoi's own writers."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yoi import events, fastyaml, frontmatter, yamlio
from yoi.errors import InvalidRecordError
from yoi.model import EventReason

TRICKY = [
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "null",
    "Null",
    "~",
    "true",
    "False",
    "1.0",
    "0x1F",
    "0o17",
    "012",
    "-1",
    "+1",
    "1e5",
    ".5",
    ".inf",
    ".nan",
    "1_000",
    "1:20",
    "2026-01-01",
    "2026-01-01T00:00:00Z",
    "a: b",
    "a #b",
    "a#b",
    "#x",
    "- x",
    "-x",
    "'q'",
    '"q"',
    "|",
    ">",
    "> x",
    "%x",
    "@x",
    "`x",
    "a\nb",
    "a\n",
    "a\n\n",
    "\na",
    "a  ",
    "  a",
    "",
    " ",
    "a:b",
    "http://x.y/z",
    "<<",
    "=",
    "!x",
    "&a",
    "*a",
    "? x",
    "[a]",
    "{a: 1}",
    "a, b",
    "é ü",
    "tab\there",
    "nul\x00",
    "bell\x07",
    "line\u2028sep",
    "bom\ufeff",
    "q'uote",
    'dq"x',
    "back\\slash",
    "---",
    "...",
    "x:",
    "x: ",
    "…",
    "\U0001f600",
]
KEYS = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_-]{0,12}", fullmatch=True),
    st.sampled_from(["x-ext", "null", "true", "yes", "1", "a b", "a:b", "-k", "é"]),
)
SCALARS = st.one_of(
    st.sampled_from(TRICKY),
    st.text(max_size=30),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
DATA = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(KEYS, inner, max_size=5),
    ),
    max_leaves=20,
)
RECORDS = st.dictionaries(KEYS, DATA, min_size=1, max_size=8)
# Closer to what yoi writes (plain keys, no floats): most of these take the fast path.
CANON_SCALARS = st.one_of(
    st.sampled_from(TRICKY),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=30),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
    st.none(),
)
CANON = st.dictionaries(
    st.from_regex(r"[a-z_][a-z0-9_-]{0,12}", fullmatch=True),
    st.recursive(
        CANON_SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(
                st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), inner, max_size=4
            ),
        ),
        max_leaves=20,
    ),
    min_size=1,
    max_size=8,
)


def strict_equal(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1 != True here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def agree(text: str) -> None:
    fast = fastyaml.load(text)
    if fast is None:
        return
    slow = yamlio.load_plain(text, path="x")  # must not raise when the fast reader answered
    assert strict_equal(fast, slow), (text, fast, slow)
    assert strict_equal(fast, yamlio.to_plain(yamlio.load_rt(text, path="x")))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(RECORDS, CANON))
def test_dumped_records_read_the_same(data: dict[str, Any]) -> None:
    agree(yamlio.dump(data))


YAMLISH = st.text(alphabet=" \n-:#'\"|>ab01{}[]~&*!%@`,?.\t\\xyz_", max_size=60)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        YAMLISH,
        YAMLISH.map(lambda t: "k: " + t + "\n"),
        YAMLISH.map(lambda t: "k:\n  - " + t + "\n"),
    )
)
def test_hostile_texts_are_refused_or_read_the_same(text: str) -> None:
    try:
        agree(text)
    except InvalidRecordError:
        raise AssertionError(f"fastyaml accepted a text yamlio rejects: {text!r}") from None


def test_records_yoi_writes_take_the_fast_path() -> None:
    event = events.new_event(
        "20260101-000000-a-b", "2026-01-01T00:00:00Z", "cli", "2026-01-01T00:00:00Z"
    )
    closed = events.mark_processed(
        event, EventReason.EXECUTED, "2026-01-01T00:00:01Z", "run-20260101000000-0123456789"
    )
    ticket = {
        "title": "Fix: the widget's edge #3 (again)",
        "state": "blocked",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "acceptance_criteria": ["it works", "no: regressions", "yes"],
        "importance": 2,
        "labels": ["a", "b/c"],
        "blocked_on": [
            {
                "blocker_id": "b1",
                "kind": "USER_INPUT",
                "description": "which db?",
                "resolved": False,
                "created_at": "2026-01-01T00:00:00Z",
            }
        ],
        "blocked_reason": "unresolved: b1",
        "budget_ms": None,
        "x-note": {"nested": {"deeper": [1, 2]}, "empty": [], "none": {}},
        "notes": "line one\n\nline three\n",
        "strip": "no newline\nat end",
    }
    for record in (event, closed, ticket):
        text = yamlio.dump(record)
        fast = fastyaml.load(text)
        assert fast is not None, text
        assert strict_equal(fast, record)
        agree(text)


def test_outside_the_subset_is_left_to_yamlio() -> None:
    for text in [
        "a: 1 # comment\n",
        "# c\na: 1\n",
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: 1.5\n",
        "a: 012\n",
        "a:\n- x\n",
        "a: |+\n  x\n\n",
        "a: |2\n    x\n",
        "a: >\n  x\n",
        "a: 'x\n  y'\n",
        "%YAML 1.2\n---\na: 1\n",
        "a: 1\na: 2\n",
        "a: [1, 2]\n",
        "a: {b: 1}\n",
        "a:  1\n",
        "a: 1 \n",
        "\ta: 1\n",
        "a: 1",
        "",
        "a\n",
        "- a\n",
        "a: x\n\nb: y\n",
        'a: "\\N"\n',
        'a: "\\ud800"\n',
        "yes: 1\n",
    ]:
        assert fastyaml.load(text) is None, text


FRONT = st.text(alphabet="-\n \tab:\r\ufeffx", max_size=40)


@settings(max_examples=400, deadline=None)
@given(FRONT)
def test_front_matter_split_agrees(text: str) -> None:
    try:
        slow: tuple[str, str] | None = yamlio.split_front_matter(text, path="x")
    except InvalidRecordError:
        slow = None
    assert frontmatter.split(text) == slow == reference_split(text)


def reference_split(text: str) -> tuple[str, str] | None:
    """The front matter rule written out line by line (yoi's first implementation), to
    hold ``frontmatter.split`` and its shortcuts to."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    first, _, rest = text.partition("\n")
    if not re.fullmatch(r"---[ \t]*", first):
        return None
    offset = 0
    while offset < len(rest):
        end = rest.find("\n", offset)
        line_end = len(rest) if end < 0 else end
        if re.fullmatch(r"---[ \t]*", rest[offset:line_end]):
            body = rest[line_end + 1 :]
            return rest[:offset], body[1:] if body.startswith("\n") else body
        offset = line_end + 1
    return None
