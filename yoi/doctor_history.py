"""Append-only history checked against a git revision: ``yoi doctor --against REF``.

Compared with the merge base of REF and HEAD (REF itself once it is merged), every
thread entry must still be there, unchanged and in order (new entries may sit between
old ones after a union merge); no ticket may disappear or change its ``created_at``;
immutable records (context snapshot, output bundle, run record, pause state,
patch.diff) may not change or vanish; a workorder may only go CREATED -> EXECUTED (with
``executed_at``); an event may only change its processing fields, and only while it is
unprocessed. Only paths git reports as changed are read, so the cost follows the size of
the change, not of the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from yoi import yamlio
from yoi.doctor_git import changed_paths, merge_base
from yoi.doctor_layout import (
    PATCH_FILE,
    THREAD_FILE,
    TICKET_FILE,
    StoreView,
    TicketFiles,
    classify,
)
from yoi.doctor_sources import IndexSource, Kind, Source, TreeSource, WorktreeSource
from yoi.errors import Problem, YoiError
from yoi.history import entry_key
from yoi.store import MAX_RECORD_BYTES, Store
from yoi.thread import Entry, parse_thread

IMMUTABLE = ("context_snapshot.yaml", "output_bundle.yaml", "run_record.yaml")
EVENT_FIELDS = ("processed", "processed_at", "processed_reason", "run_id")
WORKORDER_FIELDS = ("status", "executed_at")


def _sub(path: str) -> tuple[str, str] | None:
    """(slug, path inside the ticket directory) of a ticket file."""
    parts = path.split("/")
    if len(parts) < 5 or parts[1] != "tickets":
        return None
    return parts[3], "/".join(parts[4:])


@dataclass(frozen=True, slots=True)
class Side:
    """One side of the comparison: its tickets by slug, and the contents read from it."""

    label: str
    slugs: dict[str, list[TicketFiles]]
    content: dict[str, bytes | YoiError]

    def find(self, slug: str, sub: str) -> str | None:
        """The path of ``sub`` in ticket ``slug`` (whichever bucket holds it)."""
        for files in self.slugs.get(slug, []):
            path = files.file(sub)
            if path in self.content:
                return path
        return None


def _view(source: Source) -> StoreView:
    return classify(e.path for e in source.entries() if e.kind is Kind.FILE)


def against(
    store: Store, ref: str, *, staged: bool = False, index_file: str | None = None
) -> list[Problem]:
    """Every history violation of the working tree (or index) relative to ``ref``."""
    root = store.root
    base_commit = merge_base(root, ref)
    old_src = TreeSource(root, base_commit, label=ref)
    new_src: Source = (
        IndexSource(root, index_file=index_file) if staged else WorktreeSource(root, store.yoi_dir)
    )
    changed = sorted(
        p for p in changed_paths(root, base_commit, staged=staged, index_file=index_file) if _sub(p)
    )
    new_entries = [e.path for e in new_src.entries() if e.kind is Kind.FILE]
    old_view, new_view = _view(old_src), classify(new_entries)
    old_paths = [p for p in changed if old_view.ticket_of(p) is not None]
    counterparts = _counterparts(old_paths, new_view, set(new_entries))
    old = Side(ref, old_view.by_slug(), old_src.read_many(old_paths, MAX_RECORD_BYTES))
    new = Side("now", new_view.by_slug(), new_src.read_many(counterparts, MAX_RECORD_BYTES))
    return compare(old, new, old_paths)


def _counterparts(old_paths: Iterable[str], view: StoreView, present: set[str]) -> list[str]:
    by_slug = view.by_slug()
    out: list[str] = []
    for path in old_paths:
        slug, sub = _sub(path) or ("", "")
        out.extend(f.file(sub) for f in by_slug.get(slug, []) if f.file(sub) in present)
    return out


def compare(old: Side, new: Side, paths: Sequence[str]) -> list[Problem]:
    out: list[Problem] = []
    gone: set[str] = set()
    new_slugs = new.slugs
    for path in paths:
        slug, sub = _sub(path) or ("", "")
        if slug not in new_slugs:
            if slug not in gone:
                gone.add(slug)
                out.append(
                    Problem(
                        path.rsplit("/", len(sub.split("/")))[0],
                        "",
                        f"ticket '{slug}' (present at {old.label}) was removed; "
                        "tickets are never deleted",
                    )
                )
            continue
        out.extend(_compare_file(old, new, path, sub, new.find(slug, sub)))
    return out


def _compare_file(old: Side, new: Side, path: str, sub: str, now: str | None) -> list[Problem]:
    name = sub.rsplit("/", 1)[-1]
    if sub == TICKET_FILE:
        return _ticket(old, new, path, now)
    if sub == THREAD_FILE:
        return _thread(old, new, path, now)
    if sub.startswith("plan/"):
        return []  # plan records may be removed (`yoi plan rm`)
    if now is None:
        return [
            Problem(path, "", f"removed: this record (present at {old.label}) may never be removed")
        ]
    if sub.startswith("events/"):
        return _mutable(old, new, path, now, EVENT_FIELDS, "event")
    if name == "workorder.yaml":
        return _mutable(old, new, path, now, WORKORDER_FIELDS, "workorder")
    if name in IMMUTABLE or name == PATCH_FILE or sub.startswith("pause_states/"):
        return _immutable(old, new, path, now)
    return []


def _bytes(side: Side, path: str) -> bytes | None:
    value = side.content.get(path)
    return value if isinstance(value, bytes) else None


def _yaml(side: Side, path: str, *, front: bool = False) -> Any:
    raw = _bytes(side, path)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
        if front:
            text = yamlio.split_front_matter(text, path=path)[0]
        return yamlio.load_plain(text, path=path, first_line=yamlio.FRONT_LINE if front else 1)
    except (UnicodeDecodeError, YoiError):
        return None


def _ticket(old: Side, new: Side, path: str, now: str | None) -> list[Problem]:
    if now is None:
        return [Problem(path, "", f"ticket.md (present at {old.label}) was removed")]
    before, after = _yaml(old, path, front=True), _yaml(new, now, front=True)
    if not isinstance(before, dict) or not isinstance(after, dict):
        return []
    if before.get("created_at") != after.get("created_at"):
        return [
            Problem(
                now,
                "/created_at",
                f"created_at changed from "
                f"{before.get('created_at')} (at {old.label}) to "
                f"{after.get('created_at')}; it never changes",
            )
        ]
    return []


def _entries(side: Side, path: str | None) -> list[Entry] | None:
    raw = _bytes(side, path) if path else None
    if raw is None:
        return [] if path is None else None
    try:
        return parse_thread(raw.decode("utf-8"), path=path or "")
    except (UnicodeDecodeError, YoiError):
        return None


def _thread(old: Side, new: Side, path: str, now: str | None) -> list[Problem]:
    before, after = _entries(old, path), _entries(new, now)
    if before is None or after is None:
        return []  # an unparseable side is reported by the normal checks
    keys = [entry_key(e) for e in after]
    at = 0
    for i, entry in enumerate(before):
        key = entry_key(entry)
        try:
            at = keys.index(key, at) + 1
        except ValueError:
            where = now or path
            return [
                Problem(
                    where,
                    f"/entries/{i}",
                    f"thread entry {i + 1} ({entry.kind} by "
                    f"{entry.author} at {entry.at}) present at {old.label} was "
                    f"{'edited or removed' if now else 'removed with thread.md'}; "
                    "threads are append-only: restore it and add a new entry "
                    "instead",
                )
            ]
    return []


def _immutable(old: Side, new: Side, path: str, now: str) -> list[Problem]:
    if path.endswith(PATCH_FILE):
        same = _bytes(old, path) == _bytes(new, now)
    else:
        before, after = _yaml(old, path), _yaml(new, now)
        same = (
            (before == after)
            if before is not None and after is not None
            else (_bytes(old, path) == _bytes(new, now))
        )
    if same:
        return []
    return [
        Problem(
            now,
            "",
            f"modified: this record is immutable once written (it differs "
            f"from {old.label}); restore it with `git checkout {old.label} -- "
            f"{path}`" + ("" if path == now else f" and move it to {now}"),
        )
    ]


def _mutable(
    old: Side, new: Side, path: str, now: str, allowed: Sequence[str], what: str
) -> list[Problem]:
    before, after = _yaml(old, path), _yaml(new, now)
    if not isinstance(before, dict) or not isinstance(after, dict):
        return _immutable(old, new, path, now) if before != after else []
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if what == "event" and before.get("processed") is True:
        bad = changed
    elif what == "workorder":
        bad = [k for k in changed if k not in allowed]
        if "status" in changed and (before.get("status"), after.get("status")) != (
            "CREATED",
            "EXECUTED",
        ):
            bad.append("status")
        if "executed_at" in changed and before.get("executed_at") is not None:
            bad.append("executed_at")
    else:
        bad = [k for k in changed if k not in allowed]
    return [
        Problem(
            now,
            f"/{k}",
            f"{what} field '{k}' changed from {before.get(k)!r} (at "
            f"{old.label}) to {after.get(k)!r}; only "
            f"{', '.join(allowed)} may change"
            + (", and only while unprocessed" if what == "event" else ""),
        )
        for k in sorted(set(bad))
    ]
