"""What one tick did (SPEC §7 `engine tick` JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IDLE, PROCESSED, DEFERRED = "idle", "processed", "deferred"


@dataclass(frozen=True, slots=True)
class TickResult:
    outcome: str  # idle | processed | deferred
    event_id: str | None = None
    ticket: str | None = None
    reason: str | None = None
    run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "event_id": self.event_id,
            "ticket": self.ticket,
            "reason": self.reason,
            "run_id": self.run_id,
        }
