"""Derived, never authoritative caches under ``<git-common-dir>/yoi/cache/``.

A cache file holds entries keyed by a file's identity: ``(st_mtime_ns, st_size,
st_ino, st_ctime_ns)``. A reader uses an entry only when the file's current ``stat``
gives the same key, so an edit, a replacement (new inode) or a ``touch`` that puts the
old mtime back (``utime`` moves the ctime) all miss. A key whose timestamps are too
close to the moment the file was read is *racy* (a later write in the same clock tick
could keep the key) and is not stored: it is re-read until it is older than the
filesystem's timestamp step (``is_racy``), as git does for its index.

Files are written with a temp file and ``os.replace`` (no fsync: losing a cache costs a
rebuild, nothing else). A file starts with a magic line, the payload length and its
CRC-32; a short, corrupted or foreign file, or one written by a different yoi, Python
or schema (the *fingerprint*), is ignored and rebuilt. ``YOI_CACHE=0`` turns caching
off. Payloads are ``marshal`` data: the fastest loader in the standard library for
plain dicts, lists, tuples, strings and ints, read only after the checksum matched.
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import os
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from yoi import __version__
from yoi.fsio import temp_file

CACHE_DIR = "cache"
MAGIC = b"yoi-cache 1\n"
_HEADER = struct.Struct("<QI")  # payload length, crc32
RACY_NS = 100_000_000  # ns timestamps: far more than a kernel clock tick
RACY_COARSE_NS = 2_000_000_000  # whole-second timestamps (filesystems with 1-2 s steps)
_SECOND = 1_000_000_000
MAX_BYTES = 1 << 30
_FINGERPRINT_FILES = (
    "cache.py",
    "cache_tickets.py",
    "cache_events.py",
    "cache_plan.py",
    "fastyaml.py",
    "fastticket.py",
    "fastschema.py",
    "output.py",
    "frontmatter.py",
    "model.py",
    "store.py",
    "events.py",
    "schema.py",
    "yamlio.py",
    "slug.py",
    "schemas/ticket.schema.json",
    "schemas/blocker_ref.schema.json",
    "schemas/event.schema.json",
    "schemas/plan_record.schema.json",
)

Key = tuple[int, int, int, int]


@contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection while tens of thousands of small containers are loaded and
    made (each full collection would re-scan all of them); the code run inside creates
    no reference cycles."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def enabled() -> bool:
    return os.environ.get("YOI_CACHE", "1") != "0"


def stat_key(st: os.stat_result) -> Key:
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def is_racy(key: Key, read_at_ns: int) -> bool:
    """True when the file changed so recently (relative to ``read_at_ns``, taken before
    the file was read) that a later write in the same timestamp step could keep its key.
    The step is a kernel clock tick where timestamps have nanoseconds, up to 2 s where
    they are whole seconds."""
    coarse = key[0] % _SECOND == 0 and key[3] % _SECOND == 0
    return max(key[0], key[3]) >= read_at_ns - (RACY_COARSE_NS if coarse else RACY_NS)


def now_ns() -> int:
    return time.time_ns()


_T = TypeVar("_T")


def by_identity(
    memo: dict[str, tuple[Key, _T]], path: str, make: Callable[[], _T | None]
) -> _T | None:
    """What ``make`` gives for the file or directory at ``path`` (not followed if a
    symlink), kept in this process's ``memo`` under its stat key by the rules of the cache
    files: a changed, replaced or touched path misses, a racy key is not kept. None when
    ``path`` is gone or ``make`` gives None (nothing kept)."""
    read_at = now_ns()
    try:
        key = stat_key(os.lstat(path))
    except OSError:
        return None
    hit = memo.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    value = make()
    if value is not None and not is_racy(key, read_at):
        memo[path] = (key, value)
    return value


_fingerprint: str | None = None


def fingerprint() -> str:
    """Changes whenever yoi, Python or a module/schema that shapes cached data changes."""
    global _fingerprint
    if _fingerprint is None:
        here = Path(__file__).parent
        parts = [__version__, sys.version, str(marshal.version)]
        for name in _FINGERPRINT_FILES:
            try:
                st = os.stat(here / name)
                parts.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
            except OSError:
                parts.append(f"{name}:-")
        _fingerprint = digest("\n".join(parts))
    return _fingerprint


def digest(text: str) -> str:
    """A 64-bit checksum of ``text`` in hex (zlib: no hashlib import on the hot path);
    it tells caches apart, it protects nothing."""
    data = text.encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def store_id(yoi_dir: Path) -> str:
    """Caches of different stores sharing one common dir (worktrees) stay apart."""
    return digest(str(yoi_dir))[:12]


def cache_path(runtime_dir: Path, yoi_dir: Path, name: str) -> Path:
    return runtime_dir / CACHE_DIR / f"{name}-{store_id(yoi_dir)}.bin"


# ---- deferred saves ------------------------------------------------------------------
# Inside ``deferred()`` (an engine run: every tick changes a few tickets and events, and
# would rewrite the caches each time), a save keeps the payload in memory and writes it
# at most once per ``FLUSH_EVERY_S`` per file, and when the outermost ``deferred`` ends.
# This process's loads see the kept payload. Any version of a cache file is correct
# (every entry is checked against its file's stat), so another process that reads the
# older file meanwhile only re-reads the files that changed since.
FLUSH_EVERY_S = 1.0
_PENDING: dict[Path, Any] = {}
_WRITTEN_AT: dict[Path, float] = {}
_depth = 0


@contextmanager
def deferred() -> Iterator[None]:
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            flush()


def flush() -> None:
    """Write every payload kept by ``deferred`` saves."""
    pending = list(_PENDING.items())
    _PENDING.clear()
    for path, data in pending:
        _write(path, data)


def load(path: Path) -> Any:
    """The payload of a cache file, or None when it is missing, damaged or foreign."""
    if not enabled():
        return None
    if path in _PENDING:
        return _PENDING[path]
    try:
        with open(path, "rb") as f:
            blob = f.read(MAX_BYTES)
    except OSError:
        return None
    start = len(MAGIC) + _HEADER.size
    if len(blob) < start or not blob.startswith(MAGIC):
        return None
    length, crc = _HEADER.unpack_from(blob, len(MAGIC))
    payload = memoryview(blob)[start:]
    if len(payload) != length or zlib.crc32(payload) != crc:
        return None
    try:
        stamp, data = marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return None
    return data if stamp == fingerprint() else None


def save(path: Path, data: Any) -> None:
    """Replace the cache file atomically; any failure only means no cache."""
    if not enabled():
        return
    if _depth:
        _PENDING[path] = data
        now = time.monotonic()
        if now - _WRITTEN_AT.get(path, -FLUSH_EVERY_S) < FLUSH_EVERY_S:
            return
        del _PENDING[path]
        _WRITTEN_AT[path] = now
    _write(path, data)


def _write(path: Path, data: Any) -> None:
    try:
        payload = marshal.dumps((fingerprint(), data))
    except ValueError:
        return  # not marshal-able data: never cache it
    blob = MAGIC + _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temp_file(path.parent, f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def drop(runtime_dir: Path) -> int:
    """Remove every cache file (``yoi`` never needs them); returns how many."""
    base = runtime_dir / CACHE_DIR
    for path in [p for p in _PENDING if p.parent == base]:
        del _PENDING[path]
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(base):
            if entry.name.endswith(".bin") and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed
