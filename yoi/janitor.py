"""Clean-up of what stopped engines leave behind; run at engine start.

- Private worktrees under ``<runtime>/worktrees/`` whose run is no longer owned by a live
  process (its EVENT claim is released, missing, or held by a dead process on this host),
  with their git admin dirs pruned.
- Orphan ``.*.tmp`` files (interrupted atomic writes) in the store and the runtime dir,
  older than a few minutes.
- Stale ``refs/heads/yoi/**.lock`` and ``refs/yoi/**.lock`` (a git ref update killed
  midway), older than a few minutes, removed only while holding the store lock, so no
  yoi writer is mid-update. The store's own lock file is never touched.
- A stopped engine's journal segment (``checkpoint``): its files synced, then removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from yoi import claims, fsio

if TYPE_CHECKING:
    from yoi.store import Store

TMP_MAX_AGE_S = 300.0
REF_LOCK_MAX_AGE_S = 300.0
WORKTREES_DIR = "worktrees"
_RUN_RE = re.compile(r"run-([0-9]{14}-[0-9a-f]{10})")
_REF_LOCK_DIRS = (("refs", "heads", "yoi"), ("refs", "yoi"))


@dataclass(slots=True)
class Report:
    worktrees: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    ref_locks: list[str] = field(default_factory=list)
    journals: int = 0  # journal segments settled (a stopped engine's)

    @property
    def empty(self) -> bool:
        return not (self.worktrees or self.temp_files or self.ref_locks or self.journals)

    def summary(self) -> str:
        settled = f", settled {self.journals} journal segment(s)" if self.journals else ""
        return (
            f"removed {len(self.worktrees)} stale worktree(s), {len(self.temp_files)} temp "
            f"file(s), {len(self.ref_locks)} stale ref lock(s){settled}"
        )


def run_owned(store: Store, name: str) -> bool:
    """True when the run named in ``name`` is still owned by a live engine."""
    match = _RUN_RE.search(name)
    if match is None:
        return True  # not ours to judge: leave it
    event_id = f"ev-{match.group(1)}"
    path = store.runtime_dir / claims.CLAIMS_DIR / f"EVENT-{event_id}.yaml"
    try:
        record = claims.read_record(path)
    except Exception:
        return True
    if record is None or record.get("released"):
        return False
    return claims.status_of(record) != "dead-owner"


def _temp_sweep_due(store: Store, at: float, every_s: float | None) -> bool:
    """The temp-file sweep walks the whole store: at most once per ``every_s``."""
    if every_s is None:
        return True
    stamp = store.runtime("cache") / "janitor-temp.stamp"
    try:
        if at - stamp.stat().st_mtime < every_s:
            return False
    except FileNotFoundError:
        pass
    stamp.touch()
    os.utime(stamp, (at, at))
    return True


def clean(store: Store, *, now: float | None = None, temp_every_s: float | None = None) -> Report:
    """Do every clean-up; never raises for a file that vanished meanwhile. With
    ``temp_every_s`` the store-wide temp-file sweep runs only when that long has passed
    since the last one (engine commands pass it, so an idle tick stays cheap)."""
    at = time.time() if now is None else now
    report = Report()
    from yoi import checkpoint  # first: the store lock taken below would settle them too

    report.journals = checkpoint.settle(store.runtime_dir / "journal", [store.yoi_dir])
    report.worktrees = clean_worktrees(store)
    if _temp_sweep_due(store, at, temp_every_s):
        report.temp_files = clean_temp_files(store, now=at)
    report.ref_locks = clean_ref_locks(store, now=at)
    return report


def clean_worktrees(store: Store, *, run_id: str | None = None) -> list[str]:
    """Remove stale private worktrees; with ``run_id``, every worktree of that run
    (the caller owns the run and knows nothing uses them any more)."""
    base = store.runtime_dir / WORKTREES_DIR
    if not base.is_dir() or not any(base.iterdir()):
        return []  # nothing to do: do not even load pygit2
    from yoi.errors import YoiError
    from yoi.git import Repo

    def stale(name: str) -> bool:
        if run_id is not None:
            return run_id in name
        return not run_owned(store, name)

    try:
        repo = Repo.open(store.root)
        registered = {w.path.resolve(): w.name for w in repo.list_private_worktrees("")}
    except YoiError:
        return []
    removed: list[str] = []
    for path, name in list(registered.items()):
        if path.is_relative_to(base.resolve()) and stale(f"{name} {path.name}"):
            with contextlib.suppress(YoiError):
                repo.remove_private_worktree(name)
                removed.append(name)
    for entry in sorted(base.iterdir()):
        if entry.resolve() in registered or not stale(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            fsio.remove_tree_entry(entry)
        removed.append(entry.name)
    return removed


def _temp_files(top: Path) -> Iterator[Path]:
    """Every temp-named file under ``top`` (a name test per entry, a ``Path`` only for
    a match: the walk passes every file of the store, ~100,000 at 10,000 tickets)."""
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames[:] = [d for d in dirnames if d not in (WORKTREES_DIR, "locks", ".git")]
        for name in filenames:
            if fsio.is_temp_name(name):
                yield Path(dirpath, name)


def _older_than(path: Path, age: float, now: float) -> bool:
    try:
        return now - path.lstat().st_mtime > age
    except FileNotFoundError:
        return False


def clean_temp_files(store: Store, *, now: float) -> list[str]:
    removed = []
    for top in (store.yoi_dir, store.runtime_dir):
        if not top.is_dir():
            continue
        for path in _temp_files(top):
            if _older_than(path, TMP_MAX_AGE_S, now):
                fsio.remove_tree_entry(path)
                removed.append(str(path))
    return removed


def clean_ref_locks(store: Store, *, now: float) -> list[str]:
    common = store.layout.common_dir
    removed = []
    with store.locked():
        for parts in _REF_LOCK_DIRS:
            top = common.joinpath(*parts)
            if not top.is_dir():
                continue
            for dirpath, _dirs, files in os.walk(top, followlinks=False):
                for name in files:
                    path = Path(dirpath) / name
                    if name.endswith(".lock") and _older_than(path, REF_LOCK_MAX_AGE_S, now):
                        fsio.remove_tree_entry(path)
                        removed.append(str(path.relative_to(common)))
    return removed
