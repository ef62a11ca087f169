"""Shared set-up for the engine tests: a real repository with a store, a config with
real runners and gates, queued tickets with real patches, and file-level snapshots of
the store to assert exactly what a tick wrote."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import commit_all
from yoi import events, tickets
from yoi.lifecycle import Action
from yoi.store import Store

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
PASS_GATE = {"name": "has-notes", "command": [PY, "-c", "import os; assert os.path.isdir('notes')"]}
FAIL_GATE = {"name": "always-fails", "command": [PY, "-c", "import sys; sys.exit(3)"]}


def config(
    *,
    capacity: int = 1,
    lease: int = 60,
    gates: Sequence[Mapping[str, Any]] = (),
    runners: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "version": 1,
        "engine": {"capacity": capacity, "lease_seconds": lease},
        "runners": dict(runners or {})
        or {
            "default": {"type": "patch-file"},
            "sleepy": {"type": "command", "command": ["sleep", "30"], "budget_ms": 400},
            "broken": {
                "type": "command",
                "command": [PY, "-c", "import sys; print('boom'); sys.exit(3)"],
            },
        },
        "gates": [dict(g) for g in gates],
    }


def make_store(repo: Path, cfg: Mapping[str, Any] | None = None) -> Store:
    """`yoi init` plus our config (JSON is YAML), committed."""
    from yoi.commands.init import init

    init(path=repo)
    (repo / ".yoi" / "config.yaml").write_text(json.dumps(cfg or config(), indent=1) + "\n")
    commit_all(repo, "yoi init")
    return Store.discover(repo)


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def new_file_patch(path: str, text: str) -> bytes:
    data = text.encode("utf-8")
    lines = "".join(f"+{line}\n" for line in text.splitlines())
    count = len(text.splitlines())
    header = "@@ -0,0 +1 @@" if count == 1 else f"@@ -0,0 +1,{count} @@"
    return (
        f"diff --git a/{path} b/{path}\nnew file mode 100644\n"
        f"index 0000000..{blob_id(data)[:7]}\n--- /dev/null\n+++ b/{path}\n{header}\n{lines}"
    ).encode()


def write_patch(repo: Path, name: str, target: str | None = None) -> str:
    """A patch file (untracked, under patches/) adding notes/<name>.txt; its repo path."""
    rel = f"patches/{name}.diff"
    (repo / "patches").mkdir(exist_ok=True)
    (repo / rel).write_bytes(new_file_patch(target or f"notes/{name}.txt", f"note {name}\n"))
    return rel


def queue(store: Store, title: str, **fields: Any) -> str:
    """Create, ready and queue a ticket (emits its TICKET_READY); returns the slug."""
    spec = tickets.NewTicket(title=title, acceptance_criteria=["the note exists"], **fields)
    slug = tickets.create(store, spec, by="ada").slug
    tickets.transition(store, slug, Action.READY, by="ada")
    tickets.transition(store, slug, Action.QUEUE, by="ada")
    return slug


def queue_with_patch(store: Store, repo: Path, title: str, **fields: Any) -> str:
    name = title.lower().replace(" ", "-")
    return queue(store, title, patch_file=write_patch(repo, name), **fields)


def stale_event(store: Store, slug: str, queued_at: str = "2020-01-01T00:00:00Z") -> str:
    """A TICKET_READY the ticket no longer matches (as a late hook would emit)."""
    with store.transaction() as tx:
        tdir = store.ticket_dir(slug)
        events.emit_ready(tx, tdir, slug, queued_at, "hook:post-merge", queued_at)
    return events.event_id(slug, queued_at)


# ---- store snapshots ---------------------------------------------------------------------
def store_files(store: Store) -> dict[str, bytes]:
    """Every file under .yoi/, keyed by path with the bucket (open/done) normalized."""
    out = {}
    for path in sorted(store.yoi_dir.rglob("*")):
        if path.is_file():
            rel = str(path.relative_to(store.yoi_dir))
            rel = rel.replace("tickets/open/", "tickets/*/").replace("tickets/done/", "tickets/*/")
            out[rel] = path.read_bytes()
    return out


@dataclass(frozen=True)
class Delta:
    added: set[str]
    changed: set[str]
    removed: set[str]


def delta(before: Mapping[str, bytes], after: Mapping[str, bytes], slug: str = "") -> Delta:
    """What changed, with ``<T>`` standing for ``tickets/*/<slug>``."""

    def short(p: str) -> str:
        return p.replace(f"tickets/*/{slug}/", "<T>/") if slug else p

    return Delta(
        added={short(p) for p in after if p not in before},
        changed={short(p) for p in after if p in before and before[p] != after[p]},
        removed={short(p) for p in before if p not in after},
    )


def run_files(run_id: str, *names: str) -> set[str]:
    return {f"<T>/runs/{run_id}/{n}" for n in names}


def one(paths: set[str], prefix: str) -> str:
    found = [p for p in paths if p.startswith(prefix)]
    assert len(found) == 1, (prefix, paths)
    return found[0]


def thread_kinds(store: Store, slug: str) -> list[tuple[str, dict[str, str]]]:
    return [(e.kind, dict(e.attrs)) for e in store.read_thread(slug)]


def yoi_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def spawn_engine(repo: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PY, "-m", "yoi", "engine", *args],
        cwd=repo,
        env=yoi_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def validate_store(store: Store) -> list[str]:
    """Every record under .yoi/ parses and validates; returns the problems."""
    from yoi.errors import YoiError

    kinds = {
        "workorder.yaml": "workorder",
        "context_snapshot.yaml": "context_snapshot",
        "output_bundle.yaml": "output_bundle",
        "run_record.yaml": "run_record",
    }
    problems = []
    for _b, slug, tdir in store.iter_ticket_dirs():
        try:
            store.load_ticket(slug, tdir)
            store.read_thread(slug, tdir)
            for sub, kind in (
                ("events", "event"),
                ("pause_states", "pause_state"),
                ("plan", "plan_record"),
            ):
                for f in store.record_files(tdir, sub):
                    store.read_record(f, kind)
            for run_dir in store.run_dirs(tdir):
                for name, kind in kinds.items():
                    if (run_dir / name).exists():
                        store.read_record(run_dir / name, kind)
        except YoiError as exc:
            problems.append(exc.render())
    return problems
