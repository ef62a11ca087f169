"""Reading and checking every file of a store view, one file at a time.

``load`` reads the chosen files from a source in one batch and checks each by its role
(ticket front matter, thread, YAML record, config), collecting every parse and schema
problem with its file and JSON pointer. It keeps only the fields the cross-record checks
(``doctor_refs``) use, and the sha256 of each patch.diff. Results are cached by content
(``doctor_cache``), so unchanged files are not parsed again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from yoi import fastdump, schema, yamlio
from yoi.doctor_cache import Checked, ParseCache, key
from yoi.doctor_layout import (
    CONFIG_PATH,
    PATCH_FILE,
    RECORD_DIRS,
    RUN_FILES,
    THREAD_FILE,
    TICKET_FILE,
    StoreView,
)
from yoi.doctor_sources import Source
from yoi.errors import InvalidRecordError, Problem, YoiError
from yoi.slug import is_valid_slug
from yoi.store import MAX_RECORD_BYTES, MAX_THREAD_BYTES, MAX_TICKET_BYTES
from yoi.thread import parse_thread

# The fields of each kind the cross-record checks read (None: all of them).
KEEP: dict[str, tuple[str, ...] | None] = {
    "ticket": ("state", "last_run", "created_at", "updated_at", "title"),
    "event": ("event_id", "ticket", "dedup_key", "run_id"),
    "workorder": ("work_order_id", "ticket", "event_id", "run_id", "context_snapshot_id", "status"),
    "context_snapshot": ("snapshot_id", "ticket"),
    "output_bundle": ("output_id", "ticket", "work_order_id", "runner_status"),
    "run_record": ("run_id", "work_order_id", "ticket", "output_id", "patch_sha256"),
    "pause_state": ("pause_id", "ticket", "run_id"),
    "plan_record": None,
    "config": (),
    "thread": (),
}
PATCH_DIGEST = "_patch_sha256"  # output_bundle: sha256 of the decoded content (None: bad)
PATCH_EMPTY = "_patch_empty"


@dataclass(frozen=True, slots=True)
class Loaded:
    """The checked contents of (part of) one store view."""

    label: str
    view: StoreView
    data: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> kept fields
    valid: set[str] = field(default_factory=set)  # paths whose data passed its schema
    patches: dict[str, str] = field(default_factory=dict)  # patch.diff path -> sha256
    unreadable: set[str] = field(default_factory=set)  # read or parse failed
    problems: list[Problem] = field(default_factory=list)

    def record(self, path: str | None) -> dict[str, Any] | None:
        """The kept fields of a schema-valid record, else None."""
        if path is None or path not in self.valid:
            return None
        return self.data.get(path)


def role(path: str) -> str:
    """What a file is: 'ticket', 'thread', 'patch', 'config' or a record kind."""
    parts = path.split("/")
    name = parts[-1]
    if path == CONFIG_PATH:
        return "config"
    if name == TICKET_FILE and len(parts) == 5:
        return "ticket"
    if name == THREAD_FILE and len(parts) == 5:
        return "thread"
    if name == PATCH_FILE:
        return "patch"
    if name in RUN_FILES and len(parts) == 7:
        return RUN_FILES[name]
    return RECORD_DIRS.get(parts[-2], "unknown")


_LIMITS = {"ticket": MAX_TICKET_BYTES, "thread": MAX_THREAD_BYTES}


def load(
    source: Source, view: StoreView, paths: Iterable[str], cache: ParseCache | None = None
) -> Loaded:
    """Read ``paths`` (files of ``view``) from ``source`` and check each one."""
    out = Loaded(source.label, view)
    cache = cache or ParseCache(None)
    contents = source.read_many(sorted(set(paths)), MAX_RECORD_BYTES)
    for path, content in contents.items():
        kind = role(path)
        if isinstance(content, YoiError):
            out.unreadable.add(path)
            out.problems.extend(_error_problems(path, content))
        elif kind == "patch":
            out.patches[path] = hashlib.sha256(content).hexdigest()
        elif kind in KEEP:
            k = key(kind, content)
            checked = cache.get(k)
            if checked is None:
                checked = check_content(kind, path, content)
                cache.put(k, checked)
            _add(out, path, checked)
    return out


def _add(out: Loaded, path: str, checked: Checked) -> None:
    out.problems.extend(Problem(path, p, m, s) for p, m, s in checked.problems)
    if checked.data is None:
        out.unreadable.add(path)
        return
    out.data[path] = checked.data
    if checked.valid:
        out.valid.add(path)


def _error_problems(path: str, exc: YoiError) -> list[Problem]:
    if isinstance(exc, InvalidRecordError) and exc.problems:
        return [Problem(path, p.pointer, p.message, p.severity) for p in exc.problems]
    return [Problem(path, "", exc.message)]


def _failed(problems: list[Problem]) -> Checked:
    return Checked(False, tuple((p.pointer, p.message, p.severity) for p in problems), None)


def check_content(kind: str, path: str, content: bytes) -> Checked:
    """Parse and validate one file's bytes as ``kind``."""
    limit = _LIMITS.get(kind, MAX_RECORD_BYTES)
    if len(content) > limit:
        return _failed([Problem(path, "", f"file is {len(content)} bytes; the limit is {limit}")])
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _failed([Problem(path, "", f"not UTF-8 text: {exc.reason}")])
    try:
        if kind == "thread":
            parse_thread(text, path=path)
            return Checked(True, (), {})
        first_line = 1
        if kind == "ticket":
            text = yamlio.split_front_matter(text, path=path)[0]
            first_line = yamlio.FRONT_LINE
        data = yamlio.load_plain(text, path=path, first_line=first_line)
    except YoiError as exc:
        return _failed(_error_problems(path, exc))
    problems = schema.validate(kind, data, path)
    if kind == "ticket" and "#" in text and fastdump.dump(data) != text:
        problems += _comment_layout(text, path)  # comments of a person's: can yoi keep them?
    kept = _keep(kind, data) if isinstance(data, dict) else {}
    return Checked(not problems, tuple((p.pointer, p.message, p.severity) for p in problems), kept)


