"""Git hooks in the style of pre-commit's installer, and what they do when git runs them.

Installing writes one script per hook type (``resources/hook-tmpl``, marked by an ID
line) into the hooks directory of the git *common* dir, so every linked worktree shares
them. A hook that was already there and is not yoi's is kept as ``<hook>.legacy`` and
still runs first. Uninstalling removes yoi's scripts and puts the ``.legacy`` ones back.
When ``core.hooksPath`` is set git ignores that directory, so installing is refused.

At run time (``yoi hook-impl``): pre-commit validates the staged store files; the post-*
hooks find the tickets whose files changed and emit one TICKET_READY per (ticket,
queued_at) for queued tickets that have none yet. Post hooks never fail a git
operation: every error becomes a warning on stderr and exit 0.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path

from yoi import clock, events, fsio, proc
from yoi.doctor_git import NULL_TREE, changed_paths, resolve_commit
from yoi.doctor_layout import ticket_key
from yoi.errors import GitError, YoiError
from yoi.model import State
from yoi.paths import Layout, discover
from yoi.store import Store

HOOK_TYPES = ("pre-commit", "post-commit", "post-merge", "post-checkout", "post-rewrite")
POST_HOOKS = HOOK_TYPES[1:]
MARKER = "# ID: yoi-hook-7d3c9e2a51f04b8e"
LEGACY_SUFFIX = ".legacy"
NULL_SHA = "0" * 40


class HookState(StrEnum):
    INSTALLED = "installed"  # ours, current
    OUTDATED = "outdated"  # ours, written by another yoi or interpreter
    FOREIGN = "foreign"  # a hook that is not yoi's (yoi's is not installed)
    ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class HookInfo:
    hook_type: str
    state: HookState
    legacy: bool  # a chained <hook>.legacy exists

    def as_dict(self) -> dict[str, object]:
        return {"hook": self.hook_type, "state": self.state.value, "legacy": self.legacy}


class HooksPathError(YoiError):
    def __init__(self, value: str):
        self.value = value
        super().__init__(
            f"refusing to install hooks: core.hooksPath is set to '{value}', so git "
            "ignores the repository's hooks directory",
            hint="`git config --unset-all core.hooksPath` (or add `yoi hook-impl <type>` "
            "to the hooks in that directory yourself)",
        )


# ----------------------------------------------------------------------------- install


def hooks_dir(layout: Layout) -> Path:
    return layout.common_dir / "hooks"


def hooks_path_setting(root: Path) -> str | None:
    """``core.hooksPath`` as git sees it (None when unset)."""
    done = proc.run(["git", "config", "--get", "core.hooksPath"], cwd=root, env=None, timeout_s=30)
    value = done.stdout.decode("utf-8", "replace").strip()
    return value if done.ok and value else None


def render(hook_type: str, python: str | None = None) -> bytes:
    template = (resources.files("yoi") / "resources" / "hook-tmpl").read_text("utf-8")
    text = template.replace("@HOOK_TYPE@", shlex.quote(hook_type))
    text = text.replace("@INSTALL_PYTHON@", shlex.quote(python or sys.executable))
    return text.encode("utf-8")


def is_ours(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    try:
        head = fsio.read_bytes(path, limit=1 << 20)
    except (OSError, YoiError):
        return False
    return MARKER.encode() in head


def hook_info(directory: Path, hook_type: str) -> HookInfo:
    path = directory / hook_type
    legacy = os.path.lexists(directory / f"{hook_type}{LEGACY_SUFFIX}")
    if is_ours(path):
        current = path.read_bytes() == render(hook_type)
        return HookInfo(hook_type, HookState.INSTALLED if current else HookState.OUTDATED, legacy)
    state = HookState.FOREIGN if os.path.lexists(path) else HookState.ABSENT
    return HookInfo(hook_type, state, legacy)


def _refuse_clobber(directory: Path) -> None:
    for hook_type in HOOK_TYPES:
        info = hook_info(directory, hook_type)
        if info.state is HookState.FOREIGN and info.legacy:
            raise YoiError(
                f"refusing to install the {hook_type} hook: both {hook_type} (not yoi's) and "
                f"{hook_type}{LEGACY_SUFFIX} exist, and keeping the first would overwrite "
                "the second",
                where=str(directory),
                hint="merge or remove one of them, then run `yoi hooks install` again",
            )


def install(layout: Layout) -> list[str]:
    """Install every hook (idempotent). Returns what changed, one line each."""
    value = hooks_path_setting(layout.worktree)
    if value is not None:
        raise HooksPathError(value)
    directory = hooks_dir(layout)
    directory.mkdir(parents=True, exist_ok=True)
    _refuse_clobber(directory)
    done = []
    for hook_type in HOOK_TYPES:
        path = directory / hook_type
        info = hook_info(directory, hook_type)
        if info.state is HookState.INSTALLED:
            continue
        if info.state is HookState.FOREIGN:
            os.rename(path, directory / f"{hook_type}{LEGACY_SUFFIX}")
            done.append(
                f"kept the existing {hook_type} hook as {hook_type}{LEGACY_SUFFIX} "
                "(it still runs first)"
            )
        fsio.atomic_write(path, render(hook_type), mode=0o755)
        done.append(f"{'updated' if info.state is HookState.OUTDATED else 'installed'} {hook_type}")
    return done


def uninstall(layout: Layout) -> list[str]:
    """Remove yoi's hooks and restore the chained ones. Foreign hooks stay."""
    directory = hooks_dir(layout)
    done = []
    for hook_type in HOOK_TYPES:
        path = directory / hook_type
        if not is_ours(path):
            continue
        path.unlink()
        legacy = directory / f"{hook_type}{LEGACY_SUFFIX}"
        if os.path.lexists(legacy):
            os.rename(legacy, path)
            done.append(f"removed {hook_type}, restored the previous hook")
        else:
            done.append(f"removed {hook_type}")
    return done


