"""``yoi doctor``: store-wide checks and the few safe repairs.

``check`` validates one source of the store (the working tree, or the index with
``--staged``): every file's syntax and schema, the listing (symlinks, temp files,
unknown files, unmerged entries), buckets, duplicate slugs, references between records,
plan records, and the ``.gitattributes`` union merge of thread.md. ``fix`` repairs only
what is safely repairable (bucket moves and orphan temp files) under the store lock and
never rewrites a record. Work is linear in the number of files: each is read and parsed
once.
"""

from __future__ import annotations

from dataclasses import dataclass

from yoi import plan, plan_check
from yoi.doctor_cache import ParseCache
from yoi.doctor_git import changed_paths, git, head_tree
from yoi.doctor_layout import TICKET_FILE, StoreView, classify
from yoi.doctor_records import Loaded, load, ticket_problems
from yoi.doctor_refs import bucket_of, duplicate_slugs, ticket_checks
from yoi.doctor_sources import FileEntry, IndexSource, Kind, Source, WorktreeSource
from yoi.errors import GitError, Problem
from yoi.store import Store

THREAD_PROBE = ".yoi/tickets/open/x/thread.md"


@dataclass(frozen=True, slots=True)
class Report:
    problems: list[Problem]
    tickets: int = 0  # ticket directories checked

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which tickets and files a check covers: everything, or what a commit changes."""

    keys: list[str]  # ticket keys ("open/<slug>") to check in full
    prefixes: tuple[str, ...] | None  # None: every path

    @classmethod
    def build(cls, view: StoreView, changed: set[str] | None) -> Scope:
        if changed is None:
            return cls(sorted(view.tickets), None)
        keys = sorted({f.key for p in changed if (f := view.ticket_of(p)) is not None})
        dirs = [f"{view.tickets[k].dir}/" for k in keys]
        return cls(keys, tuple(sorted({*dirs, *changed})))

    def covers(self, path: str) -> bool:
        return self.prefixes is None or path.startswith(self.prefixes)


def listing_problems(entries: list[FileEntry], view: StoreView) -> list[Problem]:
    """Problems visible from the file listing alone."""
    out = []
    for e in entries:
        if e.kind is Kind.SYMLINK:
            out.append(
                Problem(
                    e.path,
                    "",
                    "symlink inside .yoi/: yoi stores only regular "
                    "files and refuses to follow links; replace it with the file "
                    "or remove it",
                )
            )
        elif e.kind is Kind.OTHER:
            out.append(
                Problem(
                    e.path, "", "not a regular file (device, fifo, socket or submodule); remove it"
                )
            )
        elif e.kind is Kind.UNREADABLE:
            out.append(Problem(e.path, "", "directory cannot be listed (permissions?)"))
        elif e.kind is Kind.UNMERGED:
            out.append(
                Problem(e.path, "", "unmerged: resolve the merge conflict and `git add` the file")
            )
    out.extend(
        Problem(
            t,
            "",
            "orphan temp file left by an interrupted write (`yoi doctor --fix` removes it)",
            "warning",
        )
        for t in view.temps
    )
    out.extend(
        Problem(u, "", "yoi does not know this file (see docs/file-format.md)", "warning")
        for u in view.unknown
    )
    return out


def _plan_paths(view: StoreView) -> list[str]:
    return [p for f in view.tickets.values() for p in f.records.get("plan", {}).values()]


def _plan_records(store: Store, loaded: Loaded) -> list[plan.PlanRecord]:
    records = [
        plan.PlanRecord(store.root / p, d)
        for p in _plan_paths(loaded.view)
        if (d := loaded.record(p)) is not None
    ]
    return sorted(records, key=lambda r: r.order)


def plan_problems(store: Store, loaded: Loaded, scope: Scope) -> list[Problem]:
    """plan_check's store-wide checks on the records of this source: per-record and
    duplicate problems within the scope, and every cycle (a cycle spans tickets)."""
    slugs = {f.slug for f in loaded.view.tickets.values()}
    records = _plan_records(store, loaded)
    out: list[Problem] = []
    for r in records:
        out.extend(plan_check._record_problems(store, r, slugs))
    out.extend(plan_check._duplicates(store, records))
    out = [p for p in out if scope.covers(p.path)]
    out.extend(plan_check._cycles(store, [r for r in records if r.related in slugs]))
    return out


def union_merge_problem(store: Store, *, staged: bool) -> list[Problem]:
    """A warning when thread.md does not merge as a union (SPEC §1)."""
    args = ["check-attr", *(["--cached"] if staged else []), "merge", "--", THREAD_PROBE]
    try:
        out = git(store.root, *args).stdout.decode("utf-8", "replace")
    except GitError:
        return []
    if out.strip().endswith(": union"):
        return []
    return [
        Problem(
            ".gitattributes",
            "",
            "thread.md files do not merge as a union, so two "
            "branches appending to one thread will conflict; fix: `yoi init` adds "
            "'.yoi/tickets/**/thread.md merge=union'",
            "warning",
        )
    ]


def _paths_to_load(view: StoreView, scope: Scope) -> list[str]:
    paths = [p for k in scope.keys for p in view.tickets[k].all_paths()]
    plans = _plan_paths(view)
    if any(scope.covers(p) for p in plans):
        paths.extend(plans)  # all of them: cycles span tickets
    if view.config and scope.covers(view.config):
        paths.append(view.config)
    return paths


def check_source(store: Store, source: Source, *, changed: set[str] | None = None) -> Report:
    """Check a source; with ``changed``, only the tickets and files those paths touch
    (plus duplicate slugs and plan cycles involving them)."""
    entries = source.entries()
    view = classify(e.path for e in entries if e.kind is Kind.FILE)
    scope = Scope.build(view, changed)
    cache = ParseCache.open(store.runtime("cache"))
    loaded = load(source, view, _paths_to_load(view, scope), cache)
    cache.save(prune=changed is None)
    problems = [
        p for p in [*listing_problems(entries, view), *loaded.problems] if scope.covers(p.path)
    ]
    problems.extend(ticket_problems(view, scope.keys))
    slugs = {view.tickets[k].slug for k in scope.keys}
    problems.extend(duplicate_slugs(loaded, slugs))
    for key in scope.keys:
        problems.extend(ticket_checks(loaded, view.tickets[key]))
    if loaded.view.tickets and any(scope.covers(p) for p in _plan_paths(view)):
        problems.extend(plan_problems(store, loaded, scope))
    return Report(list(dict.fromkeys(problems)), tickets=len(scope.keys))


def check(store: Store, *, staged: bool = False, index_file: str | None = None) -> Report:
    """``yoi doctor`` (working tree) or ``yoi doctor --staged`` (what the next commit
    changes under .yoi/, read from the index)."""
    if not staged:
        report = check_source(store, WorktreeSource(store.root, store.yoi_dir))
        extra = union_merge_problem(store, staged=False)
        return Report([*report.problems, *extra], tickets=report.tickets)
    changed = changed_paths(store.root, head_tree(store.root), staged=True, index_file=index_file)
    if not changed:
        return Report([])  # the next commit changes nothing under .yoi/
    source = IndexSource(store.root, index_file=index_file)
    report = check_source(store, source, changed=changed)
    return Report(
        [*report.problems, *union_merge_problem(store, staged=True)], tickets=report.tickets
    )


def fix(store: Store) -> list[str]:
    """Move tickets to the bucket their state belongs in and remove orphan temp files,
    under the store lock, in one transaction. Returns what was done."""
    done: list[str] = []
    with store.transaction() as tx:
        source = WorktreeSource(store.root, store.yoi_dir)
        view = classify(e.path for e in source.entries() if e.kind is Kind.FILE)
        for temp in view.temps:
            tx.remove(store.root / temp)
            done.append(f"removed orphan temp file {temp}")
        ticket_files = [f.top[TICKET_FILE] for f in view.tickets.values() if TICKET_FILE in f.top]
        fronts = load(source, view, ticket_files, ParseCache.open(store.runtime("cache")))
        slugs = view.by_slug()
        for files in view.tickets.values():
            want = bucket_of(fronts.record(files.top.get(TICKET_FILE)) or {})
            if want is None or want == files.bucket or len(slugs[files.slug]) > 1:
                continue
            dst = f"{store.yoi_dir.name}/tickets/{want}/{files.slug}"
            if (store.root / dst).exists():
                continue
            tx.move(store.root / files.dir, store.root / dst)
            done.append(f"moved {files.dir} to {dst} (its state belongs there)")
    return done