def _comment_layout(front: str, path: str) -> list[Problem]:
    """A warning when the front matter reads but yoi could not edit it: its comments are
    where ruamel.yaml's round-trip loader cannot place them (every edit is refused). Only
    for a front matter yoi did not write itself (one it did holds no comment)."""
    try:
        yamlio.load_rt(front, path=path, first_line=yamlio.FRONT_LINE)
    except yamlio.CommentLayoutError as exc:
        message = exc.problems[0].message
        return [Problem(path, "", f"{message}; yoi refuses to edit this ticket", "warning")]
    except YoiError:
        pass  # anything else the plain load that ran first would have reported
    return []


def _keep(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    fields = KEEP[kind]
    kept = dict(data) if fields is None else {f: data.get(f) for f in fields}
    if kind == "output_bundle":
        patch = bundle_patch(data)
        kept[PATCH_DIGEST] = None if patch is None else hashlib.sha256(patch).hexdigest()
        kept[PATCH_EMPTY] = not patch
    return kept


def bundle_patch(bundle: dict[str, Any]) -> bytes | None:
    """The patch bytes an output bundle holds (None if its content does not decode)."""
    content = str(bundle.get("content") or "")
    metadata = bundle.get("metadata")
    if isinstance(metadata, dict) and metadata.get("content_encoding") == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            return None
    return content.encode("utf-8")


def ticket_problems(view: StoreView, keys: Iterable[str]) -> list[Problem]:
    """Problems visible from the listing alone: bad slugs, missing ticket.md."""
    out = []
    for k in keys:
        files = view.tickets[k]
        if not is_valid_slug(files.slug):
            out.append(
                Problem(
                    files.dir,
                    "",
                    f"'{files.slug}' is not a valid ticket slug (YYYYMMDD-HHMMSS-words, lowercase)",
                )
            )
        if TICKET_FILE not in files.top:
            out.append(
                Problem(
                    files.file(TICKET_FILE),
                    "",
                    "ticket.md is missing: every "
                    "ticket directory needs one (restore it from git or remove "
                    "the directory)",
                )
            )
    return out