def status(layout: Layout) -> tuple[Path, list[HookInfo], str | None]:
    directory = hooks_dir(layout)
    infos = [hook_info(directory, t) for t in HOOK_TYPES]
    return directory, infos, hooks_path_setting(layout.worktree)


# ----------------------------------------------------------------------------- run time


def _rev(root: Path, name: str) -> str | None:
    return resolve_commit(root, name)


def base_commit(root: Path, hook_type: str, args: list[str], stdin: str) -> str | None:
    """What HEAD (or the working tree) is compared with to find changed tickets (None:
    scan all)."""
    if hook_type == "post-commit":
        return _rev(root, "HEAD^1") or NULL_TREE
    if hook_type == "post-merge":
        return _rev(root, "ORIG_HEAD")
    if hook_type == "post-checkout":
        prev = args[0] if args else NULL_SHA
        return None if prev == NULL_SHA else _rev(root, prev)
    if hook_type == "post-rewrite":
        pairs = [line.split() for line in stdin.splitlines() if line.strip()]
        old_tip = pairs[-1][0] if pairs and pairs[-1] else None
        return _rev(root, old_tip) if old_tip else _rev(root, "ORIG_HEAD")
    return None


def changed_tickets(store: Store, base: str | None, *, to_head: bool = False) -> set[str] | None:
    """Slugs of tickets with a file that differs between ``base`` and the working tree
    (``to_head``: and HEAD)."""
    if base is None:
        return None
    to = "HEAD" if to_head else None
    paths = changed_paths(store.root, base, staged=False, index_file=None, to=to)
    return {key[1] for p in paths if (key := ticket_key(p)) is not None}


def to_working_tree(hook_type: str, args: list[str]) -> bool:
    """Whether what the hook brought in is only in the working tree: a checkout of files
    (``git checkout <rev> -- <path>``: post-checkout's flag 0) or a squash merge
    (post-merge's flag 1), which commit nothing. Every other time it is in HEAD, and
    comparing two trees reads only what differs (the working tree: a ``stat`` of every
    store file, 0.5 s per commit at 10,000 tickets)."""
    if hook_type == "post-checkout":
        return len(args) > 2 and args[2] == "0"
    if hook_type == "post-merge":
        return bool(args) and args[0] == "1"
    return False


def _needs_event(store: Store, slug: str) -> str | None:
    """The queued_at of a queued open ticket whose TICKET_READY event is missing."""
    tdir = store.tickets_dir / "open" / slug
    if not tdir.is_dir():
        return None
    try:
        ticket = store.load_ticket(slug, tdir, edit=False).ticket
    except YoiError:
        return None
    if ticket.state is not State.QUEUED or not ticket.queued_at:
        return None
    path = events.event_path(tdir, events.event_id(slug, ticket.queued_at))
    return None if path.exists() else ticket.queued_at


def emit_missing(store: Store, slugs: Iterable[str] | None, source: str) -> list[str]:
    """Emit TICKET_READY for the given (or all open) queued tickets that lack it."""
    if slugs is None:
        slugs = [s for bucket, s, _ in store.iter_ticket_dirs() if bucket == "open"]
    todo = [s for s in sorted(set(slugs)) if _needs_event(store, s)]
    if not todo:
        return []
    emitted = []
    now = clock.format_ts(clock.now())
    with store.transaction() as tx:
        for slug in todo:
            queued_at = _needs_event(store, slug)  # re-read under the lock
            tdir = store.tickets_dir / "open" / slug
            if queued_at and events.emit_ready(tx, tdir, slug, queued_at, source, now):
                emitted.append(slug)
    return emitted


def post_hook(hook_type: str, args: list[str], stdin: str) -> list[str]:
    try:
        store = Store.discover()
    except YoiError:
        return []  # no store here: nothing to do
    try:
        base = base_commit(store.root, hook_type, args, stdin)
        slugs = changed_tickets(store, base, to_head=not to_working_tree(hook_type, args))
    except GitError:
        slugs = None  # cannot diff: scan every open ticket instead
    return emit_missing(store, slugs, f"hook:{hook_type}")


def layout_here() -> Layout:
    return discover(require_store=False)
