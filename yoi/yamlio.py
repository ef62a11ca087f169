"""The one place that configures ruamel.yaml: strict loading, faithful dumping, front matter.

Loading is strict (notes/reliability.md §5, R19). Before anything is constructed, every
parse event is checked as it is produced, and the first problem stops the load:

- explicit tags (``!!python/object``, ``!foo``, even ``!!str``), anchors, aliases,
  ``%YAML``/``%TAG`` directives, a second document, a collection used as a mapping key,
  and nesting deeper than ``max_depth`` are rejected;
- the size cap is checked on the text before the parser sees it;
- duplicate keys are errors (ruamel's default, never relaxed).

Scalars follow the YAML 1.2 *core schema* exactly, and nothing else: null (``~``,
``null``, empty), ``true``/``false`` (three spellings each), ints ``[-+]?[0-9]+`` (so
``012`` is 12), ``0o17``, ``0x1F``, floats, ``.inf``, ``.nan``. There is no timestamp
type: ``2026-11-20T10:00:00Z`` and ``2026-11-20`` load as the strings they were written
as. ``yes``/``no``/``on``/``off``, ``1_000``, ``0b101`` and ``1:20`` are strings.

Dumping uses block style, mappings indented by 2, sequences as ``  - item`` (indent 4,
dash offset 2), no line folding, unicode as is, ``null`` spelled out. A string is
double-quoted when any common YAML reader (1.1 or 1.2) would read it as something else
(``"123"``, ``"yes"``, ``"2026-11-20"``, ``""``), so the files read the same everywhere;
control characters are escaped in double quotes; a multi-line string is a literal block
(``|``) when that reproduces it exactly, else double-quoted.
"""

from __future__ import annotations

import io
import re
from typing import Any, TypedDict, Unpack

from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    MappingStartEvent,
    NodeEvent,
)
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.parser import Parser, RoundTripParser
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.resolver import VersionedResolver, implicit_resolvers
from ruamel.yaml.scanner import RoundTripScanner, Scanner

from yoi import frontmatter, yamlrules
from yoi.errors import InvalidRecordError, Problem

__all__ = [
    "FRONT_LINE",
    "CommentLayoutError",
    "dump",
    "join_front_matter",
    "load",
    "load_plain",
    "load_rt",
    "split_front_matter",
    "to_plain",
]

MAX_BYTES = yamlrules.MAX_BYTES
MAX_DEPTH = 64
_YAML_TAG = "tag:yaml.org,2002:"

# ----------------------------------------------------------------------------- resolver


def _core_table() -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    table: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
    for name, pattern, firsts in yamlrules.CORE_SCHEMA:
        entry = (_YAML_TAG + name, re.compile(yamlrules.core_pattern(pattern)))
        for first in [*firsts, *([""] if name == "null" else [])]:
            table.setdefault(first, []).append(entry)
    return table


_CORE_TABLE = _core_table()


class _CoreResolver(VersionedResolver):
    """YAML 1.2 core schema for every document, without ruamel's extras (timestamps,
    ``0b``, ``1_000``, merge keys)."""

    @property
    def versioned_resolver(self) -> Any:
        return _CORE_TABLE


# Anything a YAML 1.1 or 1.2 reader (ruamel's or ours) types as non-string gets quoted
# (``yamlrules``, which holds a copy of ruamel's table: tests/test_yamlio.py holds
# ``yamlrules.typed_elsewhere`` equal to matching each of these in turn).
_TYPED_ELSEWHERE = [
    regexp for _versions, tag, regexp, _first in implicit_resolvers if not tag.endswith(":str")
] + [regexp for entries in _CORE_TABLE.values() for _tag, regexp in entries]


# ------------------------------------------------------------------------ strict parser


class _Rejected(Exception):
    def __init__(self, mark: Any, message: str):
        super().__init__(message)
        self.mark = mark
        self.message = message


def _reject(event: Event, message: str) -> _Rejected:
    return _Rejected(event.start_mark, message)


class _Guard:
    """Checks each parse event as the parser produces it (before any construction)."""

    def __init__(self, max_depth: int):
        self.max_depth = max_depth
        self.documents = 0
        self.open: list[list[int]] = []  # per open collection: [is_mapping, children seen]

    def check(self, event: Event) -> None:
        if isinstance(event, DocumentStartEvent):
            self._document(event)
        elif isinstance(event, NodeEvent):
            self._node(event)
        elif isinstance(event, CollectionEndEvent) and self.open:
            self.open.pop()

    def _document(self, event: DocumentStartEvent) -> None:
        self.documents += 1
        if self.documents > 1:
            raise _reject(event, "a file holds one YAML document; found a second one")
        if event.version is not None or event.tags:
            raise _reject(event, "directives (%YAML, %TAG) are not allowed")

    def _node(self, event: NodeEvent) -> None:
        if isinstance(event, AliasEvent) or event.anchor is not None:
            raise _reject(event, "aliases and anchors are not allowed")
        tag = getattr(event, "tag", None)
        if tag is not None:
            shown = "!!" + tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag
            raise _reject(event, f"tags are not allowed ({shown})")
        if self.open:
            parent = self.open[-1]
            is_key = parent[0] == 1 and parent[1] % 2 == 0
            parent[1] += 1
            if is_key and isinstance(event, CollectionStartEvent):
                raise _reject(event, "mapping keys must be plain values, not collections")
        if isinstance(event, CollectionStartEvent):
            if len(self.open) >= self.max_depth:
                raise _reject(event, f"nesting deeper than {self.max_depth} levels")
            self.open.append([int(isinstance(event, MappingStartEvent)), 0])


