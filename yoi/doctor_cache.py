"""A content-addressed cache of per-file check results, so a second ``yoi doctor`` over a
large store costs a read and a hash per file instead of a YAML parse and a schema check.

Derived data, never authoritative: it lives in the runtime dir
(``<git-common-dir>/yoi/cache/doctor.json``), is keyed by the file's kind and exact bytes,
and is thrown away whenever yoi's version, a schema or a parsing module changes (the
fingerprint). ``YOI_DOCTOR_CACHE=0`` turns it off. A cache that does not load is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yoi import __version__, fsio, schema
from yoi.errors import YoiError

CACHE_FILE = "doctor.json"
MAX_CACHE_BYTES = 512 * 1024 * 1024
MAX_ENTRIES = 1_000_000
_MODULES = ("yamlio", "thread", "schema", "slug", "doctor_records")


@dataclass(frozen=True, slots=True)
class Checked:
    """The result of checking one file's content: its problems (pointer, message,
    severity) and the fields the cross-record checks need (None if it did not parse)."""

    valid: bool
    problems: tuple[tuple[str, str, str], ...]
    data: dict[str, Any] | None

    def encode(self) -> list[Any]:
        return [self.valid, [list(p) for p in self.problems], self.data]

    @classmethod
    def decode(cls, raw: list[Any]) -> Checked:
        valid, problems, data = raw
        return cls(bool(valid), tuple((str(a), str(b), str(c)) for a, b, c in problems), data)


def key(kind: str, content: bytes) -> str:
    return hashlib.sha256(kind.encode() + b"\0" + content).hexdigest()[:40]


def fingerprint() -> str:
    """Changes whenever a check could give a different answer for the same bytes."""
    digest = hashlib.sha256(__version__.encode())
    for kind in schema.KINDS:
        digest.update(schema.schema_text(kind).encode())
    here = Path(__file__).parent
    for name in _MODULES:
        with contextlib.suppress(OSError):
            digest.update((here / f"{name}.py").read_bytes())
    return digest.hexdigest()


@dataclass
class ParseCache:
    path: Path | None
    stamp: str = ""
    entries: dict[str, list[Any]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    added: int = 0

    @classmethod
    def open(cls, runtime_cache_dir: Path | None) -> ParseCache:
        if runtime_cache_dir is None or os.environ.get("YOI_DOCTOR_CACHE", "1") == "0":
            return cls(None)
        cache = cls(runtime_cache_dir / CACHE_FILE, fingerprint())
        with contextlib.suppress(OSError, YoiError, ValueError, TypeError):
            doc = json.loads(fsio.read_bytes(cache.path, limit=MAX_CACHE_BYTES))  # type: ignore[arg-type]
            if doc.get("fingerprint") == cache.stamp and isinstance(doc.get("entries"), dict):
                cache.entries = doc["entries"]
        return cache

    def get(self, k: str) -> Checked | None:
        raw = self.entries.get(k)
        if raw is None:
            return None
        try:
            checked = Checked.decode(raw)
        except (TypeError, ValueError):
            return None
        self.used.add(k)
        return checked

    def put(self, k: str, checked: Checked) -> None:
        if self.path is None:
            return
        self.entries[k] = checked.encode()
        self.used.add(k)
        self.added += 1

    def save(self, *, prune: bool) -> None:
        """Write the cache if it gained entries; ``prune`` keeps only the ones used by
        this (store-wide) run, so deleted files do not linger."""
        if self.path is None or not self.added:
            return
        entries = (
            {k: v for k, v in self.entries.items() if k in self.used} if prune else (self.entries)
        )
        if len(entries) > MAX_ENTRIES:
            entries = {k: entries[k] for k in self.used if k in entries}
        body = json.dumps(
            {"fingerprint": self.stamp, "entries": entries}, separators=(",", ":")
        ).encode()
        with contextlib.suppress(OSError, YoiError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fsio.atomic_write(self.path, body, sync_dir=False)
