"""yamlio: strict loading, YAML 1.2 core scalars, faithful dumping, front matter."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scanner import Scanner

from yoi import yamlio, yamlrules
from yoi.errors import InvalidRecordError, UsageError

CORPUS = Path(__file__).parent / "fuzz_corpus"
Loader = Callable[..., Any]
LOADERS: list[Loader] = [yamlio.load_plain, yamlio.load_rt]


def _error(loader: Loader, text: str, **kwargs: Any) -> InvalidRecordError:
    with pytest.raises(InvalidRecordError) as info:
        loader(text, path="t.yaml", **kwargs)
    assert info.value.path == "t.yaml"
    return info.value


@contextlib.contextmanager
def _tokens_scanned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the tokens ruamel's scanner fetches (the first step of every parse) while
    the block runs: how much of the text was parsed, as a machine-independent number.
    Timings are in ``bench/parsers.py``."""
    count = [0]
    fetch = Scanner.fetch_more_tokens

    def counting(self: Scanner) -> Any:
        count[0] += 1
        return fetch(self)

    with monkeypatch.context() as patch:
        patch.setattr(Scanner, "fetch_more_tokens", counting)
        yield count


# ------------------------------------------------------------------------------ scalars


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T10:00:00Z", "2026-11-20T10:00:00Z"),
        ("2026-11-20", "2026-11-20"),
        ("2026-11-20 10:00:00", "2026-11-20 10:00:00"),
        ("no", "no"),
        ("on", "on"),
        ("Yes", "Yes"),
        ("y", "y"),
        ("012", 12),
        ("0o12", 10),
        ("0x1F", 31),
        ("0b101", "0b101"),
        ("1_000", "1_000"),
        ("1:20", "1:20"),
        ("-7", -7),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("true", True),
        ("FALSE", False),
        ("~", None),
        ("null", None),
        ("", None),
        ("<<", "<<"),
        ("'2026-11-20'", "2026-11-20"),
        ('"012"', "012"),
    ],
)
def test_scalars_follow_the_yaml_1_2_core_schema(loader: Loader, text: str, expected: Any) -> None:
    value = loader(f"v: {text}\n", path="t.yaml")["v"]
    assert value == expected
    assert type(yamlio.to_plain(value)) is type(expected)


def test_load_rt_returns_round_trip_objects_and_load_is_load_rt() -> None:
    data = yamlio.load("a:\n  - 1\n", path="t.yaml")
    assert isinstance(data, CommentedMap)
    assert isinstance(data["a"], CommentedSeq)
    assert yamlio.load is yamlio.load_rt


def test_load_plain_returns_plain_types() -> None:
    data = yamlio.load_plain("a: [1, x, 2.5, true, null]\nb: {c: d}\n", path="t.yaml")
    assert type(data) is dict
    assert type(data["a"]) is list
    assert type(data["b"]) is dict
    assert data == {"a": [1, "x", 2.5, True, None], "b": {"c": "d"}}


def test_to_plain_strips_every_round_trip_type() -> None:
    data = yamlio.load_rt("a: 0x10\nb: |\n  text\nc: 'q'\nd: [1.5e3]\n", path="t.yaml")
    plain = yamlio.to_plain(data)
    assert plain == {"a": 16, "b": "text\n", "c": "q", "d": [1500.0]}
    assert [type(v) for v in plain.values()] == [int, str, str, list]
    assert type(plain["d"][0]) is float


