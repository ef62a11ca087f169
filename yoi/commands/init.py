"""`yoi init`: create .yoi/ (config, tickets/open, tickets/done) and the .gitattributes
entry that makes thread.md merge as a union. Idempotent: existing files are kept."""

from __future__ import annotations

from pathlib import Path

from yoi import fsio
from yoi.output import Output
from yoi.paths import STORE_DIR, discover
from yoi.store import Store

GITATTRIBUTES_LINE = ".yoi/tickets/**/thread.md merge=union"

CONFIG_TEMPLATE = """\
# yoi store settings (schema: schemas/config.schema.json, docs: docs/file-format.md)
version: 1
engine:
  capacity: 1            # inprogress tickets at once
  base_ref: HEAD         # default base for runs; a ticket's base_ref overrides it
  branch_prefix: yoi/    # work branches are <branch_prefix><slug>
  lease_seconds: 60      # claim lease; heartbeat at a third of it
runners:
  default:               # a ticket's `runner` names one of these
    type: patch-file     # command | openai | patch-file; patch-file reads the ticket's patch_file
gates: []                # e.g. - {name: tests, command: [python, -m, pytest, -q], timeout_s: 600}
"""


def ensure_gitattributes(root: Path) -> bool:
    """Add the union-merge line for thread.md. True if the file changed."""
    path = root / ".gitattributes"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if any(line.strip() == GITATTRIBUTES_LINE for line in text.splitlines()):
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    fsio.atomic_write(path, (text + GITATTRIBUTES_LINE + "\n").encode("utf-8"))
    return True


def init(*, path: Path | None = None) -> Output:
    layout = discover(path, require_store=False)
    yoi_dir = layout.worktree / STORE_DIR
    yoi_dir.mkdir(exist_ok=True)
    store = Store(discover(path))
    created: list[str] = []
    with store.transaction() as tx:
        config = yoi_dir / "config.yaml"
        if tx.write_text(config, CONFIG_TEMPLATE, create=True):
            created.append(store.rel(config))
        for bucket in ("open", "done"):
            keep = yoi_dir / "tickets" / bucket / ".gitkeep"
            if tx.write_bytes(keep, b"", create=True):
                created.append(store.rel(keep.parent))
        if ensure_gitattributes(layout.worktree):
            created.append(".gitattributes (thread.md merge=union)")
    root = store.rel(yoi_dir)
    text = f"initialised yoi store in {root}" if created else f"yoi store in {root} is up to date"
    text += "".join(f"\n  created {c}" for c in created)
    text += "\nnext: yoi ticket create 'first ticket' --ac 'what must be true when done'"
    return Output({"store": str(yoi_dir), "created": created}, text)
