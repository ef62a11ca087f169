"""Hostile input (SPEC §9 "bad input", R19–R22): hostile YAML, symlinks planted in .yoi/
by a pull request, hostile names, and the user's git hooks, filters and fsmonitor never
run by the engine.

Each hostile case checks: a clean error naming the file (exit 2, ``yoi: error:``, no
traceback) in well under a second of CPU, not one byte written in the store or outside
it, and the other tickets still usable (``ticket list`` shows them and names the bad one).
Commands run in-process (``yoi.cli.main``), so timing is the command's own.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import commit_all, git, user_state
from tests.reliability import support as s
from yoi import cli, engine, tickets
from yoi.lifecycle import Action
from yoi.store import Store

FRONT = "state: planning\ncreated_at: '2026-01-01T00:00:00Z'\nupdated_at: '2026-01-01T00:00:00Z'\n"


def _bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def _block_nest(depth: int) -> str:
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + f"{'  ' * depth}leaf\n"


HOSTILE_FRONT = {
    "python-tag": "title: !!python/object/apply:os.system ['touch PWNED']\n" + FRONT,
    "python-tag-value": "title: x\nlabels: !!python/name:os.system\n" + FRONT,
    "alias-bomb": "title: x\n" + FRONT + _bomb(),
    "deep-flow-nesting": "title: x\n" + FRONT + "deep: " + "[" * 1000 + "]" * 1000 + "\n",
    "deep-block-nesting": "title: x\n" + FRONT + _block_nest(100),
    "yaml-1.1-directive": "%YAML 1.1\n---\ntitle: x\n" + FRONT + "labels: [no, on, 012]\n",
    "yaml-1.0-directive": "%YAML 1.0\n---\ntitle: x\n" + FRONT,
    "duplicate-key": "title: x\ntitle: y\n" + FRONT,
    "bad-utf8": None,  # bytes, below
    "huge-file": None,  # 10 MB, below
}


def hostile_ticket_bytes(name: str) -> bytes:
    if name == "bad-utf8":
        return b"---\ntitle: \xff\xfe\n" + FRONT.encode() + b"---\n"
    if name == "huge-file":
        return ("---\ntitle: x\n" + FRONT + "---\n").encode() + b"x" * (10 * 1024 * 1024)
    front = HOSTILE_FRONT[name]
    assert front is not None
    return f"---\n{front}---\n\nbody\n".encode()


@dataclass
class Run:
    code: int
    out: str
    err: str
    cpu: float


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Run:
    started = time.process_time()
    code = cli.main(argv)
    cpu = time.process_time() - started
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err, cpu)


def assert_clean_refusal(r: Run, *, names: str | None = None, budget: float = 1.0) -> None:
    assert r.code == 2, (r.code, r.err)
    assert "yoi: error:" in r.err and "Traceback" not in r.err, r.err
    if names is not None:
        assert names in r.err, r.err
    assert r.cpu < budget, f"took {r.cpu:.2f}s of CPU"


def tree_bytes(root: Path) -> dict[str, bytes | str]:
    """Every entry below ``root`` (links as their target), to prove nothing was written;
    git dirs are skipped (yoi's runtime dir keeps derived caches there)."""
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = f"-> {os.readlink(path)}"
            elif path.is_file():
                out[rel] = path.read_bytes()
            else:
                out[rel] = "dir"
    return out


@pytest.fixture
def store(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.chdir(repo)
    st = s.make_store(repo)
    s.new_ticket(st, "Good one")
    yield st


def plant_ticket(store: Store, slug: str, data: bytes) -> Path:
    tdir = store.tickets_dir / "open" / slug
    tdir.mkdir(parents=True)
    (tdir / "ticket.md").write_bytes(data)
    return tdir / "ticket.md"


# ---- hostile YAML ---------------------------------------------------------------------------
OPEN: dict[str, str] = {}  # hostile cases still failing: name -> reason (strict xfail)


def _cases(names: list[str]) -> list[object]:
    return [
        pytest.param(n, marks=[pytest.mark.xfail(strict=True, reason=OPEN[n])] if n in OPEN else [])
        for n in names
    ]


@pytest.mark.parametrize("name", _cases(list(HOSTILE_FRONT)))
def test_hostile_ticket_yaml_is_a_clean_error_and_writes_nothing(
    store: Store, repo: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    slug = "20260101-000000-evil"
    plant_ticket(store, slug, hostile_ticket_bytes(name))
    rel = f".yoi/tickets/open/{slug}/ticket.md"
    before = tree_bytes(repo)
    assert_clean_refusal(run(["ticket", "show", slug], capsys), names=rel)
    assert_clean_refusal(run(["ticket", "comment", "evil", "-m", "hi"], capsys), names=rel)
    assert_clean_refusal(run(["ticket", "ready", "evil"], capsys), names=rel)
    listed = run(["ticket", "list", "--json"], capsys)
    assert listed.code == 0 and listed.cpu < 1.0, listed.err
    doc = json.loads(listed.out)
    assert [t["title"] for t in doc["tickets"]] == ["Good one"]
    assert [i["path"] for i in doc["invalid"]] == [rel]
    doctor = run(["doctor", "--json"], capsys)
    assert doctor.code == 1
    assert any(p["path"] == rel for p in json.loads(doctor.out)["problems"])
    assert tree_bytes(repo) == before
    assert not (repo / "PWNED").exists()
    good = run(["ticket", "comment", "good-one", "-m", "still usable"], capsys)
    assert good.code == 0, good.err


@pytest.mark.parametrize(
    "name",
    _cases(
        [
            "python-tag",
            "alias-bomb",
            "deep-flow-nesting",
            "yaml-1.1-directive",
            "yaml-1.0-directive",
            "duplicate-key",
        ]
    ),
)
def test_hostile_event_file_is_skipped_by_the_engine_and_named_by_doctor(
    store: Store, repo: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    slug = s.queued_with_patch(store, repo, "Queued one")
    events_dir = store.ticket_dir(slug) / "events"
    front = HOSTILE_FRONT[name]
    assert front is not None
    (events_dir / "ev-20260101000000-0000000000.yaml").write_text(front)
    ran = run(["engine", "run", "--json"], capsys)
    assert ran.code == 0, ran.err
    assert store.read_ticket(slug).state.value == "done"  # the valid event still ran
    doctor = run(["doctor", "--json"], capsys)
    paths = [p["path"] for p in json.loads(doctor.out)["problems"]]
    assert any(p.endswith("ev-20260101000000-0000000000.yaml") for p in paths), paths


@pytest.mark.parametrize(
    "name", ["python-tag", "alias-bomb", "duplicate-key", "yaml-1.1-directive"]
)
def test_hostile_config_is_a_clean_error_naming_it(
    store: Store, repo: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    front = HOSTILE_FRONT[name]
    assert front is not None
    s.queued_with_patch(store, repo, "Queued one")
    (repo / ".yoi" / "config.yaml").write_text("version: 1\n" + front.replace("title", "t"))
    before = tree_bytes(repo)
    assert_clean_refusal(run(["engine", "run"], capsys), names=".yoi/config.yaml")
    doctor = run(["doctor"], capsys)
    assert doctor.code == 1 and ".yoi/config.yaml" in doctor.out, doctor
    assert tree_bytes(repo) == before


# ---- symlinks planted by a pull request -----------------------------------------------------
def merge_pr(repo: Path, links: dict[str, str], files: dict[str, str] | None = None) -> None:
    """Commit ``links`` (path -> target) and ``files`` on a branch and merge it, as a
    reviewed-and-merged pull request would."""
    git(repo, "checkout", "-q", "-b", "pr")
    for rel, content in (files or {}).items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(content)
    for rel, target in links.items():
        path = repo / rel
        if path.is_dir() and not path.is_symlink():
            for child in sorted(path.rglob("*"), reverse=True):
                child.unlink() if not child.is_dir() else child.rmdir()
            path.rmdir()
        elif path.exists() or path.is_symlink():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
    commit_all(repo, "a pull request")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--ff-only", "pr")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the repository that a link points to: it holds a
    plausible ticket, a thread and an events dir, to tempt a write."""
    out = tmp_path / "outside"
    (out / "events").mkdir(parents=True)
    (out / "ticket.md").write_text(f"---\ntitle: Outside\n{FRONT}---\n")
    (out / "thread.md").write_text("# thread\n")
    return out


def _ready(store: Store, title: str) -> str:
    slug = s.new_ticket(store, title)
    tickets.transition(store, slug, Action.READY, by="ada")
    return slug


def test_symlinked_ticket_dir_is_not_a_ticket(
    store: Store, repo: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slug = "20260101-000000-linked"
    merge_pr(repo, {f".yoi/tickets/open/{slug}": "../../../../outside"})
    assert (store.tickets_dir / "open" / slug / "ticket.md").exists()  # the link resolves
    before = tree_bytes(outside)
    listed = json.loads(run(["ticket", "list", "--json"], capsys).out)
    assert [t["title"] for t in listed["tickets"]] == ["Good one"]
    assert run(["ticket", "comment", "linked", "-m", "x"], capsys).code == 2
    assert run(["ticket", "ready", slug], capsys).code == 2
    doctor = json.loads(run(["doctor", "--json"], capsys).out)
    assert any("symlink" in p["message"] for p in doctor["problems"]), doctor
    assert tree_bytes(outside) == before


def test_symlinked_events_dir_refuses_the_queue_and_leaves_no_half_transaction(
    store: Store, repo: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slug = _ready(store, "Ready one")
    commit_all(repo, "tickets")
    merge_pr(repo, {f".yoi/tickets/open/{slug}/events": "../../../../../outside/events"})
    before_out, before_store = tree_bytes(outside), s.store_files(store)
    r = run(["ticket", "queue", slug], capsys)
    assert_clean_refusal(r, names=f"{slug}/events")
    assert "symlink" in r.err
    assert tree_bytes(outside) == before_out
    assert s.store_files(store) == before_store  # not half queued
    assert store.read_ticket(slug).state.value == "ready"
    ok = run(["ticket", "comment", "good-one", "-m", "the store is not wedged"], capsys)
    assert ok.code == 0, ok.err


def test_symlinked_thread_refuses_comments(
    store: Store, repo: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slug = s.new_ticket(store, "Chatty one")
    commit_all(repo, "tickets")
    merge_pr(repo, {f".yoi/tickets/open/{slug}/thread.md": "../../../../../outside/thread.md"})
    before = tree_bytes(outside)
    r = run(["ticket", "comment", "chatty-one", "-m", "written through a link?"], capsys)
    assert_clean_refusal(r, names="thread.md")
    assert tree_bytes(outside) == before


def test_symlinked_ticket_file_is_refused(
    store: Store, repo: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slug = s.new_ticket(store, "Linked file")
    commit_all(repo, "tickets")
    merge_pr(repo, {f".yoi/tickets/open/{slug}/ticket.md": "../../../../../outside/ticket.md"})
    before = tree_bytes(outside)
    assert_clean_refusal(run(["ticket", "show", "linked-file"], capsys), names="ticket.md")
    assert_clean_refusal(run(["ticket", "edit", "linked-file", "--label-add", "x"], capsys))
    assert tree_bytes(outside) == before


def test_symlinked_bucket_refuses_create(
    store: Store, repo: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    merge_pr(repo, {".yoi/tickets/open": "../../outside"})
    before = tree_bytes(outside)
    r = run(["ticket", "create", "New one", "--ac", "x"], capsys)
    assert_clean_refusal(r, names=".yoi/tickets/open")
    assert "symlink" in r.err
    assert tree_bytes(outside) == before


def test_symlinked_runs_dir_gets_nothing_from_the_engine(
    store: Store, repo: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = s.queued_with_patch(store, repo, "Victim one")
    commit_all(repo, "tickets")
    (outside / "runs").mkdir()
    merge_pr(repo, {f".yoi/tickets/open/{victim}/runs": "../../../../../outside/runs"})
    before, user = tree_bytes(outside), user_state(repo)
    r = run(["engine", "run"], capsys)
    assert "Traceback" not in r.err, r.err
    assert tree_bytes(outside) == before
    assert user_state(repo) == user
    assert store.read_ticket(victim).state.value == "queued"  # refused, not half accepted


def test_a_refused_ticket_does_not_stop_the_engine_for_the_others(
    store: Store, repo: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = s.queued_with_patch(store, repo, "Victim one")
    time.sleep(1.1)  # the victim's event is the oldest: the engine meets it first
    other = s.queued_with_patch(store, repo, "Other one")
    commit_all(repo, "tickets")
    (outside / "runs").mkdir()
    merge_pr(repo, {f".yoi/tickets/open/{victim}/runs": "../../../../../outside/runs"})
    r = run(["engine", "run"], capsys)
    assert store.read_ticket(other).state.value == "done", (r.code, r.out, r.err)


# ---- hostile names --------------------------------------------------------------------------
HOSTILE_NAMES = [
    "../x",
    "..",
    ".",
    "/etc/passwd",
    "a\0b",
    "x" * 5000,
    "../../outside",
    "open/../..",
    "done/x",
    "-",
    "",
    "..\\..\\x",
    "%2e%2e",
    "evil\nname",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_names_are_rejected_and_write_nothing(
    store: Store, repo: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree_bytes(repo.parent)
    for argv in (
        ["ticket", "show", name],
        ["ticket", "comment", name, "-m", "x"],
        ["ticket", "ready", name],
        ["ticket", "block", name, "--kind", "USER_INPUT", "--description", "d"],
        ["runs", "show", name],
        ["plan", "add", "good-one", "--kind", "before", "--related", name],
    ):
        r = run(argv, capsys)
        assert r.code == 2, (argv, r.code, r.err)
        assert "Traceback" not in r.err and r.cpu < 1.0, (argv, r.err)
    assert tree_bytes(repo.parent) == before


def test_event_naming_a_traversal_ticket_writes_nothing_outside(
    store: Store, repo: Path, outside: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slug = s.queued_with_patch(store, repo, "Queued one")
    events_dir = store.ticket_dir(slug) / "events"
    record = (events_dir / os.listdir(events_dir)[0]).read_text()
    forged = record.replace(slug, "../../../../outside").replace("ev-", "ev-", 1)
    (events_dir / "ev-20260101000000-aaaaaaaaaa.yaml").write_text(forged)
    before = tree_bytes(outside)
    r = run(["engine", "run"], capsys)
    assert "Traceback" not in r.err, r.err
    assert tree_bytes(outside) == before


# ---- the engine never runs the user's hooks, filters or fsmonitor ---------------------------
HOOKS = [
    "pre-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "post-checkout",
    "post-merge",
    "pre-push",
    "reference-transaction",
    "post-rewrite",
    "pre-auto-gc",
    "post-index-change",
    "pre-rebase",
    "fsmonitor-watchman",
]


def test_engine_never_runs_git_hooks_filters_or_fsmonitor(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    sentinel = tmp_path / "SENTINEL"
    script = tmp_path / "touch-sentinel"
    script.write_text(f'#!/bin/sh\necho "$0 $*" >> {sentinel}\ncat\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    store = s.make_store(
        repo, s.engine_config(gates=[{"name": "ok", "command": [s.PY, "-c", "print('gate ran')"]}])
    )
    (repo / ".gitattributes").write_text(
        (repo / ".gitattributes").read_text() + "* filter=evil diff=evil\n"
    )
    commit_all(repo, "attributes")
    hooks = repo / ".git" / "hooks"
    for hook in HOOKS:
        (hooks / hook).write_text(f"#!/bin/sh\necho {hook} >> {sentinel}\n")
        (hooks / hook).chmod(0o755)
    for key, value in {
        "filter.evil.clean": str(script),
        "filter.evil.smudge": str(script),
        "diff.evil.textconv": str(script),
        "core.fsmonitor": str(script),
        "core.hooksPath": str(hooks),
        "diff.external": str(script),
        "core.pager": str(script),
        "core.editor": str(script),
        "gpg.program": str(script),
        "commit.gpgsign": "true",
        "core.sshCommand": str(script),
    }.items():
        git(repo, "config", key, value)
    sentinel.unlink(missing_ok=True)
    slug = s.queued_with_patch(store, repo, "Hooked one")
    user = user_state(repo)
    sentinel.unlink(missing_ok=True)  # user_state's own `git status` may run fsmonitor
    result = engine.tick(Store.discover(repo))
    assert result.run_id is not None, result
    assert not sentinel.exists(), sentinel.read_text()
    assert Store.discover(repo).read_ticket(slug).state.value == "done"
    assert user_state(repo) == user