def test_empty_document_loads_as_none() -> None:
    assert yamlio.load_plain("", path="t.yaml") is None
    assert yamlio.load_rt("# only a comment\n", path="t.yaml") is None


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x: !!python/object:os.system 1\n", "line 1, column 4: tags are not allowed (!!python"),
        ("!!python/object/apply:os.system [ls]\n", "tags are not allowed (!!python/object/apply"),
        ("x: !!str 1\n", "tags are not allowed (!!str)"),
        ("x: !foo 1\n", "tags are not allowed (!foo)"),
        ("x: ! 1\n", "tags are not allowed (!)"),
        ("a: &x 1\n", "line 1, column 4: aliases and anchors are not allowed"),
        ("a: 1\nb: *x\n", "line 2, column 4: aliases and anchors are not allowed"),
        ("%YAML 1.1\n---\na: no\n", "directives (%YAML, %TAG) are not allowed"),
        ("%TAG !e! tag:e.com:\n---\na: 1\n", "directives (%YAML, %TAG) are not allowed"),
        ("a: 1\n---\nb: 2\n", "line 2, column 1: a file holds one YAML document"),
        ("title: a\nx: 1\ntitle: b\n", "line 3, column 1: duplicate key 'title'"),
        ("e:\n  c: 1\n  c: 2\n", "line 3, column 3: duplicate key 'c'"),
        ("? [a]\n: b\n", "line 1, column 3: mapping keys must be plain values, not collections"),
        ("{[a]: b}\n", "mapping keys must be plain values"),
        ("a: [1\n", "line 2, column 1: expected ',' or ']'"),
        ("a:\n\tb: 1\n", "line 2"),
        ("a: b\x00c\n", "line 1, column 5: character U+0000 is not allowed in YAML"),
        ("a: " + "9" * 5000 + "\n", "integer string conversion"),
    ],
)
def test_hostile_or_broken_yaml_is_a_clean_error(loader: Loader, text: str, message: str) -> None:
    error = _error(loader, text)
    assert len(error.problems) == 1
    assert message in error.problems[0].message
    assert error.problems[0].path == "t.yaml"
    assert isinstance(error, UsageError)


