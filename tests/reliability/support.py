"""Shared set-up and invariant checks for the reliability harness.

Real repositories, real processes. ``make_store`` builds a store whose default runner
replays a ticket's patch file (fast, deterministic) and has no command gates;
``clone`` copies a prepared repository so that a matrix of trials does not pay for the
set-up each time. ``invariants`` checks the SPEC §9 guarantees on disk and returns every
violation as text (empty = fine), so a harness can report all of them at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.engine_helpers import new_file_patch
from tests.helpers import commit_all, git
from yoi import checkpoint, journal, schema, tickets, yamlio
from yoi.errors import YoiError
from yoi.lifecycle import Action
from yoi.store import Store

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
RECORD_DIRS = {"events": "event", "pause_states": "pause_state", "plan": "plan_record"}
RUN_FILES = {
    "workorder.yaml": "workorder",
    "context_snapshot.yaml": "context_snapshot",
    "output_bundle.yaml": "output_bundle",
    "run_record.yaml": "run_record",
}


def engine_config(*, gates: Sequence[Mapping[str, Any]] = (), lease: int = 60) -> dict[str, Any]:
    return {
        "version": 1,
        "engine": {"capacity": 1, "lease_seconds": lease},
        "runners": {
            "default": {"type": "patch-file"},
            "broken": {"type": "command", "command": ["false"]},
        },
        "gates": [dict(g) for g in gates],
    }


def make_store(repo: Path, cfg: Mapping[str, Any] | None = None) -> Store:
    """`yoi init` in ``repo`` plus an engine config (JSON is YAML), committed."""
    from yoi.commands.init import init

    init(path=repo)
    (repo / ".yoi" / "config.yaml").write_text(json.dumps(cfg or engine_config(), indent=1))
    commit_all(repo, "yoi init")
    return Store.discover(repo)


def clone(src: Path, dst: Path) -> Path:
    """A byte copy of a prepared repository (its .git and runtime dir included)."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


def write_patch(repo: Path, name: str) -> str:
    """An untracked patch file adding notes/<name>.txt; returns its repo-relative path."""
    rel = f"patches/{name}.diff"
    (repo / "patches").mkdir(exist_ok=True)
    (repo / rel).write_bytes(new_file_patch(f"notes/{name}.txt", f"note {name}\n"))
    return rel


def new_ticket(store: Store, title: str, **fields: Any) -> str:
    spec = tickets.NewTicket(title=title, acceptance_criteria=["it works"], **fields)
    return tickets.create(store, spec, by="ada").slug


def queued(store: Store, title: str, **fields: Any) -> str:
    """A ticket created, made ready and queued (its TICKET_READY emitted)."""
    slug = new_ticket(store, title, **fields)
    tickets.transition(store, slug, Action.READY, by="ada")
    tickets.transition(store, slug, Action.QUEUE, by="ada")
    return slug


def queued_with_patch(store: Store, repo: Path, title: str) -> str:
    name = title.lower().replace(" ", "-")
    return queued(store, title, patch_file=write_patch(repo, name))


def yoi(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess (``python -m yoi``) importing this checkout."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [PY, "-m", "yoi", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def clean_error(proc: subprocess.CompletedProcess[str]) -> str | None:
    """None when a failed command reported itself properly (exit 1 or 2, ``yoi: error:``,
    no traceback); else what is wrong."""
    if proc.returncode not in (1, 2):
        return f"exit code {proc.returncode}"
    if "Traceback" in proc.stderr or "yoi: error:" not in proc.stderr:
        return f"unclean error output: {proc.stderr[-600:]!r}"
    return None


# ---- what is on disk ----------------------------------------------------------------------
def store_files(store: Store) -> dict[str, bytes]:
    """Every regular file under .yoi/ by relative path (symlinks are not followed)."""
    out: dict[str, bytes] = {}
    for path in sorted(store.yoi_dir.rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(store.yoi_dir))] = path.read_bytes()
    return out


def temp_files(store: Store) -> list[str]:
    return sorted(str(p.relative_to(store.yoi_dir)) for p in store.yoi_dir.rglob(".*.tmp"))


@dataclass(frozen=True)
class TicketView:
    """The semantic state of one ticket (what an operation is expected to change)."""

    slug: str
    bucket: str
    state: str
    title: str
    labels: tuple[str, ...]
    comments: tuple[str, ...]  # bodies of comment/decision/plan/review entries
    chain: tuple[str, ...]  # the `to` of every state entry, in order
    events: tuple[tuple[str, bool, str | None], ...]  # (event_id, processed, reason)
    runs: tuple[str, ...]


COMMENT_KINDS = ("comment", "decision", "plan", "review")


def ticket_views(store: Store) -> dict[str, TicketView]:
    """Every loadable ticket's semantic state (raises on an invalid file)."""
    out: dict[str, TicketView] = {}
    for bucket, slug, tdir in store.iter_ticket_dirs():
        ticket = store.load_ticket(slug, tdir).ticket
        entries = store.read_thread(slug, tdir)
        evs = []
        for p in store.record_files(tdir, "events"):
            r = store.read_record(p, "event")
            evs.append((str(r["event_id"]), bool(r["processed"]), r.get("processed_reason")))
        out[slug] = TicketView(
            slug=slug,
            bucket=bucket,
            state=ticket.state.value,
            title=ticket.title,
            labels=tuple(ticket.labels),
            comments=tuple(e.body.strip() for e in entries if e.kind in COMMENT_KINDS),
            chain=tuple(str(e.get("to")) for e in entries if e.kind == "state"),
            events=tuple(sorted(evs)),
            runs=tuple(d.name for d in store.run_dirs(tdir)),
        )
    return out


