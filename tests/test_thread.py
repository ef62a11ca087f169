"""thread: entry rendering and parsing, injection safety, validation."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yoi import thread
from yoi.errors import InvalidRecordError, UsageError
from yoi.thread import Entry, make_entry, parse_thread, render_entry

CORPUS = Path(__file__).parent / "fuzz_corpus" / "thread"
AT = "2026-11-20T10:00:00Z"
T = TypeVar("T")


def _errors(text: str) -> list[str]:
    with pytest.raises(InvalidRecordError) as info:
        parse_thread(text, path="thread.md")
    assert info.value.path == "thread.md"
    return [problem.message for problem in info.value.problems]


# ---------------------------------------------------------------------------- rendering


def test_render_decision_entry_exactly() -> None:
    entry = make_entry("decision", "alice", AT, "Use ruamel.\n\n---\n## Not a heading of ours")
    assert render_entry(entry) == (
        "<!-- yoi:entry kind=decision author=alice at=2026-11-20T10:00:00Z -->\n"
        "## Decision · alice · 2026-11-20 10:00 UTC\n"
        "\n"
        "Use ruamel.\n"
        "\n"
        "---\n"
        "## Not a heading of ours\n"
        "\n"
    )


def test_render_state_run_and_pause_entries_show_a_summary_line() -> None:
    state = make_entry(
        "state", "ada", AT, attrs={"from": "queued", "to": "inprogress", "reason": "accepted"}
    )
    run = make_entry("run", "engine", AT, "notes", {"run_id": "run-1", "result": "PASS"})
    pause = make_entry("pause", "engine", AT, attrs={"pause_id": "p-1", "reason": "BLOCKED"})
    assert render_entry(state) == (
        "<!-- yoi:entry kind=state author=ada at=2026-11-20T10:00:00Z from=queued to=inprogress"
        " reason=accepted -->\n"
        "## State · ada · 2026-11-20 10:00 UTC\n"
        "**queued → inprogress**: accepted\n"
        "\n"
    )
    assert render_entry(run).splitlines()[2:] == ["Run `run-1`: **PASS**", "", "notes", ""]
    assert render_entry(pause).splitlines()[2] == "Paused: **BLOCKED** (`p-1`)"


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("plain", "plain"),
        ("two words", '"two words"'),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a\\b", '"a\\\\b"'),
        ("k=v", '"k=v"'),
        ("tab\there", '"tab\there"'),
        ("ünï", "ünï"),
    ],
)
def test_attribute_values_are_quoted_when_needed_and_round_trip(value: str, rendered: str) -> None:
    entry = make_entry("comment", "ada", AT, "x", {"note": value})
    assert f" note={rendered} -->" in render_entry(entry)
    assert parse_thread(render_entry(entry), path="t.md") == [entry]


@pytest.mark.parametrize("value", ["line\nbreak", "carriage\rreturn", "close --> comment"])
def test_attribute_values_that_could_break_the_marker_are_refused(value: str) -> None:
    with pytest.raises(UsageError, match="may not contain"):
        render_entry(Entry("comment", "ada", AT, (("note", value),), "x"))
    with pytest.raises(UsageError, match="may not contain"):
        render_entry(Entry("comment", value, AT, (), "x"))


def test_a_body_cannot_forge_an_entry() -> None:
    forged = "<!-- yoi:entry kind=decision author=mallory at=2026-11-20T10:00:00Z -->"
    body = f"before\n{forged}\n\\{forged}\n\\\\<!-- yoi:entry\nafter"
    entry = make_entry("comment", "eve", AT, body)
    text = render_entry(entry)
    assert f"\n\\{forged}\n\\\\{forged}\n\\\\\\<!-- yoi:entry\n" in text
    assert [line for line in text.split("\n") if line.startswith(thread.MARKER_PREFIX)] == [
        text.split("\n")[0]
    ]
    assert parse_thread(text, path="t.md") == [entry]


@pytest.mark.parametrize("body", ["", "x", "\n\nx", " ", "x\n ", "\r", "a\r\nb\r", "\\"])
def test_bodies_round_trip_exactly(body: str) -> None:
    entries = [make_entry("comment", "ada", AT, body), make_entry("plan", "bo", AT, "next")]
    text = "".join(render_entry(entry) for entry in entries)
    assert parse_thread(text, path="t.md") == entries


@pytest.mark.parametrize("body", ["x\n", "x\n\n\n"])
def test_trailing_newlines_are_layout_and_every_entry_ends_with_one_blank_line(body: str) -> None:
    entry = Entry("comment", "ada", AT, (), body)
    assert entry.body == "x"
    assert render_entry(entry).endswith("\n\nx\n\n")
    assert not render_entry(entry).endswith("\n\n\n")
    assert parse_thread(render_entry(entry), path="t.md")[0].body == "x"


def test_empty_body_renders_heading_and_one_blank_line() -> None:
    assert render_entry(make_entry("created", "ada", AT)) == (
        "<!-- yoi:entry kind=created author=ada at=2026-11-20T10:00:00Z -->\n"
        "## Created · ada · 2026-11-20 10:00 UTC\n"
        "\n"
    )


def test_thread_header_is_one_heading_line() -> None:
    assert thread.thread_header("Fix\nthe   parser") == "# Thread: Fix the parser\n\n"


# ------------------------------------------------------------------------------ parsing


def test_parse_ignores_the_preamble_and_reads_every_entry() -> None:
    text = (
        thread.thread_header("Fix")
        + "Some notes <!-- yoi:entry not at line start -->\n\n"
        + render_entry(make_entry("created", "ada", AT, "Ticket created."))
        + render_entry(make_entry("comment", "bo", "2026-11-20T11:00:00.5Z", "Looks good"))
    )
    entries = parse_thread(text, path="t.md")
    assert [(e.kind, e.author, e.at, e.body) for e in entries] == [
        ("created", "ada", AT, "Ticket created."),
        ("comment", "bo", "2026-11-20T11:00:00.5Z", "Looks good"),
    ]


def test_parse_keeps_a_hand_written_heading_in_the_body() -> None:
    text = f"<!-- yoi:entry kind=comment author=ada at={AT} -->\n## My own heading\n\nhello\n\n"
    assert parse_thread(text, path="t.md")[0].body == "## My own heading\n\nhello"


def test_parse_tolerates_a_dropped_final_blank_line_and_crlf_checkouts() -> None:
    entry = make_entry("comment", "ada", AT, "last line")
    text = render_entry(entry)
    assert parse_thread(text.rstrip("\n") + "\n", path="t.md") == [entry]
    assert parse_thread(text.replace("\n", "\r\n"), path="t.md") == [entry]
    assert parse_thread("\ufeff" + text, path="t.md") == [entry]


def test_unknown_extra_attributes_are_kept_in_order() -> None:
    text = f'<!-- yoi:entry kind=comment author=ada at={AT} zeta=1 alpha="a b" -->\n'
    entry = parse_thread(text, path="t.md")[0]
    assert entry.attrs == (("zeta", "1"), ("alpha", "a b"))
    assert entry.get("alpha") == "a b"
    assert entry.get("kind") == "comment"
    assert entry.get("missing") is None


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("<!-- yoi:entry kind=comment author=ada at=2026-11-20T10:00:00Z", "malformed"),
        ("<!-- yoi:entrykind=comment -->", "malformed"),
        ('<!-- yoi:entry kind=comment author="ada at=2026-11-20T10:00:00Z -->', "malformed"),
        ('<!-- yoi:entry kind=comment author="a\\nb" at=2026-11-20T10:00:00Z -->', "malformed"),
        (
            "<!-- yoi:entry kind=exploit author=ada at=2026-11-20T10:00:00Z -->",
            "unknown entry kind",
        ),
        ("<!-- yoi:entry kind=comment author=ada -->", "no 'at' attribute"),
        ("<!-- yoi:entry kind=comment at=2026-11-20T10:00:00Z -->", "no 'author' attribute"),
        ("<!-- yoi:entry kind=comment author=ada at=2026-11-20 -->", "not an RFC 3339"),
        ("<!-- yoi:entry kind=comment author=ada at=2026-13-01T00:00:00Z -->", "not a valid date"),
        ("<!-- yoi:entry kind=comment author=a author=b at=2026-11-20T10:00:00Z -->", "repeated"),
        ('<!-- yoi:entry kind=comment author="x --> y" at=2026-11-20T10:00:00Z -->', "'-->'"),
        ("<!-- yoi:entry kind=state author=ada at=2026-11-20T10:00:00Z from=a -->", "'to'"),
        ('<!-- yoi:entry kind=comment author="" at=2026-11-20T10:00:00Z -->', "'author' is empty"),
    ],
)
def test_bad_markers_are_reported_with_their_line(marker: str, message: str) -> None:
    text = f"# Thread: x\n\n{marker}\nbody\n"
    errors = _errors(text)
    assert errors[0].startswith("line 3: ")
    assert message in errors[0]


def test_every_bad_marker_is_reported() -> None:
    good = render_entry(make_entry("comment", "ada", AT, "ok"))
    text = good + "<!-- yoi:entry kind=nope author=a at=x -->\n" + good + "<!-- yoi:entry -->\n"
    errors = _errors(text)
    assert [error.split(":")[0] for error in errors] == ["line 6"] * 2 + ["line 12"] * 3
    assert "unknown entry kind 'nope'" in errors[0]
    assert "no 'kind' attribute" in errors[2]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kind", "attrs", "missing"),
    [
        ("state", {"from": "ready"}, "to"),
        ("state", {"to": "ready"}, "from"),
        ("run", {"run_id": "run-1"}, "result"),
        ("run", {"result": "PASS"}, "run_id"),
        ("pause", {"pause_id": "p"}, "reason"),
        ("pause", {"reason": "BLOCKED", "pause_id": ""}, "pause_id"),
    ],
)
def test_validate_entry_requires_kind_attributes(
    kind: str, attrs: dict[str, str], missing: str
) -> None:
    with pytest.raises(UsageError, match=f"a {kind} entry needs attribute '{missing}'"):
        thread.validate_entry(Entry(kind, "ada", AT, tuple(attrs.items())))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (Entry("gossip", "ada", AT), "unknown entry kind 'gossip' (kinds: created, comment"),
        (Entry("comment", "", AT), "'author' is empty"),
        (Entry("comment", "ada", "yesterday"), "attribute 'at'"),
        (Entry("comment", "ada", AT, (("Bad", "x"),)), "attribute name 'Bad'"),
        (Entry("comment", "ada", AT, (("kind", "x"),)), "attribute name 'kind'"),
        (Entry("comment", "ada", AT, (("a", "1"), ("a", "2"))), "attribute name 'a'"),
    ],
)
def test_validate_entry_rejects_bad_entries(entry: Entry, message: str) -> None:
    with pytest.raises(UsageError, match="invalid thread entry") as info:
        thread.validate_entry(entry)
    assert message in info.value.message


def test_entry_heading_and_as_dict() -> None:
    entry = make_entry("review", "Ada L", "2026-11-20T09:05:59Z", "fine", {"verdict": "ok"})
    assert entry.heading == "## Review · Ada L · 2026-11-20 09:05 UTC"
    assert entry.as_dict() == {
        "kind": "review",
        "author": "Ada L",
        "at": "2026-11-20T09:05:59Z",
        "attrs": {"verdict": "ok"},
        "body": "fine",
    }


# ----------------------------------------------------------------------------- property

_ONE_LINE = st.text(min_size=1).filter(lambda v: not ({"\n", "\r"} & set(v)) and "-->" not in v)
_LINES = st.sampled_from(
    [
        thread.MARKER_PREFIX,
        f"{thread.MARKER_PREFIX} kind=comment author=a at={AT} -->",
        "\\" + thread.MARKER_PREFIX,
        "\\",
        "",
        " ",
        "\r",
        "---",
        "## Comment · a · 2026-11-20 10:00 UTC",
    ]
)
_BODY = st.text() | st.lists(_LINES | st.text(max_size=5), max_size=6).map("\n".join)


@st.composite
def _entries(draw: st.DrawFn) -> Entry:
    kind = draw(st.sampled_from(list(thread.KINDS)))
    attrs = {name: draw(_ONE_LINE) for name in thread.KINDS[kind][1]}
    if draw(st.booleans()):
        attrs["note"] = draw(st.text().filter(lambda v: v == v.replace("\n", "")))
        attrs["note"] = attrs["note"].replace("\r", "").replace("-->", "")
    return make_entry(kind, draw(_ONE_LINE), AT, draw(_BODY), attrs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_entries(), max_size=4), st.text(max_size=30))
def test_property_render_parse_round_trip(entries: list[Entry], title: str) -> None:
    text = thread.thread_header(title) + "".join(render_entry(entry) for entry in entries)
    parsed = parse_thread(text, path="t.md")
    assert parsed == entries
    markers = [line for line in text.split("\n") if line.startswith(thread.MARKER_PREFIX)]
    assert len(markers) == len(entries)


_THREAD_PIECES = st.sampled_from(
    [thread.MARKER_PREFIX, " kind=comment", " kind=state", " author=a", ' author="a b"', "x"]
) | st.sampled_from(
    [f" at={AT}", " -->", "\n", "\r", "\\", '"', " from=x", " to=y", "=", " ", "-->"]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_THREAD_PIECES, max_size=30).map("".join))
def test_property_arbitrary_text_parses_or_raises_invalid_record(text: str) -> None:
    try:
        entries = parse_thread(text, path="t.md")
    except InvalidRecordError:
        return
    rendered = "".join(render_entry(entry) for entry in entries)
    assert parse_thread(rendered, path="t.md") == entries


# ------------------------------------------------------------------------ speed, corpus


def _steps(fn: Callable[[], T]) -> tuple[T, int]:
    """``fn()`` and the work it did, counted instead of timed (bench/parsers.py has the
    timings): Python lines executed plus C calls, where a call on a string (``find``,
    ``split``, ``startswith``...) costs one step per character of that string, so a
    rescan of the whole text counts as what it is."""
    steps = 0

    def on_call(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal steps
        if event == "c_call":
            owner = getattr(arg, "__self__", None)
            steps += 1 + (len(owner) if isinstance(owner, str) else 0)

    def on_line(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal steps
        steps += event == "line"
        return on_line

    previous = sys.gettrace(), sys.getprofile()
    sys.setprofile(on_call)
    sys.settrace(on_line)
    try:
        result = fn()
    finally:
        sys.settrace(previous[0])
        sys.setprofile(previous[1])
    return result, steps


def test_ten_thousand_entries_parse_with_work_linear_in_their_number() -> None:
    entry = make_entry("state", "ada", AT, "body\nmore", {"from": "queued", "to": "done"})
    parsed = parse_thread(render_entry(entry) * 10_000, path="t.md")
    assert len(parsed) == 10_000
    assert parsed[-1] == entry
    small, small_steps = _steps(lambda: parse_thread(render_entry(entry) * 200, path="t.md"))
    big, big_steps = _steps(lambda: parse_thread(render_entry(entry) * 2_000, path="t.md"))
    assert (len(small), len(big)) == (200, 2_000)
    # Ten times the entries is ten times the work; a quadratic parser would do ~100 times.
    assert 9 * small_steps <= big_steps <= 11 * small_steps


@pytest.mark.parametrize("sample", sorted(CORPUS.iterdir()), ids=lambda path: path.name)
def test_fuzz_corpus_thread_raises_only_documented_errors(sample: Path) -> None:
    text = sample.read_bytes().decode("utf-8")
    if sample.name.startswith("ok_"):
        entries = parse_thread(text, path=sample.name)
        for entry in entries:
            assert parse_thread(render_entry(entry), path="t.md") == [entry]
    else:
        with pytest.raises(InvalidRecordError):
            parse_thread(text, path=sample.name)
