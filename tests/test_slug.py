"""slug: words, make_slug, name checks and resolution (linear and indexed); clock."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import ClassVar, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yoi import clock, slug
from yoi.errors import AmbiguousNameError, NotFoundError, UsageError

CORPUS = Path(__file__).parent / "fuzz_corpus" / "names"
T = TypeVar("T")
WHEN = datetime(2026, 6, 7, 3, 57, 10, tzinfo=UTC)
SLUGS = [
    "20260607-035710-ticket-orchestration-plan-tool",
    "20260607-035710-ticket-orchestration-plan-tool-2",
    "20260607-040000-fix-parser",
    "20260608-120000-plan-tool-docs",
    "20251231-235959-fix-parser-crash",
]


def _never(_: str) -> bool:
    return False


def _resolvers(slugs: list[str]) -> list[slug.SlugIndex | None]:
    return [None, slug.SlugIndex(slugs)]


def _resolve(index: slug.SlugIndex | None, name: str, slugs: list[str]) -> str:
    return slug.resolve(name, slugs) if index is None else index.resolve(name)


# -------------------------------------------------------------------------------- words


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Fix the parser", "fix-the-parser"),
        ("Café: fix  the BUG!", "cafe-fix-the-bug"),
        ("Straße über Ærø", "strasse-uber-aero"),
        ("ℂomplex ﬁle ①", "complex-file-1"),
        ("İstanbul", "istanbul"),
        ("日本語のタイトル", "ticket"),
        ("fix 日本 bug", "fix-bug"),
        ("", "ticket"),
        ("--- !!! ---", "ticket"),
        ("snake_case and-dashes", "snake-case-and-dashes"),
        ("a" * 50, "a" * 40),
        ("word " * 20, "-".join(["word"] * 8)),
        ("x" * 39 + " yy", "x" * 39),
        ("x" * 40 + " yy", "x" * 40),
        ("abc " + "y" * 45, "abc"),
    ],
)
def test_words(title: str, expected: str) -> None:
    assert slug.words(title) == expected


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_property_words_are_slug_words(title: str) -> None:
    part = slug.words(title)
    assert 1 <= len(part) <= 40
    assert slug.is_valid_slug("20260101-000000-" + part)


# ---------------------------------------------------------------------------- make_slug


def test_make_slug_uses_utc_time_and_words() -> None:
    local = WHEN.astimezone(timezone(timedelta(hours=9)))
    assert slug.make_slug("Fix the parser", local, _never) == "20260607-035710-fix-the-parser"


def test_make_slug_appends_counters_on_collision() -> None:
    taken: set[str] = set()
    made = []
    for _ in range(4):
        made.append(slug.make_slug("Plan tool", WHEN, taken.__contains__))
        taken.add(made[-1])
    assert made == [
        "20260607-035710-plan-tool",
        "20260607-035710-plan-tool-2",
        "20260607-035710-plan-tool-3",
        "20260607-035710-plan-tool-4",
    ]


def test_make_slug_stays_within_64_chars_with_long_counters() -> None:
    title = "w" * 40
    taken = {f"20260607-035710-{title}"} | {f"20260607-035710-{title}-{n}" for n in range(2, 2000)}
    made = slug.make_slug(title, WHEN, taken.__contains__)
    assert made == f"20260607-035710-{title}-2000"
    assert len(made) <= 64
    assert slug.is_valid_slug(made)


def test_make_slug_gives_up_when_everything_exists() -> None:
    with pytest.raises(UsageError, match="no free slug"):
        slug.make_slug("x", WHEN, lambda _: True)


@settings(max_examples=200, deadline=None)
@given(
    st.text(),
    st.datetimes(timezones=st.just(UTC)),
    st.sets(st.integers(min_value=1, max_value=30), max_size=5),
)
def test_property_make_slug_is_valid_and_unique(
    title: str, when: datetime, taken_counters: set[int]
) -> None:
    first = slug.make_slug(title, when, _never)
    taken = {first if n == 1 else f"{first}-{n}" for n in taken_counters}
    made = slug.make_slug(title, when, taken.__contains__)
    assert slug.is_valid_slug(made)
    assert len(made) <= 64
    assert made not in taken
    assert slug.resolve(made, [*taken, made]) == made


# ------------------------------------------------------------------------------ resolve


@pytest.mark.parametrize("use_index", [False, True])
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("20260607-035710-ticket-orchestration-plan-tool", SLUGS[0]),
        ("20260607-035710-ticket-orchestration-plan-tool-2", SLUGS[1]),
        ("20260607-04", SLUGS[2]),
        ("2025", SLUGS[4]),
        ("ticket-orchestration-plan-tool", SLUGS[0]),
        ("orchestration-plan-tool", SLUGS[0]),
        ("tool-2", SLUGS[1]),
        ("plan-tool-docs", SLUGS[3]),
        ("docs", SLUGS[3]),
        ("parser-crash", SLUGS[4]),
    ],
)
def test_resolve_exact_prefix_and_word_suffix(use_index: bool, name: str, expected: str) -> None:
    index = slug.SlugIndex(SLUGS) if use_index else None
    assert _resolve(index, name, SLUGS) == expected


@pytest.mark.parametrize("use_index", [False, True])
@pytest.mark.parametrize(
    ("name", "candidates"),
    [
        ("20260607", SLUGS[:3]),
        ("plan-tool", [SLUGS[0]]),  # only the one whose words end in plan-tool
        ("parser", [SLUGS[2]]),
        ("fix-parser", [SLUGS[2]]),
        ("tool", [SLUGS[0]]),
    ],
)
def test_resolve_ambiguity_lists_sorted_candidates(
    use_index: bool, name: str, candidates: list[str]
) -> None:
    index = slug.SlugIndex(SLUGS) if use_index else None
    if len(candidates) == 1:
        assert _resolve(index, name, SLUGS) == candidates[0]
        return
    with pytest.raises(AmbiguousNameError) as info:
        _resolve(index, name, SLUGS)
    assert info.value.candidates == sorted(candidates)
    assert info.value.name == name


def test_resolve_ambiguous_word_suffix() -> None:
    slugs = ["20260101-000000-fix-login", "20260202-000000-redo-login"]
    for index in _resolvers(slugs):
        with pytest.raises(AmbiguousNameError) as info:
            _resolve(index, "login", slugs)
        assert info.value.candidates == slugs


def test_resolve_not_found_has_a_hint() -> None:
    for index in _resolvers(SLUGS):
        with pytest.raises(NotFoundError) as info:
            _resolve(index, "nothing-here", SLUGS)
        assert info.value.message == "no ticket named 'nothing-here'"
        assert info.value.hint == "`yoi ticket list` shows the tickets"


def test_resolve_word_suffix_must_align_on_dashes() -> None:
    for index in _resolvers(SLUGS):
        with pytest.raises(NotFoundError):
            _resolve(index, "lan-tool", SLUGS)  # not "-"-aligned
        with pytest.raises(NotFoundError):
            _resolve(index, "035710-ticket-orchestration-plan-tool", SLUGS)  # not words only


def test_resolve_ignores_invalid_entries_in_the_slug_list() -> None:
    slugs = ["../escape", "20260607-035710-Upper", "notaslug", SLUGS[2]]
    for index in _resolvers(slugs):
        assert _resolve(index, "20260607", slugs) == SLUGS[2]
        with pytest.raises(NotFoundError):
            _resolve(index, "notaslug", slugs)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "it is empty"),
        ("../etc/passwd", "path separator"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("..", "path separator, '..'"),
        ("a\0b", "NUL"),
        ("fix bug", "whitespace"),
        ("fix\nbug", "whitespace"),
        ("Fix", "uppercase"),
        ("fix_bug", "characters other than"),
        ("ﬁx", "characters other than"),
        ("a" * 65, "longer than 64"),
    ],
)
def test_names_that_can_never_match_are_usage_errors(name: str, reason: str) -> None:
    for index in _resolvers(SLUGS):
        with pytest.raises(UsageError) as info:
            _resolve(index, name, SLUGS)
        assert not isinstance(info.value, NotFoundError)
        assert reason in info.value.message
        assert info.value.hint is not None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=70) | st.sampled_from(SLUGS).map(lambda s: s[: len(s) // 2]))
def test_property_resolution_never_escapes_the_slug_list(name: str) -> None:
    index = slug.SlugIndex(SLUGS)
    outcomes: list[object] = []
    for resolver in (lambda n: slug.resolve(n, SLUGS), index.resolve):
        try:
            outcomes.append(resolver(name))
        except AmbiguousNameError as exc:
            outcomes.append(("ambiguous", tuple(exc.candidates)))
        except NotFoundError:
            outcomes.append("not found")
        except UsageError:
            outcomes.append("rejected")
    assert outcomes[0] == outcomes[1]
    result = outcomes[0]
    if isinstance(result, str) and result not in ("not found", "rejected"):
        assert result in SLUGS


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(SLUGS))
def test_property_a_full_slug_resolves_to_itself(full: str) -> None:
    assert slug.resolve(full, SLUGS) == full
    assert slug.SlugIndex(SLUGS).resolve(full) == full


class _Counted(str):
    """A string that counts every comparison made with it (``==``, ``<``, ...): the
    slugs a resolver touches, counted instead of timed (bench/parsers.py has the
    timings). Python calls these even when the other operand is a plain ``str``."""

    comparisons: ClassVar[int] = 0

    def __hash__(self) -> int:
        return str.__hash__(self)

    def __eq__(self, other: object) -> bool:
        _Counted.comparisons += 1
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        _Counted.comparisons += 1
        return str.__ne__(self, other)

    def __lt__(self, other: str) -> bool:
        _Counted.comparisons += 1
        return str.__lt__(self, other)

    def __gt__(self, other: str) -> bool:
        _Counted.comparisons += 1
        return str.__gt__(self, other)

    def __le__(self, other: str) -> bool:
        _Counted.comparisons += 1
        return str.__le__(self, other)

    def __ge__(self, other: str) -> bool:
        _Counted.comparisons += 1
        return str.__ge__(self, other)


def _comparisons(fn: Callable[[], T]) -> tuple[T, int]:
    before = _Counted.comparisons
    result = fn()
    return result, _Counted.comparisons - before


def _many_slugs(count: int) -> list[str]:
    return [f"2026{n % 12 + 1:02d}01-{n % 240000:06d}-task-number-{n}" for n in range(count)]


def test_index_lookups_touch_log_n_slugs_and_linear_resolve_touches_each_once() -> None:
    slugs = _many_slugs(50_000)
    index = slug.SlugIndex(slugs)
    assert len(index) == 50_000
    assert slugs[7] in index
    for n in range(0, 50_000, 500):
        found, touched = _comparisons(partial(index.resolve, _Counted(f"number-{n}")))
        assert found == slugs[n]
        assert touched <= 2 * math.log2(50_000) + 4  # a bisection and a dict lookup, no scan
    prefix = slugs[12_345][:24]
    found, touched = _comparisons(lambda: index.resolve(_Counted(prefix)))
    assert found == slugs[12_345]
    assert touched <= 2 * math.log2(50_000) + 4
    found, touched = _comparisons(lambda: slug.resolve(_Counted("number-49999"), slugs))
    assert found == slugs[-1]
    assert 50_000 <= touched <= 2 * 50_000 + 2  # one pass over the list


def test_index_build_does_n_log_n_comparisons() -> None:
    slugs = [_Counted(name) for name in _many_slugs(20_000)]
    index, touched = _comparisons(lambda: slug.SlugIndex(slugs))
    assert len(index) == 20_000
    assert index.resolve("number-19999") == slugs[-1]
    assert touched <= 20_000 * math.log2(20_000)  # a sort; pairwise checks would be 2 * 10^8


@pytest.mark.parametrize("sample", sorted(CORPUS.iterdir()), ids=lambda path: path.name)
def test_fuzz_corpus_names_raise_only_documented_errors(sample: Path) -> None:
    name = sample.read_bytes().decode("utf-8")
    for index in _resolvers(SLUGS):
        if sample.name.startswith("ok_"):
            assert _resolve(index, name, SLUGS) in SLUGS
        elif sample.name.startswith("bad_"):
            with pytest.raises(UsageError) as info:
                _resolve(index, name, SLUGS)
            assert not isinstance(info.value, NotFoundError)
        else:
            with pytest.raises(UsageError):
                _resolve(index, name, SLUGS)


# -------------------------------------------------------------------------------- clock


def test_clock_formats() -> None:
    when = datetime(2026, 11, 20, 10, 0, 0, 999, tzinfo=UTC)
    assert clock.format_ts(when) == "2026-11-20T10:00:00Z"
    assert clock.compact(when) == "20261120100000"
    assert clock.compact(datetime(999, 1, 2, 3, 4, 5)) == "09990102030405"  # naive = UTC
    assert clock.format_ts(datetime(2026, 11, 20, 11, tzinfo=timezone(timedelta(hours=1)))) == (
        "2026-11-20T10:00:00Z"
    )


@pytest.mark.parametrize(
    ("text", "micro"), [("2026-11-20T10:00:00Z", 0), ("2026-11-20T10:00:00.5Z", 500000)]
)
def test_parse_ts_accepts_utc_with_optional_fraction(text: str, micro: int) -> None:
    assert clock.parse_ts(text) == datetime(2026, 11, 20, 10, 0, 0, micro, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-20T10:00:00",
        "2026-11-20T10:00:00+00:00",
        "2026-11-20t10:00:00z",
        "2026-11-20 10:00:00Z",
        "2026-11-20T10:00:00.1234567Z",
        "2026-02-30T10:00:00Z",
        "2026-11-20T24:00:00Z",
        "",
    ],
)
def test_parse_ts_rejects_everything_else(text: str) -> None:
    with pytest.raises(ValueError, match=r"2026|date"):
        clock.parse_ts(text)


def test_now_is_utc_whole_seconds_and_pinned_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    current = clock.now()
    assert current.tzinfo == UTC
    assert current.microsecond == 0
    monkeypatch.setenv("YOI_TEST_NOW", "2026-11-20T10:00:00.7Z")
    assert clock.now() == datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
    monkeypatch.setenv("YOI_TEST_NOW", "tomorrow")
    with pytest.raises(UsageError, match="YOI_TEST_NOW"):
        clock.now()
