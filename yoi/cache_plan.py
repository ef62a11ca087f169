"""Plan records across processes: each plan directory's listing and each record's
validated data, keyed by stat identity (``cache.by_identity``: an edit, a replacement, a
``touch`` back to the old mtime all miss; racy keys are not kept), in this process and
in the cache file ``plan-records-<store>.bin`` under ``<git-common-dir>/yoi/cache/``.

Every accepted run adds an ``accepted_plan`` record, so a store that has run 10,000
tickets holds 10,000 plan records; without the file each command that reads the
relations (the engine's waiting and blocking rules, ``plan list``, ``orchestrate``)
parsed and validated all of them, seconds at that size. With it, a pass costs a
``lstat`` per plan directory and per record. The file is loaded once per process and
written after a pass over every directory that read something new (deferred in an
engine run, like the other caches); any version of it is correct, as every entry is
checked against its file.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

from yoi import cache
from yoi.errors import YoiError
from yoi.store import Store, record_names

NAME = "plan-records"

_NAMES: dict[str, tuple[cache.Key, tuple[str, ...]]] = {}  # plan dir -> record file names
_DATA: dict[str, tuple[cache.Key, dict[str, Any]]] = {}  # record file -> validated data
_LOADED: set[str] = set()  # stores whose cache file this process has read
_NEW: set[str] = set()  # stores with entries read since the file was last written


def dir_records(store: Store, base: str) -> list[tuple[str, dict[str, Any]]]:
    """(path, data) of each valid record in the plan directory ``base``, as listed."""
    out = []
    key = str(store.yoi_dir)
    for name in cache.by_identity(_NAMES, base, partial(_list, key, base)) or ():
        path = f"{base}/{name}"
        data = cache.by_identity(_DATA, path, partial(_read, key, store, path))
        if data is not None:
            out.append((path, data))
    return out


def load(store: Store) -> None:
    """Take in the cache file's entries (once per process and store); entries this
    process read itself are newer and kept."""
    key = str(store.yoi_dir)
    if key in _LOADED:
        return
    _LOADED.add(key)
    payload = cache.load(_path(store))
    if not isinstance(payload, dict):
        return
    with cache.gc_paused():
        for path, entry in payload.get("names", {}).items():
            _NAMES.setdefault(path, entry)
        for path, entry in payload.get("data", {}).items():
            _DATA.setdefault(path, entry)


def save(store: Store) -> None:
    """Write this store's entries when something new was read since the last save."""
    key = str(store.yoi_dir)
    if key not in _NEW:
        return
    _NEW.discard(key)
    prefix = f"{store.tickets_dir}/"
    payload = {
        "names": {p: e for p, e in _NAMES.items() if p.startswith(prefix)},
        "data": {p: e for p, e in _DATA.items() if p.startswith(prefix)},
    }
    cache.save(_path(store), payload)


def _path(store: Store) -> Path:
    return cache.cache_path(store.runtime_dir, store.yoi_dir, NAME)


def _list(key: str, base: str) -> tuple[str, ...] | None:
    _NEW.add(key)
    try:
        return tuple(record_names(os.listdir(base)))
    except OSError:
        return None


def _read(key: str, store: Store, path: str) -> dict[str, Any] | None:
    """The record's validated data; None when it is invalid or gone. Readers do not take
    the store lock, so a record listed a moment ago may have moved with its ticket (to
    done/) or been removed by a checkout: it is not there, as ``_list`` says of a
    directory that went."""
    _NEW.add(key)
    try:
        return store.read_record(Path(path), "plan_record")
    except (YoiError, FileNotFoundError, NotADirectoryError):
        return None
