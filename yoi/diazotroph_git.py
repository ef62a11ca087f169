"""The repository side of a diazotroph run: checked apply, work-branch update, clean-up.

- ``check_and_apply``: size limit, header parse, path policy and preimage ids on the RAW
  patch bytes against the base tree; then an INDEX-only apply in the private worktree;
  then the same policy on the result tree; then the normalized diff.
- ``publish``: the work branch is created, or reset to the base by compare-and-swap after
  keeping an old tip that has commits outside the base under a backup ref; then the
  result commit lands on it by compare-and-swap. ``fence()`` runs right before each ref
  move.
- ``clear_worktree``: remove a private worktree (registered or a leftover directory).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import patching
from yoi.errors import ConflictError, FencedError, PatchError, YoiError

if TYPE_CHECKING:
    from yoi.git import IndexOnly, PrivateWorktree, Repo

AUTHOR_NAME = "yoi"
AUTHOR_EMAIL = "yoi@localhost"


@dataclass(frozen=True, slots=True)
class Policy:
    protected: tuple[str, ...] = patching.DEFAULT_PROTECTED
    allow_symlinks: bool = False
    allow_submodules: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Policy:
        return cls(
            protected=tuple(config.get("protected_paths") or patching.DEFAULT_PROTECTED),
            allow_symlinks=bool(config.get("allow_symlinks", False)),
            allow_submodules=bool(config.get("allow_submodules", False)),
        )

    def check_tree(self, repo: Repo, base_tree: str, tree: str) -> list[str]:
        """Policy violations of ``tree`` relative to ``base_tree``."""
        changed, before = repo.changed_entries(base_tree, tree)
        return patching.check_tree_policy(
            changed,
            before,
            protected=self.protected,
            allow_symlinks=self.allow_symlinks,
            allow_submodules=self.allow_submodules,
        )


@dataclass(frozen=True)
class Base:
    """The base commit of a run; its entries are looked up by path when a check asks
    (a run reads the paths its patch names, not the whole tree)."""

    commit: str
    tree: str
    repo: Repo

    @classmethod
    def load(cls, repo: Repo, commit: str) -> Base:
        return cls(commit, repo.tree_of(commit), repo)

    def mode_of(self, path: str) -> int | None:
        entry = self.repo.entry_at(self.tree, path)
        return None if entry is None else entry[0]

    def blob_of(self, path: str) -> str | None:
        entry = self.repo.entry_at(self.tree, path)
        return None if entry is None else entry[1]


def check_and_apply(
    repo: Repo, base: Base, worktree: PrivateWorktree | IndexOnly, raw: bytes, policy: Policy
) -> list[str] | tuple[str, patching.NormalizedDiff]:
    """(result tree, normalized diff), or every reason the patch was refused."""
    problems = patching.check_size(raw)
    if problems:
        return problems
    try:
        files = patching.parse_headers(raw)
    except PatchError as exc:
        return [f"the patch does not parse: {exc.message}"]
    if not files:
        return ["the candidate is not a patch: no file headers (diff --git, ---/+++) found"]
    problems = patching.check_policy(
        files,
        base_entries=base.mode_of,
        protected=policy.protected,
        allow_symlinks=policy.allow_symlinks,
        allow_submodules=policy.allow_submodules,
    )
    problems += patching.verify_preimages(files, base.blob_of)
    if problems:
        return problems
    try:
        tree = worktree.apply_to_index(raw)  # to the base, whatever the runner staged
    except PatchError as exc:
        return [exc.message]
    changed, before = repo.changed_entries(base.tree, tree)
    problems = patching.check_tree_policy(
        changed,
        before,
        protected=policy.protected,
        allow_symlinks=policy.allow_symlinks,
        allow_submodules=policy.allow_submodules,
    )
    if problems:
        return [f"result tree: {p}" for p in problems]
    return tree, repo.diff_trees(base.tree, tree, (changed, before))


class PublishError(YoiError):
    """The work branch could not be updated; ``backup_ref`` is set if an old tip was kept."""

    def __init__(self, branch: str, cause: YoiError, backup_ref: str | None):
        self.backup_ref = backup_ref
        kept = f" (its previous tip is kept at {backup_ref})" if backup_ref else ""
        super().__init__(
            f"the work branch {branch} could not be updated: {cause.render()}; nothing was "
            f"committed{kept}"
        )


@dataclass(frozen=True, slots=True)
class Published:
    commit: str
    backup_ref: str | None


def publish(
    repo: Repo,
    *,
    branch: str,
    base_commit: str,
    tree: str,
    message: str,
    backup_ref: str,
    when: int,
    fence: Callable[[], None],
) -> Published:
    """Put ``tree`` as one commit on top of ``base_commit`` on ``branch`` (see the module
    docstring). ``backup_ref`` is the name used if the old tip must be kept. Raises
    ``PublishError`` when a ref moved under us; whatever ``fence`` raises propagates."""
    ref = f"refs/heads/{branch}"
    kept: str | None = None
    try:
        old = repo.ref_target(ref)
        if old is not None and old != base_commit:
            if not repo.is_ancestor(old, base_commit):
                fence()
                _keep(repo, backup_ref, old)
                kept = backup_ref
            fence()
            repo.update_ref(ref, base_commit, expected_old=old, message="yoi: reset to the base")
        fence()
        commit = repo.commit_on_ref(
            ref,
            tree,
            base_commit,
            message,
            author_name=AUTHOR_NAME,
            author_email=AUTHOR_EMAIL,
            when=when,
            create=old is None,
        )
    except FencedError:
        raise
    except YoiError as exc:  # ConflictError (a ref moved), GitError
        raise PublishError(branch, exc, kept) from exc
    return Published(commit, kept)


def _keep(repo: Repo, name: str, tip: str) -> None:
    """Create ``name`` at ``tip`` unless it already points there (create-if-absent)."""
    try:
        repo.update_ref(name, tip, expected_old=None, message="yoi: keep the previous tip")
    except ConflictError:
        if repo.ref_target(name) != tip:
            raise


def clear_worktree(repo: Repo, name: str | None, path: Path) -> None:
    """Remove the private worktree ``name`` (if registered) and whatever is at ``path``."""
    if name is not None and any(w.name == name for w in repo.list_private_worktrees(name)):
        repo.remove_private_worktree(name)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
