"""One function per parser, taking raw bytes. Each may raise only a ``YoiError``
subclass (the documented error); any other exception, or a failed property assertion,
is a crash. The hypothesis tests (tests/reliability/test_fuzz.py) and the atheris
harness (tests/fuzz/run_atheris.py) call the same functions; the seed corpus is
``tests/fuzz_corpus/<corpus>/``.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from yoi import patching, schema, slug, thread, yamlio
from yoi.errors import YoiError

CORPUS = Path(__file__).resolve().parents[1] / "fuzz_corpus"
ALLOWED: tuple[type[BaseException], ...] = (YoiError,)
SLUGS = (
    "20260101-000000-fix-the-login",
    "20260101-000001-fix-the-logout",
    "20260102-120000-orchestration-plan-tool",
    "20260102-120000-orchestration-plan-tool-2",
    "20260103-000000-login",
)
_INDEX = slug.SlugIndex(SLUGS)


def _text(data: bytes) -> str | None:
    """The store reads UTF-8 only; anything else is refused before parsing."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def frontmatter(data: bytes) -> None:
    """ticket.md as the store loads it: split, strict round-trip load, schema check;
    what loads must survive a dump and reload unchanged."""
    text = _text(data)
    if text is None:
        return
    front, _body = yamlio.split_front_matter(text, path="t.md")
    doc = yamlio.load_rt(front, path="t.md")
    plain = yamlio.to_plain(doc)
    schema.check("ticket", plain, "t.md")
    again = yamlio.to_plain(yamlio.load_rt(yamlio.dump(doc), path="t.md"))
    assert again == plain, (plain, again)


def record(data: bytes) -> None:
    """A machine record (event) through the plain strict loader and its schema."""
    text = _text(data)
    if text is None:
        return
    plain = yamlio.load_plain(text, path="e.yaml")
    schema.check("event", plain, "e.yaml")
    assert yamlio.load_plain(yamlio.dump(plain), path="e.yaml") == plain


def thread_text(data: bytes) -> None:
    """thread.md: parse; re-rendering every entry parses back to the same entries."""
    text = _text(data)
    if text is None:
        return
    entries = thread.parse_thread(text, path="thread.md")
    rendered = "".join(thread.render_entry(e) for e in entries)
    assert thread.parse_thread(rendered, path="thread.md") == entries


def names(data: bytes) -> None:
    """Name resolution: only ever a member of the slug list (never a built path)."""
    name = data.decode("utf-8", errors="replace")
    found = _INDEX.resolve(name)
    assert found in SLUGS, found
    assert found == slug.resolve(name, SLUGS)


def titles(data: bytes) -> None:
    """Any title gives a valid slug that stays one path component and one valid ref."""
    from yoi.git import check_ref_name

    title = data.decode("utf-8", errors="replace")
    made = slug.make_slug(title, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), SLUGS.__contains__)
    assert slug.is_valid_slug(made), made
    assert posixpath.normpath(f"/store/open/{made}") == f"/store/open/{made}"
    check_ref_name(f"refs/heads/yoi/{made}")


def patch(data: bytes) -> None:
    """Patch headers, then the path policy over every parsed path."""
    files = patching.parse_headers(data)
    patching.check_policy(files, base_entries=lambda _p: None)
    for f in files:
        for path in f.paths:
            policy_path(path)


def policy(data: bytes) -> None:
    policy_path(data.decode("utf-8", errors="surrogateescape"))


def policy_path(path: str) -> None:
    """A path the policy accepts is relative, normalized, free of control characters and
    backslashes, holds no .git or .yoi spelling, and stays inside the root."""
    if patching.path_problems(path):
        return
    parts = path.split("/")
    assert path and not path.startswith("/"), path
    assert all(p not in ("", ".", "..") for p in parts), path
    assert "\\" not in path and all(ord(c) >= 32 and ord(c) != 127 for c in path), path
    assert all(p.casefold().rstrip(". ") != ".git" for p in parts), path
    assert parts[0].casefold().rstrip(". ") != ".yoi", path
    assert posixpath.normpath(f"/root/{path}").startswith("/root/"), path


TARGETS: dict[str, tuple[Callable[[bytes], None], tuple[str, ...]]] = {
    # name: (function, seed corpus directories under tests/fuzz_corpus/)
    "frontmatter": (frontmatter, ("frontmatter", "yaml")),
    "record": (record, ("yaml",)),
    "thread": (thread_text, ("thread",)),
    "names": (names, ("names",)),
    "titles": (titles, ("titles", "names")),
    "patch": (patch, ("patch",)),
    "policy": (policy, ("policy",)),
}


def seeds(name: str) -> list[Path]:
    out: list[Path] = []
    for sub in TARGETS[name][1]:
        base = CORPUS / sub
        if base.is_dir():
            out.extend(sorted(p for p in base.iterdir() if p.is_file()))
    return out


def run_one(name: str, data: bytes) -> None:
    """The target with its documented errors swallowed (what the fuzzers call)."""
    with contextlib.suppress(*ALLOWED):
        TARGETS[name][0](data)
