"""Where ``yoi doctor`` reads the store from: the working tree, the index (``--staged``)
or a commit (``--against REF``).

A source lists every path under ``.yoi/`` (repository-relative, POSIX) with its kind and
reads the bytes of many files at once. Git sources use the git CLI through ``yoi.proc``:
``ls-files -s`` / ``ls-tree -r`` for the listing and one ``cat-file --batch`` process for
the contents, so a commit's store is read in two process launches.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from yoi import fsio, proc
from yoi.errors import GitError, UsageError, YoiError

STORE_PREFIX = ".yoi/"
GIT_TIMEOUT_S = 300.0
_MAX_BATCH_OUTPUT = 1 << 34  # cat-file output is checked for truncation, never capped
_NULL_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


class Kind(StrEnum):
    FILE = "file"
    SYMLINK = "symlink"
    OTHER = "other"  # a fifo, socket, device or submodule
    UNMERGED = "unmerged"  # an index entry with conflict stages


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str  # repository-relative POSIX path, starting with ".yoi/"
    kind: Kind
    oid: str | None = None  # blob id for git sources


class Source(Protocol):
    label: str

    def entries(self) -> list[FileEntry]: ...

    def read_many(self, paths: Iterable[str], limit: int) -> dict[str, bytes | YoiError]: ...


# ----------------------------------------------------------------------------- git CLI


def git(
    root: Path,
    *args: str,
    stdin: bytes | None = None,
    index_file: str | None = None,
    max_output: int = proc.DEFAULT_MAX_OUTPUT,
) -> proc.Completed:
    """Run the git CLI (no hooks, no fsmonitor) in ``root``; raise ``GitError`` on failure."""
    env = proc.git_env()
    if index_file:
        env["GIT_INDEX_FILE"] = index_file
    done = proc.run(
        [*proc.GIT_SAFE_ARGS, *args],
        cwd=root,
        env=env,
        timeout_s=GIT_TIMEOUT_S,
        max_output=max_output,
        stdin=stdin,
    )
    if not done.ok:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = detail[-1] if detail else f"exit {done.returncode}"
        raise GitError(f"git {args[0]} failed: {reason}", where=str(root))
    return done


def index_file_from_env() -> str | None:
    """The index git is committing from, when run inside a hook (``git commit -a``,
    ``git commit <paths>`` use a temporary index named by ``GIT_INDEX_FILE``)."""
    value = os.environ.get("GIT_INDEX_FILE")
    return str(Path(value).resolve()) if value else None


def resolve_tree(root: Path, ref: str) -> str:
    """The tree id of ``ref``; a clear usage error when it does not name a commit."""
    if ref.startswith("-"):
        raise UsageError(f"'{ref}' is not a git revision")
    try:
        return (
            git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{tree}}")
            .stdout.decode("ascii")
            .strip()
        )
    except GitError:
        raise UsageError(
            f"unknown git revision '{ref}'",
            where=str(root),
            hint="give a branch, tag or commit (e.g. origin/main); `git fetch` may be needed",
        ) from None


def resolve_commit(root: Path, ref: str) -> str | None:
    try:
        out = git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").stdout
    except GitError:
        return None
    return out.decode("ascii").strip() or None


def merge_base(root: Path, ref: str) -> str:
    """The commit ``--against REF`` compares with: the merge base of REF and HEAD (REF
    itself once REF is merged), or REF when there is no common history or no HEAD."""
    commit = resolve_commit(root, ref)
    if commit is None:
        return resolve_tree(root, ref)
    try:
        out = git(root, "merge-base", commit, "HEAD").stdout.decode("ascii").strip()
    except GitError:
        return commit
    return out or commit


def changed_paths(root: Path, base: str, *, staged: bool, index_file: str | None) -> set[str]:
    """Paths under .yoi/ that differ between ``base`` and the working tree (or index)."""
    args = ["diff", "--name-only", "-z", "--no-renames", "--no-ext-diff", "--no-textconv"]
    if staged:
        args.append("--cached")
    out = git(
        root, *args, base, "--", ".yoi", index_file=index_file, max_output=_MAX_BATCH_OUTPUT
    ).stdout
    return {p for p in out.decode("utf-8", "surrogateescape").split("\0") if p}


def head_tree(root: Path) -> str:
    """HEAD's tree, or the empty tree in a repository without commits."""
    try:
        return resolve_tree(root, "HEAD")
    except UsageError:
        return _NULL_TREE


def cat_blobs(root: Path, oids: Iterable[str]) -> dict[str, bytes]:
    """The contents of many blobs, read by one ``git cat-file --batch``."""
    wanted = list(dict.fromkeys(oids))
    if not wanted:
        return {}
    done = git(
        root,
        "cat-file",
        "--batch",
        stdin="".join(f"{o}\n" for o in wanted).encode(),
        max_output=_MAX_BATCH_OUTPUT,
    )
    if done.truncated:
        raise GitError("git cat-file output was truncated", where=str(root))
    out: dict[str, bytes] = {}
    data, pos = done.stdout, 0
    for oid in wanted:
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        pos = end + 1
        if len(header) != 3:  # "<oid> missing"
            continue
        size = int(header[2])
        out[oid] = data[pos : pos + size]
        pos += size + 1
    return out