def validity_problems(store: Store, *, settled: bool = True) -> list[str]:
    """Every file of every ticket parses and matches its schema (independent of doctor).
    ``settled=False`` (mid-transaction, before recovery) checks only the files that exist:
    a crash may leave a ticket directory whose ticket.md is not written yet."""
    problems: list[str] = []
    for _bucket, slug, tdir in store.iter_ticket_dirs():
        try:
            if settled or (tdir / "ticket.md").exists():
                store.load_ticket(slug, tdir)
            store.read_thread(slug, tdir)
        except YoiError as exc:
            problems.append(exc.render())
        for sub, kind in RECORD_DIRS.items():
            problems += _records(store, store.record_files(tdir, sub), kind)
        for run in store.run_dirs(tdir):
            files = [run / n for n in RUN_FILES if (run / n).exists()]
            for f in files:
                problems += _records(store, [f], RUN_FILES[f.name])
    cfg = store.yoi_dir / "config.yaml"
    if cfg.exists():
        problems += _records(store, [cfg], "config")
    return problems


def _records(store: Store, paths: Sequence[Path], kind: str) -> list[str]:
    out = []
    for path in paths:
        try:
            data = yamlio.load_plain(path.read_text(encoding="utf-8"), path=str(path))
            schema.check(kind, data, str(path))
        except (YoiError, UnicodeDecodeError) as exc:
            out.append(f"{path}: {exc}")
    return out


def doctor_errors(store: Store) -> list[str]:
    from yoi import doctor

    report = doctor.check(store)
    return [p.render() for p in report.problems if p.severity == "error"]


def invariants(store: Store, *, quiescent: bool = True) -> list[str]:
    """SPEC §9 on disk. ``quiescent``: no engine or writer is running and recovery ran
    (no pending journal, every event processed)."""
    problems = validity_problems(store) + doctor_errors(store)
    if problems:
        return problems
    for view in ticket_views(store).values():
        problems += _ticket_problems(store, view, quiescent)
    journals = store.runtime_dir / "journal"
    if quiescent and journal.pending(journals):
        problems.append("a journal is still pending after recovery")
    if quiescent and checkpoint.segments(journals):
        problems.append("a journal segment is still unsettled after recovery")
    return problems


def _ticket_problems(store: Store, view: TicketView, quiescent: bool) -> list[str]:
    out = []
    where = view.slug
    if view.chain and view.chain[-1] != view.state:
        out.append(f"{where}: thread says {view.chain[-1]}, ticket.md says {view.state}")
    if (view.bucket == "done") != (view.state == "done"):
        out.append(f"{where}: state {view.state} in bucket {view.bucket}")
    accepted = view.chain.count("inprogress")
    if accepted != len(view.runs):
        out.append(f"{where}: {accepted} acceptances but {len(view.runs)} run dirs")
    event_ids = {e[0] for e in view.events}
    for run_id in view.runs:
        if "ev-" + run_id.removeprefix("run-") not in event_ids:
            out.append(f"{where}: run {run_id} has no event (a duplicate workorder?)")
    tdir = store.ticket_dir(view.slug)
    for event_id, processed, reason in view.events:
        if quiescent and not processed:
            out.append(f"{where}: event {event_id} never processed")
        run_dir = tdir / "runs" / ("run-" + event_id.removeprefix("ev-"))
        if reason == "EXECUTED":
            names = {p.name for p in run_dir.iterdir()} if run_dir.is_dir() else set()
            if not set(RUN_FILES) <= names:
                out.append(f"{where}: executed event {event_id} lacks run files: {names}")
    entries = store.read_thread(view.slug, tdir)
    runs_in_thread = sum(e.kind == "run" for e in entries)
    finished = sum((tdir / "runs" / r / "run_record.yaml").exists() for r in view.runs)
    if quiescent and runs_in_thread != finished:
        out.append(f"{where}: {runs_in_thread} run entries for {finished} run records")
    pauses = len(store.record_files(tdir, "pause_states"))
    if pauses != sum(e.kind == "pause" for e in entries):
        out.append(f"{where}: {pauses} pause states but a different number of pause entries")
    return out


def worktree_count(repo: Path) -> int:
    return git(repo, "worktree", "list").count("\n")


def semantic(store: Store) -> dict[str, tuple[object, ...]]:
    """What an operation changes, without timestamps or generated ids, by ticket title:
    (bucket, state, labels, comments, state chain, events, runs, pause states)."""
    out: dict[str, tuple[object, ...]] = {}
    for view in ticket_views(store).values():
        tdir = store.ticket_dir(view.slug)
        ticket = store.read_ticket(view.slug)
        blockers = tuple((b.description, b.resolved) for b in ticket.blocked_on)
        out[view.title] = (
            view.bucket,
            view.state,
            view.labels,
            view.comments,
            view.chain,
            tuple((processed, reason) for _eid, processed, reason in view.events),
            len(view.runs),
            len(store.record_files(tdir, "pause_states")),
            blockers,
        )
    return out


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def yoi_here(cwd: Path, *args: str) -> Result:
    """The CLI in this process (``yoi.cli.main``): no interpreter start-up, same code.
    Used for recoveries and checks; crashes need a real subprocess (``yoi``)."""
    import contextlib
    import io

    from yoi import cli

    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        os.chdir(old)
    return Result(code, out.getvalue(), err.getvalue())
