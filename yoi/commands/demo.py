"""`yoi demo`: a full ticket lifecycle in a scratch repository (no network).

1. A new git repository (a temp dir, or ``--dir``) holding the ``textstats`` project of
   ``yoi.demo_project``: a real bug, a unittest suite that fails on it, and a fixer script.
2. ``yoi init``; a config whose ``default`` runner is the fixer (``command`` runner) and
   whose ``tests`` gate is ``<this python> -m unittest -q``; both committed.
3. A ticket with acceptance criteria and a decision, then ready -> queue (the same code
   paths as ``yoi ticket ...``).
4. The engine, tick by tick, until idle.

Progress goes to stderr. Exit 0 only when the ticket ended ``done`` with the ``tests``
gate PASS.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from yoi import demo_project, proc, tickets
from yoi.errors import ExitCode, UsageError, YoiError
from yoi.lifecycle import Action
from yoi.model import CommentKind, State
from yoi.output import Output, ticket_dict
from yoi.store import Store

MAX_TICKS = 10
_IDENTITY = {
    "GIT_AUTHOR_NAME": "yoi demo",
    "GIT_AUTHOR_EMAIL": "demo@yoi.invalid",
    "GIT_COMMITTER_NAME": "yoi demo",
    "GIT_COMMITTER_EMAIL": "demo@yoi.invalid",
}


def _progress(line: str) -> None:
    sys.stderr.write(f"yoi: demo: {line}\n")
    sys.stderr.flush()


def _directory(directory: Path | None) -> Path:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="yoi-demo-")).resolve()
    root = directory.expanduser().absolute()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UsageError(
            f"{root} is not an empty directory",
            hint="give --dir a new or empty directory, or omit it to use a temp dir",
        )
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def _git(root: Path, *args: str) -> None:
    done = proc.run_git(
        ["-c", "commit.gpgsign=false", *args], cwd=root, timeout_s=60, extra_env=_IDENTITY
    )
    if not done.ok:
        raise YoiError(
            f"`git {' '.join(args)}` failed: {proc.tail_text(done.stderr, 500).strip()}",
            where=str(root),
        )


def _commit_all(root: Path, message: str) -> None:
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "--no-verify", "-m", message)


def _project(root: Path) -> Store:
    from yoi.commands.init import init

    for rel, text in demo_project.FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    _git(root, "init", "-q", "-b", "main")
    _commit_all(root, "textstats: mean and median, with tests")
    init(path=root)
    store = Store.discover(root)
    with store.transaction() as tx:
        tx.write_text(store.yoi_dir / "config.yaml", demo_project.config_yaml(sys.executable))
    _commit_all(root, "yoi: store and demo configuration")
    return Store.discover(root)  # a fresh store object: no cached pre-demo config


def _ticket(store: Store) -> str:
    spec = tickets.NewTicket(
        title=demo_project.TICKET_TITLE,
        acceptance_criteria=demo_project.ACCEPTANCE_CRITERIA,
        body=demo_project.TICKET_BODY,
        labels=("demo",),
        context_paths=demo_project.CONTEXT_PATHS,
    )
    slug = tickets.create(store, spec).slug
    tickets.comment(store, slug, kind=CommentKind.DECISION, message=demo_project.DECISION)
    tickets.transition(store, slug, Action.READY)
    tickets.transition(store, slug, Action.QUEUE)
    return slug


def _run_engine(store: Store) -> None:
    from yoi import engine
    from yoi.claims import new_owner_id

    owner = new_owner_id()
    for _ in range(MAX_TICKS):
        result = engine.tick(store, owner=owner)
        if result.outcome != engine.PROCESSED:
            _progress(f"engine: {result.outcome}")
            return
        _progress(f"engine: {result.event_id} -> {result.reason} {result.run_id or ''}".rstrip())


def _latest_pause(store: Store, tdir: Path, run_id: str | None) -> dict[str, Any] | None:
    found = []
    for path in store.record_files(tdir, "pause_states"):
        record = store.read_record(path, "pause_state")
        if run_id is None or record.get("run_id") == run_id:
            found.append(record)
    return max(found, key=lambda p: str(p["created_at"]), default=None)


def demo(*, directory: Path | None = None) -> Output:
    root = _directory(directory)
    _progress(f"creating the textstats project in {root}")
    store = _project(root)
    slug = _ticket(store)
    _progress(f"ticket {slug} queued; running the engine")
    _run_engine(store)
    ticket = store.read_ticket(slug)
    run = None
    if ticket.last_run:
        run_file = ticket.path / "runs" / ticket.last_run / "run_record.yaml"
        run = store.read_record(run_file, "run_record") if run_file.exists() else None
    pause = _latest_pause(store, ticket.path, ticket.last_run)
    branch = ticket.branch or f"yoi/{slug}"
    data = {
        "repo": str(root),
        "ticket": ticket_dict(store, ticket),
        "branch": branch,
        "run": run,
        "pause_state": pause,
    }
    tests_passed = any(
        g["name"] == "tests" and g["result"] == "PASS" for g in (run or {}).get("gates", ())
    )
    ok = ticket.state is State.DONE and tests_passed
    _progress("done" if ok else "the demo did not end as expected (see the run record)")
    return Output(data, _text(data), ExitCode.OK if ok else ExitCode.FAILED)


def _text(data: dict[str, Any]) -> str:
    ticket, run, pause = data["ticket"], data["run"], data["pause_state"]
    repo, branch = shlex.quote(data["repo"]), data["branch"]
    lines = [
        f"repository: {data['repo']}",
        f"ticket:     {ticket['slug']}  [{ticket['state']}]",
        f"            {ticket['title']}",
        f"branch:     {branch}",
    ]
    if run is None:
        lines.append("run:        none (the engine did not run the ticket)")
    else:
        lines.append(f"run:        {run['run_id']}  {run['gate_result']}: {run['gate_reason']}")
        lines.append(f"commit:     {run.get('commit_sha') or 'none'}")
        lines.append("gates:")
        width = max(len(str(g["name"])) for g in run["gates"]) if run["gates"] else 0
        for g in run["gates"]:
            lines.append(f"  {g['name']:<{width}}  {g['result']:<4}  {g['detail']}")
    if pause is not None:
        lines.append(f"next actions ({pause['reason']}):")
        for a in pause["prioritized_actions"]:
            command = f"  `{a['command']}`" if a.get("command") else ""
            lines.append(f"  {a['priority']}. {a['action']}{command}")
    lines += [
        "look around:",
        f"  git -C {repo} log --stat {branch}",
        f"  git -C {repo} diff main {branch}",
        f"  yoi -C {repo} ticket show {ticket['slug']}",
    ]
    if run is not None:
        lines.append(f"  yoi -C {repo} runs show {run['run_id']}")
    return "\n".join(lines)
