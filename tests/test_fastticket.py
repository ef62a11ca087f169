"""fastticket agrees with ruamel.yaml + jsonschema: whenever it answers, the answer is
the mapping ``yamlio.load_plain`` gives (types included; key order aside) and that
mapping is a valid ticket; and it does answer for the tickets yoi writes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_cache_yaml import TRICKY, strict_equal
from yoi import fastticket, schema, yamlio
from yoi.errors import YoiError

EXAMPLE = Path(__file__).resolve().parents[1] / ".yoi-example"


def slow(front: str) -> dict[str, Any] | None:
    """What the general path says: the valid ticket mapping, or None."""
    try:
        data = yamlio.load_plain(front, path="x")
    except YoiError:
        return None
    if not isinstance(data, dict) or schema.validate("ticket", data, "x"):
        return None
    return data


def agree(front: str) -> dict[str, Any] | None:
    fast = fastticket.load(front)
    if fast is not None:
        expected = slow(front)
        assert expected is not None, front
        assert strict_equal(dict(sorted(fast.items())), dict(sorted(expected.items()))), (
            front,
            fast,
            expected,
        )
    return fast


def example_fronts() -> list[str]:
    out = []
    for path in sorted(EXAMPLE.glob("tickets/*/*/ticket.md")):
        text = path.read_text(encoding="utf-8")
        out.append(yamlio.split_front_matter(text, path=str(path))[0])
    return out


def test_the_example_store_takes_the_fast_path() -> None:
    fronts = example_fronts()
    assert len(fronts) >= 6
    for front in fronts:
        assert agree(front) is not None, front


BASE = {
    "title": "Fix the parser",
    "state": "blocked",
    "created_at": "2026-11-20T10:00:00Z",
    "updated_at": "2026-11-20T10:00:00.123456Z",
    "acceptance_criteria": ["tests pass", "it's: quoted"],
    "importance": 3,
    "urgency": 0,
    "labels": ["bug", "area/parser", "v1.2"],
    "assignee": None,
    "base_ref": "main",
    "runner": "default",
    "budget_ms": 60000,
    "context_paths": ["src/a.py"],
    "patch_file": None,
    "blocked_on": [
        {
            "blocker_id": "b1",
            "kind": "USER_INPUT",
            "description": "which db?",
            "resolved": False,
            "created_at": "2026-11-20T10:00:00Z",
        },
        {
            "blocker_id": "b2",
            "kind": "DESIGN_DECISION",
            "description": "api shape",
            "resolved": True,
            "created_at": "2026-11-20T10:00:00Z",
            "resolved_at": "2026-11-20T11:00:00Z",
        },
    ],
    "blocked_reason": "unresolved: blocker b1 (USER_INPUT): which db?",
    "planning_reason": None,
    "queued_by": "ada",
    "queued_at": None,
    "branch": "yoi/x",
    "last_run": "run-20261120100000-abc",
}


def test_every_field_in_yois_own_layout_is_read() -> None:
    front = yamlio.dump(BASE)
    assert agree(front) == BASE


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("title", "123"),
        ("title", "null"),
        ("title", "True"),
        ("title", "x" * 201),
        ("title", ""),
        ("state", "Done"),
        ("state", "'done'"),
        ("importance", "5"),
        ("importance", "02"),
        ("urgency", "-1"),
        ("budget_ms", "0"),
        ("budget_ms", "1.5"),
        ("runner", "True"),
        ("runner", "Big"),
        ("last_run", "run-" + "x" * 97),
        ("last_run", "Run-1"),
        ("created_at", "2026-11-20T10:00:00+01:00"),
        ("created_at", "2026-11-20 10:00:00"),
        ("queued_at", "~"),
        ("assignee", "a #b"),
        ("assignee", "a: b"),
        ("assignee", "'a''b'"),
        ("assignee", '"a\\tb"'),
        ("assignee", "[]"),
        ("assignee", "{}"),
        ("assignee", "&x y"),
        ("assignee", "*x"),
        ("assignee", "!!str x"),
        ("branch", "Null"),
    ],
)
def test_a_value_line_is_read_exactly_or_left_alone(key: str, value: str) -> None:
    front = f'title: T\nstate: ready\ncreated_at: "{BASE["created_at"]}"\n'
    front += f'updated_at: "{BASE["created_at"]}"\n'
    front = "\n".join(line for line in front.splitlines() if not line.startswith(f"{key}:"))
    agree(front + f"\n{key}: {value}\n")


@pytest.mark.parametrize(
    "extra",
    [
        "title: again\n",  # duplicate key
        "labels: []\nlabels:\n  - a\n",  # one list twice
        "labels:\n  - a\n  - a\n",  # uniqueItems
        "labels:\n  - 'true'\n",
        "labels:\n  - true\n",
        "labels:\n  - 2024\n",
        "labels:\n- a\n",  # compact sequence
        "labels:\n",  # null
        "labels:\n  - a\n    b\n",  # continued plain scalar
        "acceptance_criteria:\n  - a: b\n",  # a mapping item
        "acceptance_criteria:\n  - ''\n",
        "x-note: hi\n",
        "# a comment\n",
        "unknown: 1\n",
        "blocked_on:\n  - blocker_id: b1\n    kind: USER_INPUT\n    description: d\n",
        "blocked_on:\n  - blocker_id: b1\n    blocker_id: b2\n    kind: USER_INPUT\n"
        "    description: d\n    resolved: false\n",
        "blocked_on:\n  - blocker_id: b1\n    kind: USER_INPUT\n    description: d\n"
        "    resolved: False\n",
        "blocked_on:\n  - blocker_id: b1\n    kind: USER_INPUT\n    description: d\n"
        "    resolved: false\n      more: x\n",
        "title2: x\n",
        "state: ready \n",
        "state:  ready\n",
        "state: ready\t\n",
        "...\n",
        "%YAML 1.2\n",
    ],
)
def test_layouts_outside_the_subset_are_left_to_the_general_path(extra: str) -> None:
    base = 'title: T\nstate: ready\ncreated_at: "2026-11-20T10:00:00Z"\n'
    base += 'updated_at: "2026-11-20T10:00:00Z"\n'
    agree(base + extra)


def test_required_keys_and_characters() -> None:
    base = 'title: T\nstate: ready\ncreated_at: "2026-11-20T10:00:00Z"\n'
    assert agree(base) is None  # updated_at missing
    full = base + 'updated_at: "2026-11-20T10:00:00Z"\n'
    assert agree(full) is not None
    for bad in ("\x00", "\x85", "\u2028", "\ufeff", "\r", "\t", "\x7f", "\ud800"):
        agree(full.replace("title: T", f"title: T{bad}x"))
    assert agree(full.replace("title: T", "title: Tëst … 😀 x")) is not None
    assert agree(full.replace("title: T", "title: T\u00a0x")) is not None
    assert agree(full[:-1]) is None  # no final newline


SAFE_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40)
TEXTS = st.one_of(st.sampled_from(TRICKY), SAFE_TEXT)
TS = st.from_regex(
    r"20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?Z",
    fullmatch=True,
)
LABEL = st.one_of(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,8}", fullmatch=True),
    st.sampled_from(["true", "null", "1", "1.5", "0x1", "a:b"]),
)
BLOCKER = st.fixed_dictionaries(
    {
        "blocker_id": st.from_regex(r"b[0-9]{1,3}", fullmatch=True),
        "kind": st.sampled_from(["USER_INPUT", "EXTERNAL_SYSTEM", "nope"]),
        "description": TEXTS,
        "resolved": st.one_of(st.booleans(), st.sampled_from(["false"])),
    },
    optional={"created_at": TS, "resolved_at": st.one_of(st.none(), TS)},
)
OPTIONAL = {
    "acceptance_criteria": st.lists(TEXTS, max_size=3),
    "importance": st.integers(-1, 5),
    "urgency": st.integers(0, 4),
    "labels": st.lists(LABEL, max_size=3),
    "assignee": st.one_of(st.none(), TEXTS),
    "base_ref": st.one_of(st.none(), TEXTS),
    "runner": st.one_of(st.none(), st.sampled_from(["default", "x-1", "True", "a b"])),
    "budget_ms": st.one_of(st.none(), st.integers(-2, 10**6)),
    "context_paths": st.lists(TEXTS, max_size=2),
    "patch_file": st.one_of(st.none(), TEXTS),
    "blocked_on": st.lists(BLOCKER, max_size=2),
    "blocked_reason": st.one_of(st.none(), TEXTS),
    "planning_reason": st.one_of(st.none(), TEXTS),
    "queued_by": st.one_of(st.none(), TEXTS),
    "queued_at": st.one_of(st.none(), TS),
    "branch": st.one_of(st.none(), TEXTS),
    "last_run": st.one_of(st.none(), st.from_regex(r"[a-z]{1,4}-[0-9a-z-]{1,20}", fullmatch=True)),
    "x-ext": TEXTS,
}
TICKETS = st.fixed_dictionaries(
    {
        "title": TEXTS,
        "state": st.sampled_from(["planning", "ready", "queued", "inprogress", "done", "x"]),
        "created_at": TS,
        "updated_at": st.one_of(TS, st.just("yesterday")),
    },
    optional=OPTIONAL,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TICKETS)
def test_generated_tickets_as_yoi_dumps_them(data: dict[str, Any]) -> None:
    agree(yamlio.dump(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TICKETS, st.randoms(use_true_random=False))
def test_mutated_tickets(data: dict[str, Any], rnd: random.Random) -> None:
    text = yamlio.dump(data)
    lines = text.splitlines(keepends=True)
    for _ in range(rnd.randint(1, 3)):
        how = rnd.randrange(5)
        i = rnd.randrange(len(lines))
        if how == 0:
            lines.insert(rnd.randrange(len(lines) + 1), lines[i])  # duplicate a line
        elif how == 1 and len(lines) > 1:
            del lines[i]
        elif how == 2:
            j = rnd.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif how == 3:
            pos = rnd.randrange(len(lines[i]))
            lines[i] = lines[i][:pos] + rnd.choice(" :#-'\"\t[]{}&*!|>x0\n") + lines[i][pos:]
        else:
            lines[i] = "  " + lines[i]
    agree("".join(lines))


def test_a_ticket_yoi_wrote_is_vouched_for_not_just_tolerated() -> None:
    """Counted: the fast path answers for plain yoi-written tickets (else it is useless)."""
    answered = 0
    for i in range(50):
        data = dict(BASE, title=f"Ticket {i}", labels=[f"l{i}"], blocked_on=[])
        answered += agree(yamlio.dump(data)) is not None
    assert answered == 50


VALID_TEXT = st.one_of(
    st.from_regex(r"[A-Za-z][A-Za-z0-9 ./()_-]{0,30}[a-z]", fullmatch=True),
    st.sampled_from(["it's: x", 'say "hi"', "a #b", "naïve café", "x" * 200]),
)
VALID = st.fixed_dictionaries(
    {
        "title": VALID_TEXT,
        "state": st.sampled_from(["planning", "ready", "queued", "inprogress", "done", "blocked"]),
        "created_at": TS,
        "updated_at": TS,
    },
    optional={
        "acceptance_criteria": st.lists(VALID_TEXT, max_size=3),
        "importance": st.integers(0, 4),
        "labels": st.lists(
            st.from_regex(r"[A-Za-z][A-Za-z0-9_./-]{0,8}", fullmatch=True), max_size=3, unique=True
        ),
        "queued_by": st.one_of(st.none(), VALID_TEXT),
        "queued_at": st.one_of(st.none(), TS),
        "budget_ms": st.one_of(st.none(), st.integers(1, 10**9)),
        "blocked_on": st.lists(
            st.fixed_dictionaries(
                {
                    "blocker_id": st.from_regex(r"b[0-9]{1,3}", fullmatch=True),
                    "kind": st.just("USER_INPUT"),
                    "description": VALID_TEXT,
                    "resolved": st.booleans(),
                }
            ),
            max_size=2,
        ),
    },
)


def test_valid_generated_tickets_are_mostly_vouched_for() -> None:
    answered: list[bool] = []

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(VALID)
    def check(data: dict[str, Any]) -> None:
        answered.append(agree(yamlio.dump(data)) is not None)

    check()
    assert sum(answered) >= 0.6 * len(answered), (sum(answered), len(answered))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="-\n \tab:\r\ufeffx", max_size=40))
def test_the_shortcut_for_yois_layout_splits_like_the_rule(text: str) -> None:
    from tests.test_cache_yaml import reference_split
    from yoi import frontmatter

    for sample in (text, "---\n" + text, "---\na: 1\n--- \n" + text, "---\na\n---\n" + text):
        assert frontmatter.split(sample) == reference_split(sample), sample
