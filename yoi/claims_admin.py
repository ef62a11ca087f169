"""Claims as an administrator sees them: list, stale, held, and release by name (for
``yoi claims list|stale|release``)."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import fsio, schema
from yoi.claims_records import (
    CLAIMS_DIR,
    Clock,
    dump_record,
    format_time,
    parse_time,
    read_record,
    status_of,
)
from yoi.errors import UsageError

if TYPE_CHECKING:
    from yoi.store import Store


@dataclass(frozen=True, slots=True)
class ClaimInfo:
    """A claim record as found on disk, with its status at ``now``."""

    path: Path
    record: dict[str, Any]
    status: str  # held | expired | dead-owner | released

    def as_dict(self) -> dict[str, Any]:
        return {**self.record, "status": self.status, "path": str(self.path)}


def _all_records(store: Store) -> list[tuple[Path, dict[str, Any]]]:
    base = store.runtime_dir / CLAIMS_DIR
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if name.startswith(".") or not name.endswith(".yaml"):
            continue
        with contextlib.suppress(Exception):
            record = read_record(base / name)
            if record is not None:
                out.append((base / name, record))
    return out


def list_claims(store: Store, *, now: float | None = None) -> list[ClaimInfo]:
    """Every readable claim record with its status (held, expired, dead-owner, released)."""
    at = time.time() if now is None else now
    return [ClaimInfo(p, r, status_of(r, at)) for p, r in _all_records(store)]


def stale_claims(store: Store, *, now: float | None = None) -> list[ClaimInfo]:
    """Claims that are not released but may be taken over now (expired or dead owner)."""
    return [c for c in list_claims(store, now=now) if c.status in ("expired", "dead-owner")]


def held(store: Store, resource_type: str, resource_id: str, *, now: float | None = None) -> bool:
    """True when a live, unexpired owner holds the claim."""
    path = store.runtime_dir / CLAIMS_DIR / f"{resource_type}-{resource_id}.yaml"
    try:
        record = read_record(path)
    except Exception:
        return False
    at = time.time() if now is None else now
    return record is not None and status_of(record, at) == "held"


def release_by_name(
    store: Store, name: str, *, force: bool = False, clock: Clock | None = None
) -> ClaimInfo:
    """Release a claim by file stem (``EVENT-ev-...``) or resource id, for
    ``yoi claims release``. A held claim needs ``force``. The version is kept."""
    matches = [(p, r) for p, r in _all_records(store) if name in (p.stem, str(r["resource_id"]))]
    if not matches:
        raise UsageError(f"no claim '{name}'", hint="`yoi claims list` shows them")
    path, record = matches[0]
    with store.locked():
        record = read_record(path) or record
        now = (clock or time.time)()
        status = status_of(record, now)
        if status == "held" and not force:
            raise UsageError(
                f"claim '{path.stem}' is held by {record['owner_id']}",
                hint="wait for its lease to expire, or pass --force",
            )
        if status != "released":
            record = {
                **record,
                "released": True,
                "heartbeat_at": format_time(now),
                "lease_expires_at": format_time(
                    min(now, parse_time(str(record["lease_expires_at"])))
                ),
            }
            schema.check("claim_record", record, str(path))
            fsio.atomic_write(path, dump_record(record), sync=False)  # as yoi.claims does
        return ClaimInfo(path, record, "released")