class _StrictYAML(YAML):
    """A ``YAML`` that carries yoi's depth cap to its scanner and parser."""

    def __init__(self, *, round_trip: bool, max_depth: int):
        super().__init__(typ="rt") if round_trip else super().__init__(typ="safe", pure=True)
        self.yoi_max_depth = max_depth


class _StrictScanner(Scanner):
    """Stops at the flow bracket that nests too deep: ``[[[[...`` would otherwise cost
    O(depth²) in the scanner's simple-key look-ahead before any event exists."""

    def fetch_flow_collection_start(self, token_class: Any, to_push: str) -> None:
        if self.flow_level >= self.loader.yoi_max_depth:
            raise _Rejected(
                self.reader.get_mark(), f"nesting deeper than {self.loader.yoi_max_depth} levels"
            )
        super().fetch_flow_collection_start(token_class, to_push)


class _StrictRoundTripScanner(_StrictScanner, RoundTripScanner):
    pass


class _StrictParser(Parser):
    def __init__(self, loader: Any) -> None:
        super().__init__(loader)
        self._guard = _Guard(loader.yoi_max_depth)

    def _advance(self) -> None:
        if self.current_event is None and self.state:
            event = self.state()
            self._guard.check(event)
            self.current_event = event

    def check_event(self, *choices: Any) -> bool:
        self._advance()
        return bool(super().check_event(*choices))

    def peek_event(self) -> Any:
        self._advance()
        return super().peek_event()

    def get_event(self) -> Any:
        self._advance()
        return super().get_event()


class _StrictRoundTripParser(_StrictParser, RoundTripParser):
    pass


# ---------------------------------------------------------------------------- loading


def _loader(round_trip: bool, max_depth: int) -> YAML:
    yaml = _StrictYAML(round_trip=round_trip, max_depth=max_depth)
    if round_trip:
        yaml.Scanner, yaml.Parser = _StrictRoundTripScanner, _StrictRoundTripParser
        yaml.preserve_quotes = True
    else:
        yaml.Scanner, yaml.Parser = _StrictScanner, _StrictParser
    yaml.Resolver = _CoreResolver
    yaml.allow_duplicate_keys = False
    return yaml


def _invalid(path: str, message: str) -> InvalidRecordError:
    return InvalidRecordError(path, [Problem(path, "", message)])


def _at(mark: Any, message: str) -> str:
    """``line L, column C: message`` from a 0-based ruamel mark (or just the message)."""
    return f"line {mark.line + 1}, column {mark.column + 1}: {message}" if mark else message


def _describe(exc: BaseException, text: str) -> str:
    """One line saying what is wrong and where."""
    if isinstance(exc, _Rejected):
        return _at(exc.mark, exc.message)
    if isinstance(exc, DuplicateKeyError):
        found = re.search(r'found duplicate key "(.*?)" with value', exc.problem or "")
        return _at(exc.problem_mark, f"duplicate key '{found.group(1) if found else '?'}'")
    if isinstance(exc, MarkedYAMLError):
        what = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            what = f"{exc.problem} ({exc.context})"
        return _at(exc.problem_mark or exc.context_mark, what)
    if isinstance(exc, ReaderError):
        before = text[: exc.position]
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        what = f"character U+{exc.character:04X} is not allowed in YAML"
        return f"line {line}, column {column}: {what}"
    if isinstance(exc, RecursionError):
        return "nesting too deep to load"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _check_size(text: str, path: str, max_bytes: int) -> None:
    if len(text) <= max_bytes // 4:
        return
    size = len(text) if len(text) > max_bytes else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise _invalid(path, f"file is {size} bytes; the limit is {max_bytes}")


def _load(text: str, path: str, round_trip: bool, options: Options) -> Any:
    first_line = options.get("first_line", 1)
    _check_size(text, path, options.get("max_bytes", MAX_BYTES))
    yaml = _loader(round_trip, options.get("max_depth", MAX_DEPTH))
    try:
        return yaml.load(text)
    except (_Rejected, YAMLError, ValueError, TypeError, KeyError, RecursionError) as exc:
        raise _invalid(path, _from_line(_describe(exc, text), first_line)) from None
    except NotImplementedError as exc:
        # ruamel's round-trip parser gives up on some valid comment layouts ("overlap in
        # comment": a comment after a key whose value follows on a later line, with blank
        # lines around it). It cannot keep those comments through a rewrite.
        if "comment" in str(exc):
            raise CommentLayoutError(path, _comment_problem(path, exc, first_line)) from None
        detail = str(exc) or type(exc).__name__
        raise _invalid(path, f"the YAML parser rejected the file ({detail[:200]})") from None
    except (AssertionError, IndexError, AttributeError) as exc:
        # ruamel's internals assert on some malformed input (e.g. `%YAML 1.0`): for
        # untrusted text that is invalid input, never a crash of yoi.
        detail = str(exc) or type(exc).__name__
        raise _invalid(path, f"the YAML parser rejected the file ({detail[:200]})") from None