@pytest.mark.parametrize("loader", LOADERS)
def test_size_cap_is_checked_before_any_parsing(
    loader: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "x" * (10 << 20)
    with _tokens_scanned(monkeypatch) as scanned:
        loader("a: 1\n", path="t.yaml")
        assert scanned[0] > 0  # the counter sees a parse when there is one
        scanned[0] = 0
        error = _error(loader, text)
    assert error.problems[0].message == "file is 10485760 bytes; the limit is 1048576"
    assert scanned[0] == 0  # rejected on its length alone: the scanner never started


def test_size_cap_counts_utf8_bytes_not_characters() -> None:
    text = "a: " + "é" * 600  # 603 characters, 1203 bytes
    assert yamlio.load_plain(text, path="t.yaml", max_bytes=1203) == {"a": "é" * 600}
    message = _error(yamlio.load_plain, text, max_bytes=1202).problems[0].message
    assert message == "file is 1203 bytes; the limit is 1202"


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    "text",
    [
        lambda depth: "[" * depth + "]" * depth,
        lambda depth: "{a: " * depth + "}" * depth,
        lambda depth: "- " * depth + "x\n",
        lambda depth: "".join("  " * i + "k:\n" for i in range(depth)),
    ],
    ids=["flow-seq", "flow-map", "block-seq", "block-map"],
)
def test_nesting_1000_deep_is_rejected_after_max_depth_levels(
    loader: Loader, text: Callable[[int], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scanned = []
    for depth in (500, 1000):
        with _tokens_scanned(monkeypatch) as count:
            error = _error(loader, text(depth))
        assert "nesting deeper than 64 levels" in error.problems[0].message
        scanned.append(count[0])
    # The scanner stops at level 65 (a few tokens per level), whatever the real depth: no
    # look-ahead to the end of a flow collection, no parsing of the levels past the cap.
    assert scanned[0] == scanned[1] <= 4 * (yamlio.MAX_DEPTH + 1)


def test_depth_cap_is_configurable_and_exact() -> None:
    nested = "[" * 5 + "]" * 5
    assert yamlio.load_plain(nested, path="t.yaml", max_depth=5) == [[[[[]]]]]
    message = _error(yamlio.load_plain, nested, max_depth=4).problems[0].message
    assert message == "line 1, column 5: nesting deeper than 4 levels"


@pytest.mark.parametrize("loader", LOADERS)
def test_billion_laughs_is_rejected_at_the_first_anchor(
    loader: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (CORPUS / "yaml" / "bad_billion_laughs.yaml").read_text(encoding="utf-8")
    with _tokens_scanned(monkeypatch) as scanned:
        error = _error(loader, text)
    assert error.problems[0].message == "line 1, column 4: aliases and anchors are not allowed"
    # "a: &a" is token 5 or 6 (stream start, mapping start, key, scalar, value, anchor);
    # the first line alone holds more than 20, the file hundreds.
    assert scanned[0] <= 8


# ------------------------------------------------------------------------------ dumping


def test_dump_layout_is_block_style_with_indented_sequences() -> None:
    data = {
        "title": "Fix the parser",
        "state": "ready",
        "created_at": "2026-11-20T10:00:00Z",
        "importance": 2,
        "done": False,
        "base_ref": None,
        "acceptance_criteria": ["parses", "renders"],
        "blocked_on": [{"blocker_id": "b1", "resolved": True}],
        "labels": [],
        "body": "line one\nline two\n",
    }
    assert yamlio.dump(data) == (
        "title: Fix the parser\n"
        "state: ready\n"
        'created_at: "2026-11-20T10:00:00Z"\n'
        "importance: 2\n"
        "done: false\n"
        "base_ref: null\n"
        "acceptance_criteria:\n"
        "  - parses\n"
        "  - renders\n"
        "blocked_on:\n"
        "  - blocker_id: b1\n"
        "    resolved: true\n"
        "labels: []\n"
        "body: |\n"
        "  line one\n"
        "  line two\n"
    )


@pytest.mark.parametrize(
    "value",
    ["123", "true", "null", "", "~", "2026-11-20", "yes", "on", "N", "012", "1_000", "0b1",
     "1:20", ".inf", "<<", "=", "1e3", "-.5"],
)  # fmt: skip
def test_strings_that_read_as_other_types_are_double_quoted(value: str) -> None:
    out = yamlio.dump({"v": value})
    assert out == f'v: "{value}"\n'
    assert yamlio.load_plain(out, path="t.yaml") == {"v": value}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a\nb", "v: |-\n  a\n  b\n"),
        ("a\nb\n", "v: |\n  a\n  b\n"),
        ("a\n\nb\n\n", "v: |+\n  a\n\n  b\n\n...\n"),  # "..." ends the kept lines
        ("a \nb", 'v: "a \\nb"\n'),
        ("a\r\nb", 'v: "a\\r\\nb"\n'),
        ("a\tb\nc", 'v: "a\\tb\\nc"\n'),
        (" a\nb", 'v: " a\\nb"\n'),
        ("bell\x07", 'v: "bell\\a"\n'),
        ("nel\x85", 'v: "nel\\N"\n'),
        ("ünï ✓", "v: ünï ✓\n"),
        (" lead", "v: ' lead'\n"),
        ("x: y", "v: 'x: y'\n"),
    ],
)
def test_string_styles(value: str, expected: str) -> None:
    out = yamlio.dump({"v": value})
    assert out == expected
    assert yamlio.load_plain(out, path="t.yaml") == {"v": value}
    assert yamlio.to_plain(yamlio.load_rt(out, path="t.yaml")) == {"v": value}


def test_long_lines_are_not_folded() -> None:
    value = " ".join(["word"] * 2000)
    out = yamlio.dump({"v": value, "w": "x" * 5000})
    assert out.count("\n") == 2
    assert yamlio.load_plain(out, path="t.yaml", max_bytes=1 << 20)["v"] == value


def test_round_trip_keeps_comments_order_and_quoting_after_edits() -> None:
    text = (
        "# ticket header comment\n"
        "title: Old title  # the title\n"
        "state: ready\n"
        "labels:\n"
        "  - a  # first label\n"
        "quoted: 'kept'\n"
        "body: |\n"
        "  literal\n"
        "  text\n"
        "zeta: 1\n"
    )
    data = yamlio.load_rt(text, path="t.yaml")
    data["title"] = "New title"
    data["state"] = "queued"
    data["labels"].append("2026-11-20")
    data["queued_at"] = "2026-11-20T10:00:00Z"
    assert yamlio.dump(data) == (
        "# ticket header comment\n"
        "title: New title  # the title\n"
        "state: queued\n"
        "labels:\n"
        "  - a  # first label\n"
        '  - "2026-11-20"\n'
        "quoted: 'kept'\n"
        "body: |\n"
        "  literal\n"
        "  text\n"
        "zeta: 1\n"
        'queued_at: "2026-11-20T10:00:00Z"\n'
    )


def test_dump_of_an_unmodified_dump_is_stable() -> None:
    data = {"a": ["x", {"b": "multi\nline\n"}], "c": "yes", "d": 1.5}
    out = yamlio.dump(data)
    assert yamlio.dump(yamlio.load_rt(out, path="t.yaml")) == out


_JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=15,
)
_YAMLISH_TEXT = st.text(alphabet="ab \n\r\t-#:|>'\"?!&*%@`{}[],~\x85\u2028é", max_size=20)
_YAMLISH = st.recursive(
    st.none() | st.booleans() | st.integers() | _YAMLISH_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_YAMLISH_TEXT, children, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(), _JSON_LIKE) | st.dictionaries(_YAMLISH_TEXT, _YAMLISH))
