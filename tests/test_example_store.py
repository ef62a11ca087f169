"""`.yoi-example/` is a realistic store: every state, decisions, blockers, a complete run,
plan records. It must pass `yoi doctor` and validate against the schemas."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.helpers import init_repo
from yoi import schema, yamlio
from yoi.model import State
from yoi.store import Store

EXAMPLE = Path(__file__).resolve().parents[1] / ".yoi-example"

KIND_BY_DIR = {"events": "event", "pause_states": "pause_state", "plan": "plan_record"}
KIND_BY_NAME = {
    "workorder.yaml": "workorder",
    "context_snapshot.yaml": "context_snapshot",
    "output_bundle.yaml": "output_bundle",
    "run_record.yaml": "run_record",
    "config.yaml": "config",
}


def test_every_record_validates() -> None:
    checked = 0
    for path in sorted(EXAMPLE.rglob("*.yaml")):
        kind = KIND_BY_NAME.get(path.name) or KIND_BY_DIR[path.parent.name]
        data = yamlio.load_plain(path.read_text(encoding="utf-8"), path=str(path))
        assert schema.validate(kind, data, str(path)) == []
        checked += 1
    assert checked >= 25


def test_doctor_passes_and_every_state_is_present(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    shutil.copytree(EXAMPLE, repo / ".yoi")
    (repo / ".gitattributes").write_text(".yoi/tickets/**/thread.md merge=union\n")
    from yoi.commands.doctor import doctor

    old = Path.cwd()
    os.chdir(repo)
    try:
        out = doctor(staged=False, against=None, fix=False)
    finally:
        os.chdir(old)
    errors = [p for p in out.data["problems"] if p["severity"] == "error"]
    assert errors == [] and out.data["ok"] is True
    store = Store.discover(repo)
    tickets, invalid = store.list_tickets()
    assert invalid == []
    assert {t.state for t in tickets} == set(State)
    kinds = {e.kind for t in tickets for e in store.read_thread(t.slug)}
    assert {"created", "decision", "state", "run", "pause", "plan", "comment"} <= kinds
    assert any(t.unresolved_blockers for t in tickets)