class CommentLayoutError(InvalidRecordError):
    """Valid YAML whose comments ruamel.yaml's round-trip loader cannot place: the data
    reads (``load_plain``), but an edit could not keep the comments, so none is made."""

    def __init__(self, path: str, problem: Problem):
        super().__init__(
            path,
            [problem],
            hint="put the comment on a line of its own (or remove it) and retry",
        )


def _from_line(message: str, first_line: int) -> str:
    """``message``'s leading ``line N`` counted from the file line where the text began."""
    if first_line == 1:
        return message
    return re.sub(r"^line (\d+)", lambda m: f"line {int(m.group(1)) + first_line - 1}", message)


def _comment_problem(path: str, exc: NotImplementedError, first_line: int) -> Problem:
    found = re.search(r"line: (\d+)", str(exc))  # ruamel's token line: 0-based
    line = f"line {int(found.group(1)) + 1}: " if found else ""
    message = (
        f"{line}the YAML library cannot keep this comment in place when yoi rewrites the "
        "file (a comment after a key whose value starts on a later line, beside blank lines)"
    )
    return Problem(path, "", _from_line(message, first_line))


class Options(TypedDict, total=False):
    """``load_rt``/``load_plain`` options: the size and nesting limits, and the file's line
    where the text begins (``FRONT_LINE`` for a front matter), so errors name the file's
    lines."""

    max_bytes: int
    max_depth: int
    first_line: int


def load_rt(text: str, *, path: str, **options: Unpack[Options]) -> Any:
    """Strict round-trip load: mappings are ``CommentedMap`` and sequences ``CommentedSeq``,
    so ``dump`` after edits keeps comments, key order and the quoting people chose."""
    return _load(text, path, True, options)


def load_plain(text: str, *, path: str, **options: Unpack[Options]) -> Any:
    """Strict load into plain ``dict``/``list``/``str``/``int``/``float``/``bool``/``None``
    (for machine records; about twice as fast as ``load_rt``)."""
    return _load(text, path, False, options)


FRONT_LINE = 2  # a front matter's YAML begins after the file's opening '---' line


load = load_rt


to_plain = yamlrules.to_plain


# ---------------------------------------------------------------------------- dumping


class _Representer(RoundTripRepresenter):
    def represent_str(self, data: str) -> ScalarNode:
        style = None
        if yamlrules.literal_ok(data):
            style = "|"
        elif (
            "\n" in data or yamlrules.not_literal().search(data) or yamlrules.typed_elsewhere(data)
        ):
            style = '"'
        return self.represent_scalar(_YAML_TAG + "str", data, style=style)

    def represent_none(self, data: None) -> ScalarNode:
        return self.represent_scalar(_YAML_TAG + "null", "null")


_Representer.add_representer(str, _Representer.represent_str)
_Representer.add_representer(type(None), _Representer.represent_none)


def _dumper() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Resolver = _CoreResolver
    yaml.Representer = _Representer
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 1 << 30
    yaml.allow_unicode = True
    return yaml


def dump(obj: Any) -> str:
    """Serialize ``obj`` (plain or round-trip) to a YAML string; ``load(dump(x)) == x``."""
    out = io.StringIO()
    _dumper().dump(obj, out)
    return out.getvalue()


# ------------------------------------------------------------------------ front matter

_FRONT_MATTER_HINT = (
    "a ticket file starts with a '---' line, then the YAML fields, then a closing '---' "
    "line, then the Markdown body"
)


def split_front_matter(text: str, *, path: str) -> tuple[str, str]:
    """Split ``---\\n<yaml>---\\n<body>`` into ``(yaml_text, body)``.

    A leading UTF-8 BOM is dropped and CRLF line endings are read as LF (yoi writes LF,
    so a rewrite normalizes the file). Fence lines may carry trailing blanks. Only the
    first closing ``---`` ends the front matter; the body may hold more. One blank line
    after the closing fence is part of the layout (``join_front_matter`` writes it), not
    of the body.
    """
    from yoi import frontmatter

    parts = frontmatter.split(text)
    if parts is not None:
        return parts
    first = text.removeprefix("\ufeff").partition("\n")[0].removesuffix("\r")
    if not frontmatter.FENCE.fullmatch(first):
        raise InvalidRecordError(
            path,
            [Problem(path, "", "line 1: missing front matter: the file must start with '---'")],
            hint=_FRONT_MATTER_HINT,
        )
    raise InvalidRecordError(
        path,
        [Problem(path, "", "front matter is not closed: no '---' line after line 1")],
        hint=_FRONT_MATTER_HINT,
    )


join_front_matter = frontmatter.join
