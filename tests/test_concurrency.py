"""Real processes writing at once: no lost update, every file parses and validates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_yoi
from yoi.store import Store

ROOT = Path(__file__).resolve().parents[1]


def test_twenty_concurrent_comments_all_land(store_repo: Path) -> None:
    slug = run_yoi(
        "ticket", "create", "Busy ticket", "--ac", "x", "--json", cwd=store_repo, check=True
    ).stdout
    import json

    slug = json.loads(slug)["ticket"]["slug"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "yoi", "ticket", "comment", slug, "-m", f"comment {i}"],
            cwd=store_repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(20)
    ]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    store = Store.discover(store_repo)
    entries = store.read_thread(slug)
    bodies = sorted(e.body.strip() for e in entries if e.kind == "comment")
    assert bodies == sorted(f"comment {i}" for i in range(20))
    ticket = store.read_ticket(slug)  # validates against the schema
    assert ticket.title == "Busy ticket"
    leftovers = [p for p in (store_repo / ".yoi").rglob(".*.tmp")]
    assert leftovers == []
