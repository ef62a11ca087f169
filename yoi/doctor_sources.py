"""Where ``yoi doctor`` reads the store from: the working tree, the index (``--staged``)
or a commit (``--against REF``).

A source lists every path under ``.yoi/`` (repository-relative, POSIX) with its kind and
reads the bytes of many files at once. Git sources use the git CLI (``doctor_git``):
``ls-files -s`` / ``ls-tree -r`` for the listing and one ``cat-file --batch`` process for
the contents, so a commit's store is read in two process launches.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from yoi import fsio
from yoi.doctor_git import MAX_BATCH_OUTPUT, cat_blobs, git
from yoi.errors import GitError, YoiError

STORE_PREFIX = ".yoi/"


class Kind(StrEnum):
    FILE = "file"
    SYMLINK = "symlink"
    OTHER = "other"  # a fifo, socket, device or submodule
    UNMERGED = "unmerged"  # an index entry with conflict stages
    UNREADABLE = "unreadable"  # a directory that cannot be listed


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str  # repository-relative POSIX path, starting with ".yoi/"
    kind: Kind
    oid: str | None = None  # blob id for git sources


class Source(Protocol):
    label: str

    def entries(self) -> list[FileEntry]: ...

    def read_many(self, paths: Iterable[str], limit: int) -> dict[str, bytes | YoiError]: ...


def _mode_kind(mode: str) -> Kind:
    if mode in ("100644", "100755"):
        return Kind.FILE
    return Kind.SYMLINK if mode == "120000" else Kind.OTHER


def _kind(item: os.DirEntry[str]) -> Kind:
    if item.is_symlink():
        return Kind.SYMLINK
    return Kind.FILE if item.is_file(follow_symlinks=False) else Kind.OTHER


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
            max_output=MAX_BATCH_OUTPUT,
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
            max_output=MAX_BATCH_OUTPUT,
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
            try:
                items = list(os.scandir(directory))
            except FileNotFoundError:
                continue  # removed while we walked (a concurrent bucket move)
            except OSError:
                out.append(FileEntry(self._rel(directory), Kind.UNREADABLE))
                continue
            for item in items:
                path = Path(item.path)
                if item.is_dir(follow_symlinks=False):
                    stack.append(path)
                else:
                    out.append(FileEntry(self._rel(path), _kind(item)))
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
