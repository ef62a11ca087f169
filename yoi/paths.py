"""Where things are: the worktree root, the git common dir, the store and the runtime
dir. Reads ``.git`` files directly (no pygit2), so discovery costs a few stats."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from yoi.errors import NotFoundError, UsageError

STORE_DIR = ".yoi"
RUNTIME_DIR = "yoi"


@dataclass(frozen=True, slots=True)
class Layout:
    worktree: Path  # root of the worktree we were started in
    git_dir: Path  # this worktree's git dir
    common_dir: Path  # shared by all linked worktrees
    yoi_dir: Path  # <root>/.yoi (possibly the main worktree's)

    @property
    def root(self) -> Path:
        """The worktree that holds the store (its files are the repo the engine runs)."""
        return self.yoi_dir.parent

    @property
    def runtime_dir(self) -> Path:
        return self.common_dir / RUNTIME_DIR


def _read_gitdir_file(dot_git: Path) -> Path:
    text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
    if not text.startswith("gitdir:"):
        raise UsageError(f"unrecognised .git file: {text[:60]!r}", where=str(dot_git))
    target = Path(text[len("gitdir:") :].strip())
    return (dot_git.parent / target).resolve() if not target.is_absolute() else target


def _common_dir(git_dir: Path) -> Path:
    env = os.environ.get("GIT_COMMON_DIR")
    if env:
        return Path(env).resolve()
    commondir = git_dir / "commondir"
    if commondir.is_file():
        rel = Path(commondir.read_text(encoding="utf-8").strip())
        return (git_dir / rel).resolve() if not rel.is_absolute() else rel
    return git_dir


def find_worktree(start: Path) -> tuple[Path, Path]:
    """(worktree root, git dir) for ``start`` or one of its parents."""
    env_git_dir = os.environ.get("GIT_DIR")
    if env_git_dir:
        git_dir = Path(env_git_dir).resolve()
        work_tree = os.environ.get("GIT_WORK_TREE")
        root = Path(work_tree).resolve() if work_tree else _walk_up(start)[0]
        return root, git_dir
    return _walk_up(start)


def _walk_up(start: Path) -> tuple[Path, Path]:
    current = start.resolve()
    for candidate in (current, *current.parents):
        dot_git = candidate / ".git"
        if dot_git.is_dir():
            return candidate, dot_git
        if dot_git.is_file():
            return candidate, _read_gitdir_file(dot_git)
    bare = next((c for c in (current, *current.parents) if _is_git_dir(c)), None)
    if bare is not None:
        raise NotFoundError(
            "inside a git directory, not a working tree (a bare repository, or a .git "
            "directory itself)",
            where=str(bare),
            hint="run yoi in a working tree: `git clone` a bare repository to get one",
        )
    raise NotFoundError(
        "not inside a git repository",
        where=str(start),
        hint="run yoi inside a git working tree (`git init` creates one)",
    )


def _is_git_dir(path: Path) -> bool:
    """What git checks to call ``path`` a git directory: HEAD, objects/ and refs/."""
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()


def discover(start: Path | None = None, *, require_store: bool = True) -> Layout:
    root, git_dir = find_worktree(start or Path.cwd())
    common = _common_dir(git_dir)
    yoi_dir = root / STORE_DIR
    if not yoi_dir.is_dir() and common.name == ".git" and common.parent != root:
        main_store = common.parent / STORE_DIR  # linked worktree without its own store
        if main_store.is_dir():
            yoi_dir = main_store
    if require_store and not yoi_dir.is_dir():
        raise NotFoundError(
            "no yoi store in this repository",
            where=str(root),
            hint="run `yoi init` at the repository root",
        )
    if yoi_dir.is_symlink():
        raise UsageError(
            ".yoi is a symlink; yoi refuses to follow it",
            where=str(yoi_dir),
            hint="replace it with a real directory",
        )
    return Layout(worktree=root, git_dir=git_dir, common_dir=common, yoi_dir=yoi_dir)