def test_property_dump_then_load_is_identity(data: dict[str, Any]) -> None:
    out = yamlio.dump(data)
    assert yamlio.load_plain(out, path="t.yaml") == data
    round_trip = yamlio.load_rt(out, path="t.yaml")
    assert yamlio.to_plain(round_trip) == data
    assert yamlio.dump(round_trip) == out


# ------------------------------------------------------------------------- front matter


def test_split_front_matter_stops_at_the_first_closing_fence() -> None:
    text = "---\ntitle: x\n---\n\n# Body\n\n---\nmore: not yaml\n---\n"
    assert yamlio.split_front_matter(text, path="t.md") == (
        "title: x\n",
        "# Body\n\n---\nmore: not yaml\n---\n",
    )


def test_split_front_matter_handles_bom_crlf_and_fence_blanks() -> None:
    text = "\ufeff---  \r\ntitle: x\r\n--- \r\nbody\r\nline\r\n"
    assert yamlio.split_front_matter(text, path="t.md") == ("title: x\n", "body\nline\n")


@pytest.mark.parametrize(
    ("text", "yaml_text", "body"),
    [
        ("---\n---\n", "", ""),
        ("---\ntitle: x\n---", "title: x\n", ""),
        ("---\na: 1\n---\nno blank line\n", "a: 1\n", "no blank line\n"),
        ("---\na: 1\n---\n\n\ntwo blanks\n", "a: 1\n", "\ntwo blanks\n"),
    ],
)
def test_split_front_matter_edge_cases(text: str, yaml_text: str, body: str) -> None:
    assert yamlio.split_front_matter(text, path="t.md") == (yaml_text, body)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("title: x\n---\nbody\n", "missing front matter"),
        ("", "missing front matter"),
        ("# Body\n", "missing front matter"),
        ("----\ntitle: x\n---\n", "missing front matter"),
        ("---\ntitle: x\nbody without a closing fence\n", "front matter is not closed"),
        ("---\ntitle: x\n--- x\n", "front matter is not closed"),
    ],
)
def test_split_front_matter_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidRecordError) as info:
        yamlio.split_front_matter(text, path="t.md")
    assert message in info.value.problems[0].message
    assert info.value.hint is not None
    assert "'---'" in info.value.hint


def test_join_front_matter_writes_a_readable_file() -> None:
    assert yamlio.join_front_matter("title: x\n", "Body\n") == "---\ntitle: x\n---\n\nBody\n"
    assert yamlio.join_front_matter("title: x", "") == "---\ntitle: x\n---\n"


_FM_BODY = st.text(alphabet="ab-\n# \r", max_size=40).filter(lambda body: "\r\n" not in body)
_FM_YAML = st.lists(st.text(alphabet="abc: ", max_size=8), max_size=4).map(
    lambda lines: "".join(line + "\n" for line in lines if line.strip(" ") != "---")
)


@settings(max_examples=150, deadline=None)
@given(_FM_YAML, _FM_BODY)
def test_property_split_inverts_join(yaml_text: str, body: str) -> None:
    joined = yamlio.join_front_matter(yaml_text, body)
    assert yamlio.split_front_matter(joined, path="t.md") == (yaml_text, body)


# ------------------------------------------------------------------------- fuzz corpus

_YAML_PIECES = st.sampled_from(
    [*"ab01 \n\t-:?[]{},#&*!|>'\"%@`.~=<\\\r\x85\ufeffé", "---", "...", "%YAML 1.2", "!!str"]
) | st.sampled_from(["- ", ": ", "\n  ", "0x", "0o", "1e", ".inf", "<<"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_YAML_PIECES, max_size=40).map("".join))
def test_property_arbitrary_text_raises_only_invalid_record(text: str) -> None:
    for loader in LOADERS:
        with contextlib.suppress(InvalidRecordError):
            loader(text, path="t.yaml")
    with contextlib.suppress(InvalidRecordError):
        yamlio.split_front_matter(text, path="t.md")