def _mode_kind(mode: str) -> Kind:
    if mode in ("100644", "100755"):
        return Kind.FILE
    return Kind.SYMLINK if mode == "120000" else Kind.OTHER


class _GitSource:
    """Shared reading for the index and tree sources."""

    label = "git"

    def __init__(self, root: Path, entries: list[FileEntry]):
        self.root = root
        self._entries = entries
        self._by_path = {e.path: e for e in entries}

    def entries(self) -> list[FileEntry]:
        return list(self._entries)

    def read_many(self, paths: Iterable[str], limit: int) -> dict[str, bytes | YoiError]:
        oids = {p: self._by_path[p].oid for p in paths if p in self._by_path}
        blobs = cat_blobs(self.root, (o for o in oids.values() if o))
        out: dict[str, bytes | YoiError] = {}
        for path, oid in oids.items():
            blob = blobs.get(oid or "")
            if blob is None:
                out[path] = GitError(f"blob {oid} is missing", where=path)
            elif len(blob) > limit:
                out[path] = fsio.SizeLimitError(Path(path), len(blob), limit)
            else:
                out[path] = blob
        return out


class IndexSource(_GitSource):
    """The staged versions of the files under .yoi/ (``git ls-files -s``)."""

    def __init__(self, root: Path, *, index_file: str | None = None):
        self.index_file = index_file
        out = git(
            root,
            "ls-files",
            "-s",
            "-z",
            "--",
            ".yoi",
            index_file=index_file,
            max_output=_MAX_BATCH_OUTPUT,
        ).stdout
        entries: dict[str, FileEntry] = {}
        for record in out.decode("utf-8", "surrogateescape").split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            mode, oid, stage = meta.split()
            if stage != "0":
                entries[path] = FileEntry(path, Kind.UNMERGED)
            else:
                entries[path] = FileEntry(path, _mode_kind(mode), oid)
        super().__init__(root, sorted(entries.values(), key=lambda e: e.path))
        self.label = "index"


class TreeSource(_GitSource):
    """The files under .yoi/ in a commit or tree (``git ls-tree -r``)."""

    def __init__(self, root: Path, treeish: str, *, label: str | None = None):
        out = git(
            root,
            "ls-tree",
            "-r",
            "-z",
            "--full-tree",
            treeish,
            "--",
            ".yoi",
            max_output=_MAX_BATCH_OUTPUT,
        ).stdout
        entries = []
        for record in out.decode("utf-8", "surrogateescape").split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            mode, _type, oid = meta.split()
            entries.append(FileEntry(path, _mode_kind(mode), oid))
        super().__init__(root, sorted(entries, key=lambda e: e.path))
        self.label = label or treeish


class WorktreeSource:
    """The files under .yoi/ on disk. Walks without following symlinks; reads with
    ``O_NOFOLLOW`` and a size cap (the store's read primitive)."""

    label = "working tree"

    def __init__(self, root: Path, yoi_dir: Path):
        self.root = root
        self.yoi_dir = yoi_dir
        self._entries = sorted(self._walk(), key=lambda e: e.path)

    def _rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return STORE_PREFIX + path.relative_to(self.yoi_dir).as_posix()

    def _walk(self) -> list[FileEntry]:
        out: list[FileEntry] = []
        stack = [self.yoi_dir]
        while stack:
            directory = stack.pop()
            with os.scandir(directory) as it:
                for item in it:
                    path = Path(item.path)
                    if item.is_symlink():
                        out.append(FileEntry(self._rel(path), Kind.SYMLINK))
                    elif item.is_dir(follow_symlinks=False):
                        stack.append(path)
                    elif item.is_file(follow_symlinks=False):
                        out.append(FileEntry(self._rel(path), Kind.FILE))
                    else:
                        out.append(FileEntry(self._rel(path), Kind.OTHER))
        return out

    def entries(self) -> list[FileEntry]:
        return list(self._entries)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def read_many(self, paths: Iterable[str], limit: int) -> dict[str, bytes | YoiError]:
        out: dict[str, bytes | YoiError] = {}
        for rel in paths:
            try:
                out[rel] = fsio.read_bytes(self.path(rel), limit=limit)
            except YoiError as exc:
                out[rel] = exc
            except OSError as exc:
                out[rel] = YoiError(f"cannot read: {exc.strerror or exc}", where=rel)
        return out


def read_one(source: Source, path: str, limit: int) -> bytes | YoiError:
    return source.read_many([path], limit).get(path, YoiError("not found", where=path))


def by_path(entries: Iterable[FileEntry]) -> Mapping[str, FileEntry]:
    return {e.path: e for e in entries}
