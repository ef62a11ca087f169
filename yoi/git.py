"""Small typed operations over pygit2 (the only module that imports it).

Facts this module relies on are measured in ``notes/reliability.md``:

* Ref moves are compare-and-swap under a ref transaction (lock, re-read, set), never
  ``references.create(force=...)`` as an existence check.
* Patches are applied to the INDEX of a private, detached linked worktree, never to a
  work tree and never through the user's ``Repository`` object.
* A private worktree never has the ticket store (``.yoi/``) checked out
  (``_checkout_commit``); reading its files back puts the base's store in again.
* Diffs are produced in a throwaway bare "diff repository" that borrows the user's object
  store as an alternate, so the user's ``diff.noprefix``, ``diff.mnemonicPrefix``,
  ``core.abbrev``, ``diff.renames`` and work-tree ``.gitattributes`` cannot change them.

libgit2 runs no hooks, no ``core.fsmonitor`` and no external filter drivers
(``filter.<x>.smudge``/``clean`` commands are never executed). When a private worktree
is checked out it does apply the *built-in* filters selected by the user's config and
``.gitattributes``: ``core.autocrlf``/``text``/``eol`` (CRLF conversion) and ``ident``.
Reading the tree back (``workdir_diff``) applies the inverse conversion, so blobs match
what ``git add`` would store. git-lfs files appear as their pointer files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from yoi import bounded, cache, slots
from yoi.errors import ConflictError, GitError, PatchError, YoiError
from yoi.patching import FileChange, NormalizedDiff, quote_spaced_names
from yoi.paths import STORE_DIR


@contextmanager
def _without_ca_certificates() -> Iterator[None]:
    """Import pygit2 without loading the system's CA certificates (yoi never talks TLS
    through libgit2: remotes go through the git command, ``remote_git``). libgit2's
    initialisation and pygit2's ``Settings`` each load the whole CA bundle (~100 M
    instructions, 25-35 ms, in every process that imports pygit2), and on a machine
    without a bundle pygit2's import fails ("failed to load certificates"). Both follow
    ``SSL_CERT_FILE``/``SSL_CERT_DIR``: for the import they name no file and a directory
    with no certificate in it (this package's); the caller's values are put back at once,
    so every process yoi starts (git, runners, gates) sees them unchanged."""
    names = ("SSL_CERT_FILE", "SSL_CERT_DIR")
    saved = {name: os.environ.get(name) for name in names}
    here = os.path.dirname(os.path.abspath(__file__))
    os.environ["SSL_CERT_FILE"] = os.path.join(here, "no-ca-bundle")  # not a file
    os.environ["SSL_CERT_DIR"] = here  # no <hash>.0 names: no certificate
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


with _without_ca_certificates():
    import pygit2
    from pygit2.enums import ApplyLocation, DiffFind, DiffOption, FileMode, ObjectType

__all__ = [
    "FileChange",
    "NormalizedDiff",
    "PrivateWorktree",
    "Repo",
    "WorktreeInfo",
    "check_ref_name",
]

_T = TypeVar("_T")
_HEX40 = re.compile(r"[0-9a-f]{40}")
_SLUG_PART = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_WT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")
_STRICT_NAMESPACES = ("refs/heads/yoi/", "refs/yoi/")
_TREE_MODE = 0o040000
_LINK_MODE = 0o120000
_GITLINK_MODE = 0o160000
_DIFF_CONFIG = {
    "diff.noprefix": False,
    "diff.mnemonicPrefix": False,
    "diff.context": 3,
    "diff.renames": False,
    "core.abbrev": 7,
    "core.quotePath": True,
}


@contextmanager
def _git_errors(action: str) -> Iterator[None]:
    """Turn pygit2/libgit2 failures into ``GitError`` naming the action."""
    try:
        yield
    except YoiError:
        raise
    except (pygit2.GitError, KeyError, ValueError, OSError) as exc:
        raise GitError(f"{action}: {_reason(exc)}") from exc


def _oid(value: str, what: str) -> pygit2.Oid:
    if not isinstance(value, str) or not _HEX40.fullmatch(value):
        raise GitError(f"{what} must be a full 40-hex object id, got {value!r}")
    return pygit2.Oid(hex=value)


def check_ref_name(name: str) -> str:
    """Validate a full ref name; yoi's namespaces get a strict lowercase slug rule."""
    if not name.startswith("refs/") or not pygit2.reference_is_valid_name(name):
        raise GitError(f"invalid ref name '{name}'")
    for prefix in _STRICT_NAMESPACES:
        if name.startswith(prefix):
            parts = name[len(prefix) :].split("/")
            bad = [p for p in parts if not _SLUG_PART.fullmatch(p) or p.endswith(".lock")]
            if bad or ".." in name:
                raise GitError(
                    f"invalid ref name '{name}': components under {prefix} must match "
                    f"[a-z0-9][a-z0-9._-]* (lowercase)"
                )
    return name


@dataclass(frozen=True, slots=True)
class WorktreeInfo:
    name: str
    path: Path
    prunable: bool


_TRACKED: dict[str, tuple[str, ...]] = {}  # tree id -> tracked_files (immutable per id)
_OPENED: dict[str, tuple[tuple[int, int], Repo]] = {}  # git dir -> (its identity, handle)
_MEMO_MAX = 16  # entries per process-wide memo of this module (``bounded.put``)


TreeEntry = tuple[str, int, str]  # a non-tree entry of a tree: (path, mode, id)
Changes = tuple[list[TreeEntry], list[TreeEntry]]  # (entries of the new tree, of the old)


def _changes(repo: pygit2.Repository, old: pygit2.Tree, new: pygit2.Tree) -> Changes:
    """(new entries, old entries) that differ between two trees; shared subtrees are
    skipped unopened (``Repo.changed_entries``)."""
    new_out: list[TreeEntry] = []
    old_out: list[TreeEntry] = []
    stack: list[tuple[str, pygit2.Tree | None, pygit2.Tree | None]] = [("", old, new)]
    while stack:
        prefix, o_node, n_node = stack.pop()
        olds = {str(e.name): e for e in o_node} if o_node is not None else {}
        news = {str(e.name): e for e in n_node} if n_node is not None else {}
        for name in sorted(olds.keys() | news.keys()):
            o, n = olds.get(name), news.get(name)
            if o is not None and n is not None and o.id == n.id and o.filemode == n.filemode:
                continue  # the same entry (a shared subtree is not even opened)
            path = f"{prefix}{name}"
            o_tree = o is not None and o.filemode == _TREE_MODE
            n_tree = n is not None and n.filemode == _TREE_MODE
            if o_tree or n_tree:
                stack.append((path + "/", _subtree(repo, o, o_tree), _subtree(repo, n, n_tree)))
            if o is not None and not o_tree:
                old_out.append((path, int(o.filemode), str(o.id)))
            if n is not None and not n_tree:
                new_out.append((path, int(n.filemode), str(n.id)))
    return new_out, old_out


def _subtree(
    repo: pygit2.Repository, entry: pygit2.Object | None, is_tree: bool
) -> pygit2.Tree | None:
    if entry is None or not is_tree:
        return None
    return repo[entry.id].peel(pygit2.Tree)


class Repo:
    """A git repository (work tree or bare) opened with pygit2."""

    def __init__(self, repo: pygit2.Repository):
        self._repo = repo
        self._differ: _DiffRepo | None = None
        self._common_dir: Path | None = None

    @classmethod
    def open(cls, path: Path | str) -> Repo:
        """Discover the repository containing ``path`` (a work tree, linked worktree or
        bare). One handle per repository and process is kept (libgit2's handles are
        long-lived by design: refs, config and packs are re-read from disk when they
        change), so an engine run does not rebuild its object cache for every step; a
        git directory replaced under the same path (another inode) gets a new one."""
        with _git_errors(f"cannot open a git repository at {path}"):
            found = pygit2.discover_repository(str(path))
            if found is None:
                raise GitError(f"not a git repository: {path}")
            st = os.stat(found)
            identity = (st.st_dev, st.st_ino)
            held = _OPENED.get(found)
            if held is not None and held[0] == identity:
                return held[1]
            return bounded.put(
                _OPENED, found, (identity, cls(pygit2.Repository(found))), _MEMO_MAX
            )[1]

    @property
    def workdir(self) -> Path | None:
        return Path(self._repo.workdir) if self._repo.workdir else None

    @property
    def git_dir(self) -> Path:
        return Path(str(self._repo.path))

    @property
    def common_dir(self) -> Path:
        """The git common dir, shared by every linked worktree of the repository (found
        once per handle: ``open`` makes a new handle for a git dir replaced under it)."""
        if self._common_dir is None:
            marker = self.git_dir / "commondir"
            if marker.is_file():
                self._common_dir = (self.git_dir / marker.read_text().strip()).resolve()
            else:
                self._common_dir = self.git_dir.resolve()
        return self._common_dir

    # -- reading ---------------------------------------------------------------------

    def resolve_commit(self, ref: str) -> str:
        """Full id of the commit that ``ref`` (any revision) peels to."""
        try:
            obj = self._repo.revparse_single(ref)
        except (pygit2.GitError, KeyError, ValueError) as exc:
            raise GitError(f"unknown ref '{ref}'") from exc
        with _git_errors(f"'{ref}' does not name a commit"):
            return str(obj.peel(pygit2.Commit).id)

    def ref_target(self, name: str) -> str | None:
        """The commit a ref points to (symbolic refs followed), or None if absent."""
        with _git_errors(f"cannot read ref '{name}'"):
            ref = self._repo.references.get(name)
            if ref is None:
                return None
            try:
                return str(ref.resolve().target)
            except KeyError:  # symbolic ref to an unborn branch
                return None

    def is_ancestor(self, a: str, b: str) -> bool:
        """True if commit ``a`` is ``b`` or one of its ancestors."""
        oid_a, oid_b = _oid(a, "commit"), _oid(b, "commit")
        with _git_errors(f"cannot compare {a[:12]} and {b[:12]}"):
            return oid_a == oid_b or self._repo.descendant_of(oid_b, oid_a)

    def tree_of(self, commit: str) -> str:
        return str(self._tree(commit).id)

    def tree_entries(self, tree: str) -> Iterator[tuple[str, int, str]]:
        """Every non-tree entry (blob, symlink, gitlink) as (path, mode, id), depth first."""
        stack: list[tuple[str, pygit2.Tree]] = [("", self._tree(tree))]
        while stack:
            prefix, node = stack.pop()
            for entry in node:
                path = f"{prefix}{entry.name}"
                if entry.filemode == _TREE_MODE:
                    stack.append((path + "/", self._lookup(str(entry.id), pygit2.Tree)))
                else:
                    yield path, int(entry.filemode), str(entry.id)

    def entry_at(self, tree: str, path: str) -> tuple[int, str] | None:
        """``(mode, id)`` of the non-tree entry at ``path`` in ``tree``, or None (absent,
        or a directory)."""
        try:
            entry = self._tree(tree)[path]
        except (KeyError, ValueError, TypeError, pygit2.GitError):
            return None
        if entry.filemode == _TREE_MODE:
            return None
        return int(entry.filemode), str(entry.id)

    def changed_entries(self, base_tree: str, tree: str) -> Changes:
        """The non-tree entries of ``tree`` and of ``base_tree`` that differ, as (path,
        mode, id): every entry added, changed or removed is in one of the lists, and
        subtrees the two trees share are never read, so the cost follows the change, not
        the size of the repository."""
        old, new = self._tree(base_tree), self._tree(tree)
        with _git_errors(f"cannot compare {base_tree[:12]} with {tree[:12]}"):
            return _changes(self._repo, old, new)

    def tracked_files(self, commit: str) -> tuple[str, ...]:
        """Paths of the blobs (files and symlinks) in the commit's tree, sorted. A tree's
        content never changes under its id, so the tuple is kept per tree id, in this
        process (an engine run snapshots the same base for every ticket) and in the cache
        file ``tracked-files.bin``; a tree the file does not hold is derived from the one
        it does by the entries that differ (``_changes``: the cost of the change), and
        only without one is every entry of the tree read."""
        tree = self._tree(commit)
        key = str(tree.id)
        found = _TRACKED.get(key)
        if found is not None:
            return found
        path = self.common_dir / "yoi" / cache.CACHE_DIR / "tracked-files.bin"
        kept = cache.load(path)
        if isinstance(kept, tuple) and len(kept) == 2 and kept[0] == key:
            return bounded.put(_TRACKED, key, kept[1], _MEMO_MAX)
        found = self._tracked_from(kept, tree) if isinstance(kept, tuple) else None
        if found is None:
            found = self._all_tracked(key)
        cache.save(path, (key, found))
        return bounded.put(_TRACKED, key, found, _MEMO_MAX)

    def _all_tracked(self, tree: str) -> tuple[str, ...]:
        """Every blob path of ``tree``, sorted, read in full: as `git ls-tree -r -z` lists
        them (one process in C, ~6x faster than walking the tree from Python at 100,000
        entries: a fresh clone's first run), else by ``tree_entries`` when the git CLI
        is not there, fails, or lists a name that is not UTF-8."""
        listed = _ls_tree(self.common_dir, tree)
        if listed is not None:
            return listed
        paths = (p for p, mode, _ in self.tree_entries(tree) if mode != _GITLINK_MODE)
        return tuple(sorted(paths))

    def _tracked_from(self, kept: tuple[object, ...], tree: pygit2.Tree) -> tuple[str, ...] | None:
        """The tracked files of ``tree`` from those of the tree ``kept`` holds."""
        try:
            old_id, old_paths = kept
            old = self._repo[_oid(str(old_id), "tree")].peel(pygit2.Tree)
            added, removed = _changes(self._repo, old, tree)
        except (YoiError, pygit2.GitError, KeyError, ValueError, TypeError):
            return None  # that tree is gone (or the file is foreign): read every entry
        if not isinstance(old_paths, tuple):
            return None
        paths = set(old_paths)
        paths.difference_update(p for p, _m, _i in removed)
        paths.update(p for p, mode, _i in added if mode != _GITLINK_MODE)
        return tuple(sorted(paths))

    def blob_id_for(self, commit: str, path: str) -> str | None:
        entry = self._entry(commit, path)
        return None if entry is None else str(entry.id)

    def read_blob(self, commit: str, path: str) -> bytes | None:
        entry = self._entry(commit, path)
        if entry is None:
            return None
        return self._lookup(str(entry.id), pygit2.Blob).data

    def _entry(self, commit: str, path: str) -> pygit2.Object | None:
        tree = self._tree(commit)
        try:
            entry = tree[path]
        except (KeyError, ValueError, pygit2.GitError):
            return None
        return entry if entry.type == ObjectType.BLOB else None

    def _tree(self, rev: str) -> pygit2.Tree:
        with _git_errors(f"'{rev}' does not name a tree"):
            obj = self._repo.revparse_single(rev) if not _HEX40.fullmatch(rev) else None
            if obj is None:
                obj = self._repo[_oid(rev, "tree")]
            return obj.peel(pygit2.Tree)

    def _lookup(self, hex_id: str, kind: type[_T]) -> _T:
        with _git_errors(f"object {hex_id[:12]} is not a {kind.__name__.lower()}"):
            obj = self._repo[_oid(hex_id, "object id")]
            if not isinstance(obj, kind):
                raise GitError(f"object {hex_id[:12]} is not a {kind.__name__.lower()}")
            return obj

    # -- refs (compare-and-swap only) --------------------------------------------------

    def update_ref(self, name: str, new: str, *, expected_old: str | None, message: str) -> None:
        """Move ``name`` to ``new`` only if it currently points to ``expected_old``.

        ``expected_old=None`` means the ref must not exist (create-if-absent). The check
        runs under libgit2's ref lock (transaction: lock, re-read, set), so concurrent
        writers get exactly one winner; the others get ``ConflictError``.
        """
        check_ref_name(name)
        new_oid = _oid(new, "new ref target")
        if expected_old is not None:
            _oid(expected_old, "expected old ref target")
        with _git_errors(f"cannot update ref '{name}'"):
            self._lookup(new, pygit2.Commit)
            with self._repo.transaction() as txn:
                self._lock_and_compare(txn, name, expected_old)
                txn.set_target(name, new_oid, message=message)  # reflog identity: libgit2's default

    def delete_ref(self, name: str, *, expected_old: str) -> None:
        """Delete ``name`` only if it currently points to ``expected_old``."""
        check_ref_name(name)
        _oid(expected_old, "expected old ref target")
        with _git_errors(f"cannot delete ref '{name}'"), self._repo.transaction() as txn:
            self._lock_and_compare(txn, name, expected_old)
            txn.remove(name)

    def _lock_and_compare(
        self, txn: pygit2.ReferenceTransaction, name: str, expected_old: str | None
    ) -> None:
        try:
            txn.lock_ref(name)
        except (pygit2.GitError, OSError) as exc:
            if "lock" not in str(exc):
                raise
            raise ConflictError(
                f"ref '{name}' is being updated by another writer",
                hint=f"retry; a stale '{name}.lock' left by a killed process must be removed",
            ) from exc
        ref = self._repo.references.get(name)
        if ref is not None and not isinstance(ref.target, pygit2.Oid):
            raise GitError(f"ref '{name}' is symbolic; yoi only moves direct refs")
        current = None if ref is None else str(ref.target)
        if current != expected_old:
            want = "to be absent" if expected_old is None else f"at {expected_old[:12]}"
            found = "it is absent" if current is None else f"it is at {current[:12]}"
            raise ConflictError(f"ref '{name}' moved: expected it {want}, but {found}")

    # -- commits -------------------------------------------------------------------------

    def commit_tree(
        self,
        tree: str,
        parents: list[str],
        message: str,
        *,
        author_name: str,
        author_email: str,
        when: int | None = None,
    ) -> str:
        """Create a commit object (author = committer) without moving any ref."""
        tree_oid = _oid(tree, "tree")
        parent_oids = [_oid(p, "parent commit") for p in parents]
        stamp = int(time.time()) if when is None else int(when)
        with _git_errors("cannot create commit"):
            self._lookup(tree, pygit2.Tree)
            for parent in parents:
                self._lookup(parent, pygit2.Commit)
            sig = pygit2.Signature(author_name, author_email, stamp, 0)
            return str(self._repo.create_commit(None, sig, sig, message, tree_oid, parent_oids))

    def commit_on_ref(
        self,
        ref: str,
        tree: str,
        parent: str,
        message: str,
        *,
        author_name: str,
        author_email: str,
        when: int | None = None,
        create: bool = False,
    ) -> str:
        """Commit ``tree`` on top of ``parent`` and move ``ref`` to it (compare-and-swap).

        The ref must currently point to ``parent``; with ``create=True`` it must not
        exist instead. Raises ``ConflictError`` when it moved; the commit object is then
        left unreferenced (harmless, collected by ``git gc``).
        """
        commit = self.commit_tree(
            tree, [parent], message, author_name=author_name, author_email=author_email, when=when
        )
        first_line = message.strip().splitlines()[0] if message.strip() else "commit"
        old = None if create else parent
        self.update_ref(ref, commit, expected_old=old, message=f"yoi: {first_line}")
        return commit

    # -- private worktrees ---------------------------------------------------------------

    def add_private_worktree(self, base_commit: str, path: Path, name: str) -> PrivateWorktree:
        """A linked worktree at ``path``, DETACHED at ``base_commit``, files checked out.

        ``path`` must not exist (its parents are created). The worktree's admin dir is
        ``<common>/worktrees/<name>``; no branch stays checked out (a temporary branch
        ``yoi-tmp/<name>`` exists only while libgit2 creates it), so the user can still
        delete or move any branch.
        """
        if not _WT_NAME.fullmatch(name):
            raise GitError(f"invalid worktree name '{name}': use [a-z0-9][a-z0-9._-]*")
        path = Path(path).absolute()
        if path.exists() or path.is_symlink():
            raise GitError(f"cannot create private worktree: {path} already exists")
        base = self._lookup(base_commit, pygit2.Commit)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp_branch = f"yoi-tmp/{name}"
        with _git_errors(f"cannot create private worktree '{name}' at {path}"):
            if name in self._repo.list_worktrees():
                raise GitError(f"cannot create private worktree: the name '{name}' is in use")
            checkout = self._checkout_commit(base)
            branch = self._repo.create_branch(temp_branch, checkout, True)
            created = False
            try:
                self._repo.add_worktree(name, str(path), branch)
                created = True
                pygit2.Repository(str(path)).set_head(checkout.id)
            except BaseException:
                if created:
                    self.remove_private_worktree(name)
                raise
            finally:
                # Delete the ref itself: `branches.local.delete` scans every worktree's
                # HEAD and fails spuriously while another engine is creating one.
                if self._repo.references.get(f"refs/heads/{temp_branch}") is not None:
                    self._repo.references.delete(f"refs/heads/{temp_branch}")
        return PrivateWorktree(self, name, path, base_commit, str(checkout.id))

    def _checkout_commit(self, commit: pygit2.Commit) -> pygit2.Commit:
        """What a private worktree of ``commit`` checks out: ``commit`` itself, or, when its
        tree holds the ticket store (a ``.yoi`` directory), a commit whose tree is the same
        without it and whose parent is ``commit``, on no ref (the same object for the same
        commit: no new object per run). A runner or a gate never needs the store's files
        (a patch may not touch them) and they are most of a big store's repository: ten
        files per ticket, so 100,000 at 10,000 tickets, which took 15-25 s to write and as
        long to delete for every run and every gate run."""
        entry = _child(commit.tree, STORE_DIR)
        if entry is None or entry.filemode != _TREE_MODE:
            return commit
        builder = self._repo.TreeBuilder(commit.tree)
        builder.remove(STORE_DIR)
        tree = builder.write()
        sig = pygit2.Signature("yoi", "yoi@localhost", commit.commit_time, 0)
        message = (
            f"{commit.id} without {STORE_DIR}/\n\nyoi checks out the ticket store for no "
            "runner and no gate; the store is the base commit's again in every result.\n"
        )
        oid = self._repo.create_commit(None, sig, sig, message, tree, [commit.id])
        return self._lookup(str(oid), pygit2.Commit)

    def remove_private_worktree(self, name: str) -> bool:
        """Delete the worktree's directory and its admin dir. False if it did not exist."""
        with _git_errors(f"cannot remove private worktree '{name}'"):
            if name not in self._repo.list_worktrees():
                return False
            worktree = self._repo.lookup_worktree(name)
            path = Path(worktree.path)
            if path.is_symlink():
                raise GitError(f"refusing to delete {path}: it is a symlink")
            if path.exists():
                shutil.rmtree(path)
            worktree.prune(True)
            return True

    def list_private_worktrees(self, prefix: str) -> list[WorktreeInfo]:
        """Linked worktrees whose name starts with ``prefix`` (for a janitor)."""
        with _git_errors("cannot list worktrees"):
            found = []
            for name in sorted(self._repo.list_worktrees()):
                if name.startswith(prefix):
                    worktree = self._repo.lookup_worktree(name)
                    found.append(WorktreeInfo(name, Path(worktree.path), worktree.is_prunable))
            return found

    def index_only(self, base_commit: str) -> IndexOnly:
        """This process's ``IndexOnly`` for this repository, reset to ``base_commit``."""
        self._lookup(base_commit, pygit2.Commit)
        key = str(self.common_dir)
        held = _INDEX_ONLY.get(key)
        if held is not None and not _index_repo_ok(held[1].path, self.common_dir):
            slots.release(held[0])
            held = None
        if held is None:
            slot = slots.claim(self.common_dir / "yoi" / "cache" / "index")
            try:
                if not _index_repo_ok(slot.path, self.common_dir):
                    _make_index_repo(slot.path, self.common_dir)
                held = (slot, IndexOnly(self, slot.path, base_commit))
            except BaseException:
                slots.release(slot)
                raise
            _INDEX_ONLY[key] = held
        held[1].reset_to(self, base_commit)
        return held[1]

    @contextmanager
    def private_worktree(
        self, base_commit: str, path: Path, name: str
    ) -> Iterator[PrivateWorktree]:
        """``add_private_worktree`` that is always removed on exit."""
        worktree = self.add_private_worktree(base_commit, path, name)
        try:
            yield worktree
        finally:
            self.remove_private_worktree(name)

    # -- diffs ---------------------------------------------------------------------------

    def diff_trees(
        self, base_tree: str, new_tree: str, changes: Changes | None = None
    ) -> NormalizedDiff:
        """The normalized diff between two trees (or commits), independent of user config.
        ``changes``: ``changed_entries(base_tree, new_tree)``, when the caller has them."""
        if self._differ is None or not self._differ.unchanged():
            self._differ = _DiffRepo(self.common_dir / "objects", self.common_dir / "yoi" / "cache")
        return self._differ.diff(base_tree, new_tree, changes)


class _PrivateIndex:
    """An index of yoi's own over the user's object database: ``apply_to_index`` applies
    a patch there (INDEX only: no file on disk is written) and writes the result tree."""

    def __init__(self, owner: Repo, path: Path, base_commit: str, what: str):
        self.path = path
        self.base_commit = base_commit
        self._owner = owner
        with _git_errors(f"cannot open {what} at {path}"):
            self._repo = pygit2.Repository(str(path))

    def apply_to_index(self, patch: bytes) -> str:
        """Apply a git-style patch to the base tree in this index; return the resulting
        tree id. All or nothing (libgit2 checks every file first); files on disk are not
        touched; every apply starts from the base.

        The index is *sparse*: before a patch is applied it holds the base tree's entries
        for exactly the paths the patch names, and the result tree is the base tree with
        those paths replaced (``_edit_tree``). So a run costs what its patch touches, not
        what the repository holds (a full index of a large tree is megabytes to restore,
        parse and rewrite per run); libgit2 still checks every hunk against its preimage.
        """
        patch, diff = _parse_patch(patch)
        base_tree = self._owner.tree_of(self.base_commit)
        with _git_errors("cannot read the base tree"):
            base = self._repo[base_tree].peel(pygit2.Tree)
        paths = sorted({f.path for d in diff.deltas for f in (d.old_file, d.new_file) if f.path})
        with _git_errors("cannot prepare the private index"):
            index = self._repo.index
            index.clear()
            for path in paths:
                entry = self._owner.entry_at(base_tree, path)
                if entry is not None:
                    index.add(pygit2.IndexEntry(path, pygit2.Oid(hex=entry[1]), FileMode(entry[0])))
        # Not written first: libgit2's apply reads the repository's index object (this one,
        # in memory) and writes it once, when the patch applied.
        self._apply(patch, diff)
        with _git_errors("cannot write the result tree"):
            after = {e.path: (e.id, int(e.mode)) for e in self._repo.index}
            changes = {path: after.get(path) for path in paths}
            tree = _edit_tree(self._repo, base, changes, "")
            return str(tree if tree is not None else self._repo.TreeBuilder().write())

    def _apply(self, patch: bytes, diff: pygit2.Diff) -> None:
        try:  # libgit2 makes every postimage before it changes the index: no dry run first
            self._repo.apply(diff, ApplyLocation.INDEX)
        except (pygit2.GitError, ValueError, OSError) as exc:
            where = self._failing_file(patch)
            raise PatchError(
                f"the patch does not apply to {self.base_commit[:12]}: {_reason(exc)}",
                where=where,
            ) from exc

    def _failing_file(self, patch: bytes) -> str | None:
        """libgit2's reason does not name the file: find the first one that fails alone."""
        for chunk in re.split(rb"(?m)^(?=diff --git )", patch):
            try:
                alone = pygit2.Diff.parse_diff(chunk)
            except (pygit2.GitError, KeyError, ValueError):
                continue
            try:
                self._repo.applies(alone, ApplyLocation.INDEX, raise_error=True)
            except (pygit2.GitError, ValueError, OSError):
                return next((p.delta.new_file.path for p in alone if p is not None), None)
        return None


class IndexOnly(_PrivateIndex):
    """A private index without a checkout, for runs whose runner needs no files on disk:
    a bare repository whose ``objects`` is a symlink to the user's object database (so
    the blobs and trees ``apply_to_index`` writes are the user's, as with a linked
    worktree), with its own index file. Nothing is checked out.

    Its index is sparse, as every private index's (``apply_to_index``). One is kept per
    process and repository (``Repo.index_only``) in a slot under
    ``<git-common-dir>/yoi/cache/index/`` that this process holds locked: an engine run
    reuses it for every ticket, with libgit2's object cache kept warm. A process that
    dies frees its slot; the next one takes it over as it is."""

    def __init__(self, owner: Repo, path: Path, base_commit: str):
        super().__init__(owner, path, base_commit, "the private index")

    def reset_to(self, owner: Repo, base_commit: str) -> None:
        self._owner, self.base_commit = owner, base_commit


Entry = tuple[pygit2.Oid, int]  # (object id, file mode)


def _child(tree: pygit2.Tree, name: str) -> pygit2.Object | None:
    """The entry ``name`` of ``tree`` (no ``get`` on a pygit2 Tree)."""
    return tree[name] if name in tree else None  # noqa: SIM401


def _edit_tree(
    repo: pygit2.Repository,
    tree: pygit2.Tree | None,
    changes: dict[str, Entry | None],
    where: str,
) -> pygit2.Oid | None:
    """``tree`` with every path of ``changes`` set to an entry or removed (None): only
    the directories on those paths are rewritten. None when nothing is left (git has no
    empty trees). A file where a directory is needed, or the reverse, is a
    ``PatchError``, as it is for git's own index."""
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    nested: dict[str, dict[str, Entry | None]] = {}
    added: list[tuple[str, Entry]] = []
    for path, value in changes.items():
        head, sep, rest = path.partition("/")
        if sep:
            nested.setdefault(head, {})[rest] = value
        elif value is None:
            if builder.get(head) is not None:
                builder.remove(head)
        else:
            added.append((head, value))
    for head, inner in nested.items():  # after removals: a file may give way to a directory
        entry = builder.get(head)
        if entry is not None and entry.filemode != _TREE_MODE:
            raise PatchError(f"'{where}{head}' is a file; the patch needs it to be a directory")
        sub = None if entry is None else entry.peel(pygit2.Tree)
        new = _edit_tree(repo, sub, inner, f"{where}{head}/")
        if new is not None:
            builder.insert(head, new, _TREE_MODE)
        elif entry is not None:
            builder.remove(head)
    for head, (oid, mode) in added:
        entry = builder.get(head)
        if entry is not None and entry.filemode == _TREE_MODE:
            raise PatchError(f"'{where}{head}' is a directory; the patch makes it a file")
        builder.insert(head, oid, mode)
    return builder.write() if len(builder) else None


def _ls_tree(common_dir: Path, tree: str) -> tuple[str, ...] | None:
    """The blob paths of ``tree`` (no gitlinks) by `git ls-tree -r -z`, sorted; None when
    that cannot give them exactly."""
    from yoi import proc

    args = ["--git-dir", str(common_dir), "ls-tree", "-r", "-z", tree]
    try:
        done = proc.run_git(args, cwd=common_dir, timeout_s=300, max_output=1 << 31)
    except proc.ProcError:
        return None
    if not done.ok or done.truncated:
        return None
    paths: list[str] = []
    for item in done.stdout.split(b"\0"):
        meta, tab, name = item.partition(b"\t")
        if not tab or meta.startswith(b"160000 "):
            continue
        try:
            paths.append(name.decode("utf-8"))
        except UnicodeDecodeError:
            return None
    return tuple(sorted(paths))


def _parse_patch(patch: bytes) -> tuple[bytes, pygit2.Diff]:
    """The patch as libgit2 reads it (spaced names quoted) and its parsed diff."""
    if not patch.strip():
        raise PatchError("the patch is empty")
    patch = quote_spaced_names(patch)
    try:
        diff = pygit2.Diff.parse_diff(patch)
    except (pygit2.GitError, KeyError, ValueError) as exc:
        raise PatchError(f"the patch does not parse: {_reason(exc)}") from exc
    if len(diff) == 0:
        raise PatchError("the patch contains no file changes")
    return patch, diff


# common dir -> this process's private index for that repository (``Repo.index_only``)
_INDEX_ONLY: dict[str, tuple[slots.Slot, IndexOnly]] = {}


class PrivateWorktree(_PrivateIndex):
    """A private detached worktree: the runner edits its files, yoi applies to its INDEX.
    ``checked_out``: the commit on disk (``Repo._checkout_commit``: the base, or the base
    without the ticket store)."""

    def __init__(
        self, owner: Repo, name: str, path: Path, base_commit: str, checked_out: str | None = None
    ):
        super().__init__(owner, path, base_commit, "the private worktree")
        self.name = name
        self.checked_out = checked_out or base_commit
        self._admin_dir = str(self._repo.path)

    def workdir_tree(self) -> str:
        """Tree id of the files on disk as ``git add -A`` would stage them (nothing written
        to any index file; .gitignore'd untracked files are left out), with the base's
        ticket store where it was not checked out."""
        with _git_errors(f"cannot read the files of {self.path}"):
            repo = pygit2.Repository(self._admin_dir)  # not via <path>/.git: runner-writable
            index = repo.index
            index.read_tree(self._owner.tree_of(self.checked_out))
            index.add_all()
            return self._with_store(index.write_tree())

    def _with_store(self, tree_id: pygit2.Oid) -> str:
        """``tree_id`` with the base's ``.yoi`` tree where the checkout left it out, and any
        file the runner wrote under ``.yoi/`` over it (so it shows, and is refused)."""
        if self.checked_out == self.base_commit:
            return str(tree_id)
        base = self._repo[self._owner.tree_of(self.base_commit)].peel(pygit2.Tree)
        tree = self._repo[tree_id].peel(pygit2.Tree)
        written = _child(tree, STORE_DIR)
        if written is not None and written.filemode != _TREE_MODE:
            return str(tree_id)  # a file named .yoi: as it is (refused by the path policy)
        builder = self._repo.TreeBuilder(tree)
        builder.insert(STORE_DIR, base[STORE_DIR].id, _TREE_MODE)
        grafted = builder.write()
        if written is None:
            return str(grafted)
        changes: dict[str, Entry | None] = {
            f"{STORE_DIR}/{path}": (pygit2.Oid(hex=oid), mode)
            for path, mode, oid in self._owner.tree_entries(str(written.id))
        }
        try:
            edited = _edit_tree(self._repo, self._repo[grafted].peel(pygit2.Tree), changes, "")
        except PatchError:  # a file where the store has a directory, or the reverse
            return str(tree_id)  # every store file then shows as gone: refused all the same
        return str(edited if edited is not None else grafted)

    def workdir_diff(self) -> bytes:
        """Binary-capable patch of every change on disk vs the base commit (edits, new
        untracked files, deletions, mode changes), re-appliable with ``apply_to_index``."""
        base = self._owner.tree_of(self.base_commit)
        return self._owner.diff_trees(base, self.workdir_tree()).patch


_INDEX_REPO_CONFIG = "[core]\n\trepositoryformatversion = 0\n\tbare = true\n"


def _index_repo_ok(path: Path, common_dir: Path) -> bool:
    """``path`` is a private index repository over ``common_dir``'s objects."""
    try:
        return (
            os.readlink(path / "objects") == str((common_dir / "objects").resolve())
            and (path / "config").read_text() == _INDEX_REPO_CONFIG
            and (path / "HEAD").is_file()
            and (path / "refs").is_dir()
        )
    except OSError:
        return False


def _make_index_repo(path: Path, common_dir: Path) -> None:
    """A minimal bare repository at ``path`` (replacing whatever is there), written by
    hand: no template directory, hooks or config of the user's ``init`` is copied."""
    with _git_errors(f"cannot create the private index at {path}"):
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
        (path / "refs" / "heads").mkdir(parents=True)
        (path / "HEAD").write_text("ref: refs/heads/main\n")
        (path / "config").write_text(_INDEX_REPO_CONFIG)
        (path / "objects").symlink_to((common_dir / "objects").resolve(), target_is_directory=True)


def _identity(path: Path) -> cache.Key | None:
    try:
        return cache.stat_key(os.stat(path))
    except OSError:
        return None


def _reason(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else type(exc).__name__


class _DiffRepo:
    """A bare repository of yoi's own that reads the user's objects through an alternate,
    with its own config, so the diff text never depends on the user's settings. It lives
    under ``<git-common-dir>/yoi/cache/diff/`` and is made once (in a temporary directory,
    then renamed into place under a lock: a race or a crash leaves either the finished
    repository or nothing); one that does not carry exactly ``_DIFF_CONFIG`` is made again.

    libgit2 walks every entry of both trees to diff them, even subtrees they share (about
    0.1 s for one changed file among the 50,000 of a store of 10,000 tickets). So the
    diff is taken between two small trees holding only the entries that differ
    (``_changes``, which skips shared subtrees unopened): the same deltas, and the same
    rename pairs, since ``FIND_RENAMES`` pairs only added with deleted files. Those small
    trees are written to an object store in memory (``_MemoryObjects``), never to disk,
    and dropped after each diff."""

    STALE_S = 300.0  # an unfinished ``.diff-*`` directory older than this is a crash's

    def __init__(self, objects_dir: Path, home: Path):
        root = home / "diff"
        repo = self._open(root)
        if repo is None:
            self._create(home, root)
            repo = self._open(root)
            if repo is None:
                raise GitError(f"cannot prepare the diff repository in {root}")
        self._repo = repo
        self._config = root / "diff.git" / "config"
        self._config_key = _identity(self._config)
        self._memory = _MemoryObjects()
        with _git_errors("cannot prepare the diff repository"):
            odb = pygit2.Odb()
            odb.add_backend(self._memory, 1)  # the only writable one: writes stay here
            odb.add_disk_alternate(str(objects_dir))
            self._repo.set_odb(odb)

    def unchanged(self) -> bool:
        """Its config file is the one checked when it was opened (else: open it again)."""
        return _identity(self._config) == self._config_key

    @staticmethod
    def _open(root: Path) -> pygit2.Repository | None:
        try:
            repo = pygit2.Repository(str(root / "diff.git"))
            config = {key: repo.config[key] for key in (*_DIFF_CONFIG, "core.attributesFile")}
        except (pygit2.GitError, KeyError, OSError):
            return None
        expected = {key: str(value).lower() for key, value in _DIFF_CONFIG.items()}
        expected["core.attributesFile"] = str(root / "noattributes")
        if {key: str(value).lower() for key, value in config.items()} != {
            key: value.lower() for key, value in expected.items()
        } or not (root / "noattributes").is_file():
            return None
        return repo

    @classmethod
    def _create(cls, home: Path, root: Path) -> None:
        """Make the repository unless another process has: creators take turns under
        ``diff.lock``, so a finished repository is never set aside by a racing one."""
        with _git_errors(f"cannot create the diff repository in {root}"):
            home.mkdir(parents=True, exist_ok=True)
            with slots.held(home / "diff.lock"):
                if cls._open(root) is not None:  # made while this process waited
                    return
                now = time.time()
                for old in home.glob(".diff-*"):
                    with contextlib.suppress(OSError):
                        if now - old.lstat().st_mtime > cls.STALE_S:
                            shutil.rmtree(old)
                tmp = Path(tempfile.mkdtemp(prefix=".diff-", dir=home))
                try:
                    (tmp / "noattributes").write_bytes(b"")
                    pygit2.init_repository(str(tmp / "diff.git"), bare=True)
                    repo = pygit2.Repository(str(tmp / "diff.git"))
                    for key, value in _DIFF_CONFIG.items():
                        repo.config[key] = value
                    repo.config["core.attributesFile"] = str(root / "noattributes")
                    if root.exists():  # unusable (checked above): set aside, swept later
                        os.rename(root, home / f".diff-broken-{os.urandom(4).hex()}")
                    os.rename(tmp, root)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)

    def diff(self, base_tree: str, new_tree: str, changes: Changes | None = None) -> NormalizedDiff:
        with _git_errors(f"cannot diff {base_tree[:12]}..{new_tree[:12]}"):
            old, new = self._tree(base_tree), self._tree(new_tree)
            added, removed = changes if changes is not None else _changes(self._repo, old, new)
            try:
                small_old, small_new = self._small_tree(removed), self._small_tree(added)
                diff = small_old.diff_to_tree(
                    small_new, flags=DiffOption.SHOW_BINARY, context_lines=3, interhunk_lines=0
                )
                diff.find_similar(flags=DiffFind.FIND_RENAMES, rename_threshold=50)
                patches = [p for p in diff if p is not None]
            finally:
                self._memory.clear()
        identity = hashlib.sha256(f"yoi-diff-v1\n{old.id}\n{new.id}\n".encode())
        for patch in patches:
            identity.update(_without_binary_payload(patch))
        return NormalizedDiff(
            base_tree=str(old.id),
            new_tree=str(new.id),
            patch=b"".join(p.data for p in patches),
            files=tuple(_merge_typechanges([_file_change(p) for p in patches])),
            identity=identity.hexdigest(),
        )

    def _tree(self, hex_id: str) -> pygit2.Tree:
        return self._repo[_oid(hex_id, "tree")].peel(pygit2.Tree)

    def _small_tree(self, entries: list[TreeEntry]) -> pygit2.Tree:
        """A tree holding exactly ``entries`` (written to memory)."""
        changes: dict[str, Entry | None] = {p: (pygit2.Oid(hex=i), m) for p, m, i in entries}
        made = _edit_tree(self._repo, None, changes, "")
        return self._repo[made or self._repo.TreeBuilder().write()].peel(pygit2.Tree)


class _MemoryObjects(pygit2.OdbBackend):
    """An object store in memory: the writable backend of ``_DiffRepo``'s object
    database (the user's objects are a read-only alternate beside it)."""

    def __init__(self) -> None:
        super().__init__()
        self._objects: dict[pygit2.Oid, tuple[int, bytes]] = {}

    def clear(self) -> None:
        self._objects.clear()

    def read_cb(self, oid: pygit2.Oid) -> tuple[int, bytes]:
        return self._objects[oid]  # KeyError: not here (libgit2 asks the alternate)

    def read_header_cb(self, oid: pygit2.Oid) -> tuple[int, int]:
        kind, data = self._objects[oid]
        return kind, len(data)

    def read_prefix_cb(self, prefix: pygit2.Oid) -> tuple[int, bytes, pygit2.Oid]:
        raise KeyError(prefix)  # objects are only ever named in full here

    def exists_cb(self, oid: pygit2.Oid) -> bool:
        return oid in self._objects

    def exists_prefix_cb(self, prefix: pygit2.Oid) -> pygit2.Oid:
        raise KeyError(prefix)

    def write_cb(self, oid: pygit2.Oid, data: bytes, kind: int) -> None:
        self._objects[oid] = (kind, data)

    def refresh_cb(self) -> None:
        pass

    def __iter__(self) -> Iterator[pygit2.Oid]:
        return iter(list(self._objects))


def _without_binary_payload(patch: pygit2.Patch) -> bytes:
    data = patch.data
    if not patch.delta.is_binary:
        return data
    for marker in (b"\nGIT binary patch\n", b"\nBinary files "):
        cut = data.find(marker)
        if cut >= 0:
            return data[: cut + 1] + b"(binary)\n"
    return data


def _file_change(patch: pygit2.Patch) -> FileChange:
    delta = patch.delta
    status = delta.status_char()
    _, additions, deletions = patch.line_stats
    return FileChange(
        status=status,
        old_path=None if status == "A" else delta.old_file.path,
        new_path=None if status == "D" else delta.new_file.path,
        additions=additions,
        deletions=deletions,
        binary=bool(delta.is_binary),
        old_mode=int(delta.old_file.mode) or None,
        new_mode=int(delta.new_file.mode) or None,
    )


def _merge_typechanges(changes: list[FileChange]) -> list[FileChange]:
    """libgit2 prints a type change (file <-> symlink) as a delete and an add of the same
    path (the only form that re-applies); report it as one 'T' change."""
    merged: list[FileChange] = []
    for change in changes:
        prev = merged[-1] if merged else None
        if (
            prev
            and prev.status == "D"
            and change.status == "A"
            and (prev.old_path == change.new_path)
        ):
            merged[-1] = FileChange(
                status="T",
                old_path=prev.old_path,
                new_path=change.new_path,
                additions=change.additions,
                deletions=prev.deletions,
                binary=prev.binary or change.binary,
                old_mode=prev.old_mode,
                new_mode=change.new_mode,
            )
        else:
            merged.append(change)
    return merged