@pytest.mark.parametrize("sample", sorted((CORPUS / "yaml").iterdir()), ids=lambda path: path.name)
def test_fuzz_corpus_yaml_raises_only_documented_errors(sample: Path) -> None:
    text = sample.read_bytes().decode("utf-8")
    for loader in LOADERS:
        if sample.name.startswith("ok_"):
            loader(text, path=sample.name)
        else:
            with pytest.raises(InvalidRecordError):
                loader(text, path=sample.name)
    with contextlib.suppress(UsageError):
        yamlio.split_front_matter(text, path=sample.name)


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0123456789.-+_:~=<xXoObBeEtTfFnNyYlLaAsSuUiI \t", max_size=12),
        st.text(max_size=12),
        st.sampled_from(["yes", "No", "~", "null", ".inf", "2024-01-01", "0x1F", "1_000", "<<"]),
    )
)
def test_typed_elsewhere_is_the_any_of_every_resolver(text: str) -> None:
    """The single alternation answers as matching each resolver in turn would."""
    expected = any(r.match(text) for r in yamlio._TYPED_ELSEWHERE)
    assert yamlrules.typed_elsewhere(text) is expected


def test_only_the_listed_first_characters_can_be_typed() -> None:
    """The first-character filter of ``typed_elsewhere`` never hides a typed scalar: no
    resolver matches text that starts with any other character (each printable ASCII
    character and a sample beyond, followed by what could complete a match)."""
    words = ["rue", "alse", "ull", "es", "o", "n", "ff", "RUE", "ALSE", "ULL", "ES", "O", "N", "FF"]
    tails = ["", "0", "1", "e5", ".5", "_", ":30", "-01-01", "x1F", "b1", "o7", "inf", *words]
    firsts = [chr(c) for c in range(0, 0x3100)] + ["\U0001f600"]
    for first in firsts:
        if first in yamlrules.TYPED_FIRST:
            continue
        for tail in tails:
            text = first + tail
            assert not any(r.match(text) for r in yamlio._TYPED_ELSEWHERE), repr(text)


def test_typed_elsewhere_remembers_a_bounded_number_of_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The answers are kept by text (the engine asks the same ones again and again), at
    most ``_TYPED_MEMO_MAX`` of them, and a remembered answer is the alternation's."""
    monkeypatch.setattr(yamlrules, "_MEMO", {})
    monkeypatch.setattr(yamlrules, "MEMO_MAX", 8)
    texts = [f"{n}" if n % 2 else f"{n}-x" for n in range(40)] * 2
    for text in texts:
        expected = any(r.match(text) for r in yamlio._TYPED_ELSEWHERE)
        assert yamlrules.typed_elsewhere(text) is expected
        assert len(yamlrules._MEMO) <= 8
    assert yamlrules._MEMO  # kept


def test_the_resolver_copy_is_ruamels_table() -> None:
    """``yamlrules.RESOLVERS`` (what the dumper quotes by, without importing ruamel.yaml)
    is ruamel.yaml's own table of implicit resolvers: its patterns and flags, every tag
    but ``str``. An upgrade of ruamel.yaml that changes them fails here."""
    from ruamel.yaml.resolver import implicit_resolvers

    theirs = [
        (r.pattern, "x" if r.flags & re.X else "")
        for _versions, tag, r, _first in implicit_resolvers
        if not tag.endswith(":str")
    ]
    assert theirs == yamlrules.RESOLVERS


def test_writing_a_record_does_not_import_ruamel() -> None:
    """The fast writer answers its quoting questions without ruamel.yaml (a process that
    writes records, as the engine does, does not pay for importing it)."""
    code = (
        "import sys\n"
        "from yoi import fastdump\n"
        "text = fastdump.dump({'a': 'yes', 'b': '2024-01-01', 'c': 'x\\ny\\n', 'd': ['1_000']})\n"
        'assert text == "a: \\"yes\\"\\nb: \\"2024-01-01\\"\\nc: |\\n  x\\n  y\\n"'
        ' "d:\\n  - \\"1_000\\"\\n", repr(text)\n'
        "assert 'ruamel.yaml' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_non_printable_set_is_the_complement_of_yamls_printable_one() -> None:
    """``not_literal`` (and fastyaml's ``_BAD_CHARS``, the same set) match exactly the
    code points outside what a literal block may hold: the line feed, printable ASCII,
    and the printable ranges of YAML 1.2 without C1 controls, U+2028/2029 and the BOM."""
    from yoi import fastyaml

    allowed = re.compile(
        "[\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
    )
    for code in range(0x110000):
        char = chr(code)
        expected = allowed.match(char) is None
        assert (yamlrules.not_literal().match(char) is None) is not expected, hex(code)
        assert (fastyaml._BAD_CHARS.match(char) is None) is not expected, hex(code)
