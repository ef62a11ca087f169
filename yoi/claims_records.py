"""Claim records on disk: ids, timestamps, owner liveness, status, and reading and
writing ``<runtime>/claims/<RESOURCE_TYPE>-<resource_id>.yaml`` (schema claim_record).
The operations on claims are in ``yoi.claims``."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from yoi import bounded, fsio, schema
from yoi import clock as yclock

Clock = Callable[[], float]  # seconds since the epoch

RESOURCE_TYPES = ("EVENT", "WORKORDER")
CLAIMS_DIR = "claims"
MAX_CLAIM_BYTES = 64 * 1024


def new_owner_id() -> str:
    """``<hostname>:<pid>:<random>``: unique per engine instance."""
    return f"{hostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def hostname() -> str:
    """This host's name: ``socket.gethostname()``, which is uname's node name where
    there is one (read directly: importing socket costs a process ~3 ms)."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().nodename)
    import socket

    return socket.gethostname()


def format_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    return yclock.parse_ts(text).timestamp()


def pid_alive(pid: int) -> bool:
    """True unless ``pid`` is certainly gone (no such process, or a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    return True


@dataclass(frozen=True, slots=True)
class Claim:
    """A claim as its holder knows it: the fencing token is ``claim_version``."""

    resource_type: str
    resource_id: str
    owner_id: str
    claim_version: int
    lease_expires_at: float

    @property
    def name(self) -> str:
        return f"{self.resource_type}-{self.resource_id}"


def status_of(record: dict[str, Any], now: float | None = None) -> str:
    """held | expired | dead-owner | released, at ``now`` (default: the current time)."""
    return _status(record, time.time() if now is None else now)


def _status(record: dict[str, Any], now: float) -> str:
    if record.get("released"):
        return "released"
    if _owner_dead_here(record):
        return "dead-owner"
    if parse_time(str(record["lease_expires_at"])) <= now:
        return "expired"
    return "held"


def _owner_dead_here(record: dict[str, Any]) -> bool:
    pid = record.get("pid")
    if record.get("host") != hostname() or not isinstance(pid, int):
        return False
    return pid != os.getpid() and not pid_alive(pid)


def dump_record(record: dict[str, Any]) -> bytes:
    """Claim records are written as JSON (which is YAML): they are read and written
    under the store lock on every fenced write, so parsing must be fast."""
    return (json.dumps(record, indent=2) + "\n").encode("utf-8")


def read_record(path: Path) -> dict[str, Any] | None:
    """A validated claim record, or ``None`` when the file does not exist."""
    try:
        data = fsio.read_bytes(path, limit=MAX_CLAIM_BYTES)
    except FileNotFoundError:
        return None
    known = _READ.get(data)
    if known is not None:
        return dict(known)  # flat: a shallow copy is a copy
    text = data.decode("utf-8", errors="replace")
    try:
        record = json.loads(text)
    except ValueError:  # not as yoi writes it: the YAML reader says what is wrong
        from yoi import yamlio

        record = yamlio.load_plain(text, path=str(path))
    schema.check("claim_record", record, str(path))
    assert isinstance(record, dict)
    bounded.put(_READ, data, dict(record), 256)
    return record


# Valid claim records by their bytes: an engine reads its claim five or six times per
# run (the checks before taking it, the fence of each commit, the release), and the
# same bytes are the same record. Claim records are flat (no nested values).
_READ: dict[bytes, dict[str, Any]] = {}
