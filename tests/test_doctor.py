"""`yoi doctor` on the working tree: each problem class is detected with its file and
pointer, and `--fix` repairs bucket mismatches and temp files and nothing else."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest

from tests.test_doctor_support import (
    add_run,
    new_ticket,
    queued_ticket,
    write_yaml,
    yoi,
)
from yoi import doctor, yamlio
from yoi.commands.doctor import doctor as doctor_cmd
from yoi.errors import ExitCode, UsageError
from yoi.store import Store


@pytest.fixture
def store(store_repo: Path) -> Store:
    return Store.discover(store_repo)


def problems(store: Store) -> list[tuple[str, str, str, str]]:
    return [(p.path, p.pointer, p.message, p.severity) for p in doctor.check(store).problems]


def edit_front(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def tree_bytes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_schema_problem_names_file_and_pointer(store: Store) -> None:
    t = new_ticket(store)
    edit_front(t.path / "ticket.md", "importance: 2", "importance: high")
    found = problems(store)
    rel = f".yoi/tickets/open/{t.slug}/ticket.md"
    assert [(p[0], p[1], p[3]) for p in found] == [(rel, "/importance", "error")]


def test_every_record_kind_is_schema_checked(store: Store) -> None:
    t = queued_ticket(store)
    run = add_run(t)
    for name in ("workorder", "context_snapshot", "output_bundle", "run_record"):
        data = yamlio.load_plain((run / f"{name}.yaml").read_text(), path="x")
        data["created_at"] = "yesterday"
        write_yaml(run / f"{name}.yaml", data)
    event = next((t.path / "events").glob("*.yaml"))
    edit_front(event, "processed: false", "processed: maybe")
    pause = next((t.path / "pause_states").glob("*.yaml"))
    edit_front(pause, "reason: RUN_COMPLETE", "reason: TIRED")
    edit_front(store.yoi_dir / "config.yaml", "capacity: 1", "capacity: lots")
    bad = {(Path(p[0]).name, p[1]) for p in problems(store) if p[3] == "error"}
    assert {
        ("workorder.yaml", "/created_at"),
        ("context_snapshot.yaml", "/created_at"),
        ("output_bundle.yaml", "/created_at"),
        ("run_record.yaml", "/created_at"),
        (event.name, "/processed"),
        (pause.name, "/reason"),
        ("config.yaml", "/engine/capacity"),
    } <= bad


def test_unparseable_yaml_and_thread(store: Store) -> None:
    t = queued_ticket(store)
    event = next((t.path / "events").glob("*.yaml"))
    event.write_text("event_id: [unclosed\n", encoding="utf-8")
    (t.path / "thread.md").write_bytes(b"\xff\xfe not utf-8")
    paths = {p[0] for p in problems(store)}
    assert f".yoi/tickets/open/{t.slug}/events/{event.name}" in paths
    assert f".yoi/tickets/open/{t.slug}/thread.md" in paths


def test_thread_entry_with_bad_attributes(store: Store) -> None:
    t = new_ticket(store)
    with (t.path / "thread.md").open("a", encoding="utf-8") as f:
        f.write("\n<!-- yoi:entry kind=decision -->\n## Decision\n\nno author, no time\n")
    found = [p for p in problems(store) if p[0].endswith("thread.md")]
    assert found and found[0][3] == "error"


def test_bucket_mismatch_is_reported_and_fixed(store: Store) -> None:
    t = new_ticket(store)
    edit_front(t.path / "ticket.md", "state: planning", "state: done")
    found = problems(store)
    assert [(p[1], p[3]) for p in found] == [("/state", "error")]
    assert "tickets/done/" in found[0][2] and "--fix" in found[0][2]
    before = (t.path / "ticket.md").read_bytes()
    fixed = doctor.fix(store)
    assert fixed == [
        f"moved .yoi/tickets/open/{t.slug} to .yoi/tickets/done/{t.slug} (its state belongs there)"
    ]
    moved = store.tickets_dir / "done" / t.slug
    assert (moved / "ticket.md").read_bytes() == before  # moved, never rewritten
    assert not t.path.exists() and problems(store) == []


def test_done_ticket_in_open_bucket_reverse_direction(store: Store) -> None:
    t = new_ticket(store)
    done_dir = store.tickets_dir / "done" / t.slug
    shutil.move(t.path, done_dir)
    assert [p[1] for p in problems(store)] == ["/state"]
    doctor.fix(store)
    assert t.path.is_dir() and not done_dir.exists()


def test_duplicate_slug_is_reported_with_the_fix_and_not_fixed(store: Store) -> None:
    t = new_ticket(store)
    shutil.copytree(t.path, store.tickets_dir / "done" / t.slug)
    found = [p for p in problems(store) if "exists twice" in p[2]]
    assert len(found) == 1 and found[0][3] == "error"
    assert "git rm -r" in found[0][2]
    before = tree_bytes(store.yoi_dir)
    assert doctor.fix(store) == []  # not safely repairable
    assert tree_bytes(store.yoi_dir) == before


def test_dangling_references(store: Store) -> None:
    t = queued_ticket(store)
    run = add_run(t)
    event = next((t.path / "events").glob("*.yaml"))
    edit_front(event, f"ticket: {t.slug}", "ticket: 20200101-000000-someone-else")
    edit_front(t.path / "ticket.md", "queued_by:", "last_run: run-nowhere\nqueued_by:")
    data = yamlio.load_plain((run / "run_record.yaml").read_text(), path="x")
    data["output_id"] = "out-other"
    write_yaml(run / "run_record.yaml", data)
    write_yaml(
        t.path / "plan" / "plan-20261120100000-depends-on-abcdef.yaml",
        {
            "record_id": "plan-20261120100000-depends-on-abcdef",
            "ticket": t.slug,
            "kind": "depends_on",
            "related_ticket": "20200101-000000-missing",
            "author": "ada",
            "at": "2026-11-20T10:00:00Z",
        },
    )
    found = {(Path(p[0]).name, p[1]) for p in problems(store) if p[3] == "error"}
    assert {
        (event.name, "/ticket"),
        ("ticket.md", "/last_run"),
        ("run_record.yaml", "/output_id"),
        ("plan-20261120100000-depends-on-abcdef.yaml", "/related_ticket"),
    } <= found


def test_executed_run_missing_files_and_patch_mismatch(store: Store) -> None:
    t = queued_ticket(store)
    run = add_run(t)
    (run / "run_record.yaml").unlink()
    (run / "patch.diff").write_bytes(b"something else\n")
    found = {(Path(p[0]).name, p[2].split(":")[0]) for p in problems(store)}
    assert ("run_record.yaml", "missing") in found
    assert ("patch.diff", "patch.diff differs from the output bundle's content") in found
    (run / "patch.diff").unlink()
    assert ("patch.diff", "missing") in {
        (Path(p[0]).name, p[2].split(":")[0]) for p in problems(store)
    }


def test_created_run_needs_no_bundle_yet(store: Store) -> None:
    add_run(queued_ticket(store), executed=False)
    assert problems(store) == []


def test_plan_self_relation_and_cycle(store: Store) -> None:
    a, b = new_ticket(store, "Alpha"), new_ticket(store, "Beta")
    for rid, owner, other in (
        ("plan-20261120100000-depends-on-aaaaaa", a, b),
        ("plan-20261120100001-depends-on-bbbbbb", b, a),
        ("plan-20261120100002-depends-on-cccccc", a, a),
    ):
        write_yaml(
            owner.path / "plan" / f"{rid}.yaml",
            {
                "record_id": rid,
                "ticket": owner.slug,
                "kind": "depends_on",
                "related_ticket": other.slug,
                "author": "ada",
                "at": "2026-11-20T10:00:00Z",
            },
        )
    messages = [p[2] for p in problems(store)]
    assert any("cycle" in m and a.slug in m and b.slug in m for m in messages)
    assert any("to itself" in m for m in messages)


def test_orphan_temp_files_are_warned_and_removed(store: Store) -> None:
    t = new_ticket(store)
    temp = t.path / ".ticket.md.k2j3h4.tmp"
    temp.write_text("partial", encoding="utf-8")
    found = problems(store)
    assert [(p[0], p[3]) for p in found] == [(store.rel(temp), "warning")]
    assert doctor.fix(store) == [f"removed orphan temp file {store.rel(temp)}"]
    assert not temp.exists() and problems(store) == []


def test_symlinks_are_errors_and_never_followed_or_fixed(store: Store, tmp_path: Path) -> None:
    t = new_ticket(store)
    outside = tmp_path / "outside"
    outside.mkdir()
    (t.path / "runs").symlink_to(outside)
    found = problems(store)
    assert [(p[0], p[3]) for p in found] == [(f".yoi/tickets/open/{t.slug}/runs", "error")]
    assert "symlink" in found[0][2]
    assert doctor.fix(store) == [] and (t.path / "runs").is_symlink()


def test_missing_ticket_md_and_bad_slug(store: Store) -> None:
    (store.tickets_dir / "open" / "Not-A-Slug").mkdir()
    (store.tickets_dir / "open" / "Not-A-Slug" / "thread.md").write_text("", encoding="utf-8")
    messages = [p[2] for p in problems(store)]
    assert any("not a valid ticket slug" in m for m in messages)
    assert any("ticket.md is missing" in m for m in messages)


def test_missing_union_merge_line_is_a_warning(store: Store) -> None:
    (store.root / ".gitattributes").write_text("*.png binary\n", encoding="utf-8")
    found = problems(store)
    assert [(p[0], p[3]) for p in found] == [(".gitattributes", "warning")]
    assert "yoi init" in found[0][2]


def test_fix_touches_nothing_else(store: Store) -> None:
    t = queued_ticket(store)
    add_run(t)
    u = new_ticket(store, "Other")
    edit_front(u.path / "ticket.md", "importance: 2", "importance: 9")  # not fixable
    (u.path / ".thread.md.x.tmp").write_text("", encoding="utf-8")
    before = tree_bytes(store.yoi_dir)
    assert doctor.fix(store) == [f"removed orphan temp file {store.rel(u.path)}/.thread.md.x.tmp"]
    after = tree_bytes(store.yoi_dir)
    del before[f"tickets/open/{u.slug}/.thread.md.x.tmp"]
    assert after == before


def test_command_output_and_exit_codes(store: Store) -> None:
    t = new_ticket(store)
    clean = doctor_cmd(staged=False, against=None, fix=False)
    assert clean.code is ExitCode.OK and json.loads(clean.json())["ok"] is True
    edit_front(t.path / "ticket.md", "state: planning", "state: done")
    bad = doctor_cmd(staged=False, against=None, fix=False)
    doc = json.loads(bad.json())
    assert bad.code is ExitCode.FAILED and doc["schema_version"] == 1 and doc["ok"] is False
    assert set(doc["problems"][0]) == {"path", "pointer", "message", "severity"}
    fixed = doctor_cmd(staged=False, against=None, fix=True)
    assert fixed.code is ExitCode.OK and len(json.loads(fixed.json())["fixed"]) == 1
    with pytest.raises(UsageError):
        doctor_cmd(staged=True, against=None, fix=True)


def test_cli_exit_code_and_json(store: Store) -> None:
    t = new_ticket(store)
    edit_front(t.path / "ticket.md", "urgency: 2", "urgency: -1")
    proc = yoi(store.root, "doctor", "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["problems"][0]["pointer"] == "/urgency"


def test_many_tickets_in_seconds(store: Store) -> None:
    t = queued_ticket(store)
    add_run(t)
    count = 600
    ticket_md = (t.path / "ticket.md").read_text(encoding="utf-8")
    thread_md = (t.path / "thread.md").read_text(encoding="utf-8")
    for i in range(count):
        d = store.tickets_dir / "open" / f"20250101-{i:06d}-bulk"
        d.mkdir()
        (d / "ticket.md").write_text(ticket_md, encoding="utf-8")
        (d / "thread.md").write_text(thread_md, encoding="utf-8")
    start = time.monotonic()
    report = doctor.check(store)
    elapsed = time.monotonic() - start
    assert report.tickets == count + 1 and report.problems == []
    assert elapsed < 30, f"doctor took {elapsed:.1f}s for {count} tickets"
