"""Crash-safe file primitives (notes/reliability.md §2). Used only by store.py and the
runtime-state modules; nothing else writes files under .yoi/.

- ``atomic_write``: temp file in the same directory, fsync, ``os.replace``, fsync dir.
- ``create_exclusive``: temp file, fsync, ``os.link`` into place (EEXIST = someone won).
- ``ensure_dir``: mkdir -p that refuses to pass through symlinks.
- ``read_bytes``: size-capped read that refuses symlinks.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from yoi import faults
from yoi.errors import UsageError, YoiError

TMP_SUFFIX = ".tmp"


def _tmp_in(directory: Path, name: str) -> tuple[int, str]:
    faults.io("write")
    return tempfile.mkstemp(prefix=f".{name}.", suffix=TMP_SUFFIX, dir=directory)


def fsync_dir(directory: Path) -> None:
    faults.io("fsync")
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_tmp(directory: Path, name: str, data: bytes, mode: int) -> str:
    fd, tmp = _tmp_in(directory, name)
    try:
        with os.fdopen(fd, "wb") as f:
            faults.io("write")
            f.write(data)
            f.flush()
            faults.io("fsync")
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data``: a crash leaves the old or the new file."""
    tmp = _write_tmp(path.parent, path.name, data, mode)
    try:
        faults.io("rename")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def create_exclusive(path: Path, data: bytes, *, mode: int = 0o644) -> bool:
    """Create ``path`` with full content only if it does not exist. True if we created it."""
    tmp = _write_tmp(path.parent, path.name, data, mode)
    try:
        faults.io("link")
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path.parent)
    return True


def ensure_dir(path: Path, *, stop: Path) -> None:
    """``mkdir -p path`` below ``stop`` that refuses any symlinked component."""
    rel = path.relative_to(stop)
    current = stop
    for part in rel.parts:
        current = current / part
        if current.is_symlink():
            raise UsageError(
                "refusing to write through a symlink inside the store",
                where=str(current),
                hint="remove the symlink; yoi stores only plain files and directories",
            )
        if not current.is_dir():
            faults.io("mkdir")
            with contextlib.suppress(FileExistsError):
                os.mkdir(current)


def read_bytes(path: Path, *, limit: int) -> bytes:
    """Read a regular file (no symlink), refusing files larger than ``limit``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if path.is_symlink():
            raise UsageError(
                "refusing to read a symlink inside the store",
                where=str(path),
                hint="replace the symlink with a regular file",
            ) from exc
        raise
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise SizeLimitError(path, size, limit)
        return f.read(limit + 1)


class SizeLimitError(UsageError):
    def __init__(self, path: Path, size: int, limit: int):
        super().__init__(
            f"file is {size} bytes; the limit is {limit}",
            where=str(path),
            hint="yoi records are small text files; move large content elsewhere",
        )


def remove_tree_entry(path: Path) -> None:
    """Remove a file (used for orphan temp files)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


class StoreIOError(YoiError):
    pass
