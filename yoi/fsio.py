"""Crash-safe file primitives (notes/reliability.md §2). Used only by store.py and the
runtime-state modules; nothing else writes files under .yoi/.

- ``atomic_write``: temp file in the same directory, fsync, ``os.replace``, fsync dir.
- ``ensure_dir``: mkdir -p that refuses to pass through symlinks.
- ``read_bytes``: size-capped read that refuses symlinks.
- ``stage`` + ``sync_all_staged`` and ``fsync_dirs``: the halves of a batch of atomic
  writes (the journal's): every file of a batch is written before the first is synced.

A failed write raises ``StoreIOError``: a ``YoiError`` (the CLI prints it cleanly) that
is also an ``OSError`` (callers that handle OSError keep working). Temp files are
dot-prefixed ``*.tmp`` in the target's directory; readers and listings skip them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from stat import S_ISDIR, S_ISLNK

from yoi import faults
from yoi.errors import UsageError, YoiError

TMP_SUFFIX = ".tmp"
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def create_new(path: Path | str, mode: int = 0o600) -> int:
    """Open ``path`` for writing, created by this call (``FileExistsError`` otherwise; a
    symlink is not followed)."""
    return os.open(path, _NEW, mode)


def temp_file(directory: Path | str, prefix: str, suffix: str = TMP_SUFFIX) -> tuple[int, str]:
    """A new file ``<prefix><random><suffix>`` in ``directory``, created exclusively
    (mode 0600): ``tempfile.mkstemp`` without importing tempfile (and random)."""
    for _ in range(100):
        path = os.path.join(directory, f"{prefix}{os.urandom(6).hex()}{suffix}")
        try:
            return create_new(path), path
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")


def _tmp_in(directory: Path | str, name: str) -> tuple[int, str]:
    faults.io("write")
    return temp_file(directory, f".{name}.")


class StoreIOError(YoiError, OSError):
    """A file-system operation on the store failed (EIO, ENOSPC, EACCES...)."""

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        hint: str | None = None,
        code: int | None = None,
    ):
        super().__init__(message, where=where, hint=hint)
        self.errno = code


def io_error(action: str, path: Path | str, exc: OSError) -> StoreIOError:
    """``exc`` as a ``StoreIOError`` naming the file (kept as is if it already is one)."""
    if isinstance(exc, StoreIOError):
        return exc
    return StoreIOError(
        f"cannot {action}: {exc.strerror or exc}",
        where=str(path),
        hint="check free space and permissions, then retry",
        code=exc.errno,
    )


def fsync_dir(directory: Path | str) -> None:
    fsync_dirs([directory])


def _write_tmp(path: Path, data: bytes, mode: int, *, sync: bool = True) -> str:
    """A temp file beside ``path`` holding ``data`` (``stage`` + ``sync_staged``)."""
    fd, tmp = stage(path, data, mode=mode)
    try:
        if sync:
            sync_staged(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    return tmp


def stage(path: Path | str, data: bytes, *, mode: int = 0o644) -> tuple[int, str]:
    """The first half of a batch of atomic writes: a temp file beside ``path`` holding
    ``data``, not yet synced; returns its open descriptor and name. The caller syncs it
    (``sync_staged``) before it renames or links it into place, so the rule of
    ``atomic_write`` holds, while the fsyncs of a whole batch come after all of its
    files were written (the first one's file-system commit carries the others' too)."""
    directory, name = os.path.split(os.fspath(path))
    fd, tmp = _tmp_in(directory, name)
    fill(fd, tmp, data, mode=mode)
    return fd, tmp


def fill(fd: int, name: str, data: bytes, *, mode: int | None = None) -> None:
    """Write all of ``data`` to the new file ``name`` open as ``fd`` (then ``fchmod`` to
    ``mode``); on any failure the file is closed and removed, and the error raised."""
    try:
        faults.io("write")
        write_all(fd, data)
        if mode is not None:
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written (a write may take only part)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def sync_staged(fd: int) -> None:
    faults.io("fsync")
    os.fsync(fd)


def _each(calls: list[Callable[[], None]]) -> None:
    """Run every call, one after another; the first error is raised after all have run
    (a batch's other files still get their sync). From a thread pool these took the same
    wall time on this machine's disks and more CPU (docs/performance.md)."""
    errors: list[OSError] = []
    for call in calls:
        try:
            call()
        except OSError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def sync_all_staged(fds: Sequence[int], dirs: Sequence[Path | str] = ()) -> None:
    """``sync_staged`` for every descriptor of a batch (and ``fsync_dir`` for ``dirs``)."""
    for _fd in fds:
        faults.io("fsync")
    for directory in dirs:
        try:
            faults.io("fsync")
        except OSError as exc:
            raise io_error("sync the directory", directory, exc) from exc
    calls: list[Callable[[], None]] = [partial(os.fsync, fd) for fd in fds]
    _each(calls + [partial(_fsync_dir, d) for d in dirs])


def fsync_dirs(directories: Sequence[Path | str]) -> None:
    """``fsync_dir`` for every directory."""
    sync_all_staged([], directories)


def _fsync_dir(directory: Path | str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise io_error("sync the directory", directory, exc) from exc


def atomic_write(
    path: Path, data: bytes, *, mode: int = 0o644, sync_dir: bool = True, sync: bool = True
) -> None:
    """Replace ``path`` with ``data``: a crash leaves the old or the new file.

    ``sync=False`` (claim records only: docs/reliability.md): no fsync of the file or its
    directory. Every process still sees the old or the new file whole (the rename is
    atomic, and a killed process loses nothing it wrote); only an operating-system crash
    may leave the file empty or old, which its reader must take for what it is."""
    try:
        tmp = _write_tmp(path, data, mode, sync=sync)
        faults.crashpoint("fsio.tmp")
        try:
            faults.io("rename")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise io_error("write the file", path, exc) from exc
    if sync and sync_dir:
        fsync_dir(path.parent)


def _symlink_refusal(path: Path) -> UsageError:
    return UsageError(
        "refusing to write through a symlink inside the store",
        where=str(path),
        hint="remove the symlink; yoi stores only plain files and directories",
    )


def _own_mode(path: Path | str) -> int | None:
    """The mode of ``path`` itself (a symlink is not followed); None when nothing is
    there. One ``lstat``: both walks below ask it of every component."""
    try:
        return os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None


def _below(path: str, stop: str) -> list[str]:
    """The components of ``path`` below ``stop`` (``Path.relative_to(stop).parts`` on
    strings: these walks run for every path of every transaction)."""
    if path == stop:
        return []
    if not path.startswith(stop + "/"):
        raise ValueError(f"{path} is not inside {stop}")
    return [part for part in path[len(stop) + 1 :].split("/") if part and part != "."]


def check_no_symlinks(
    path: Path | str, *, stop: Path | str, checked: set[str] | None = None
) -> None:
    """Raise ``UsageError`` if a component of ``path`` below ``stop`` is a symlink
    (the final component included). Writes nothing. ``checked``: components the caller
    found fine already (skipped; the ones found fine here are added). One ``lstat`` per
    component."""
    current = os.fspath(stop)
    for part in _below(os.fspath(path), current):
        current = f"{current}/{part}"
        if checked is not None and current in checked:
            continue
        mode = _own_mode(current)
        if mode is None:
            return  # nothing there yet: nothing below it can be a link
        if S_ISLNK(mode):
            raise _symlink_refusal(Path(current))
        if checked is not None:
            checked.add(current)


def ensure_dir(
    path: Path | str,
    *,
    stop: Path | str,
    known: set[str] | None = None,
    made: set[str] | None = None,
) -> None:
    """``mkdir -p path`` below ``stop`` that refuses any symlinked component. ``known``:
    directories already checked by the caller's batch (skipped; ``path`` is added);
    ``made``: gets the parent of every directory created (to be synced by the caller).
    One ``lstat`` per component not yet known, like ``check_no_symlinks``."""
    target = os.fspath(path)
    if known is not None and target in known:
        return
    current = os.fspath(stop)
    for part in _below(target, current):
        parent, current = current, f"{current}/{part}"
        if known is not None and current in known:
            continue
        mode = _own_mode(current)
        if mode is not None and S_ISLNK(mode):
            raise _symlink_refusal(Path(current))
        if mode is None or not S_ISDIR(mode):
            try:
                faults.io("mkdir")
                os.mkdir(current)
                if made is not None:
                    made.add(parent)
            except FileExistsError:
                pass
            except OSError as exc:
                raise io_error("create the directory", current, exc) from exc
        if known is not None:
            known.add(current)


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
