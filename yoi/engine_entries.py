"""The thread entries the engine appends: `run` (a run's result) and `pause` (the
pause state and its next actions)."""

from __future__ import annotations

from typing import Any

from yoi import engine_records as rec
from yoi.thread import Entry


def pause_entry(pause: dict[str, Any]) -> Entry:
    lines = [
        f"{a['priority']}. {a['action']}" + (f" (`{a['command']}`)" if a.get("command") else "")
        for a in pause["prioritized_actions"]
    ]
    detail = f"{pause['detail']}\n\n" if pause.get("detail") else ""
    body = f"Paused: {pause['reason']}.\n\n{detail}Next actions:\n\n" + "\n".join(lines) + "\n"
    return Entry(
        kind="pause",
        author=rec.ENGINE_AUTHOR,
        at=str(pause["created_at"]),
        attrs=(("pause_id", str(pause["pause_id"])), ("reason", str(pause["reason"]))),
        body=body,
    )


def run_entry(record: dict[str, Any], bundle: dict[str, Any], now: str) -> Entry:
    lines = [
        f"Run {record['run_id']}: {record['gate_result']} ({record['gate_reason']}).",
        "",
        f"- runner status: {bundle['runner_status']}",
        f"- branch: `{record['branch']}`, commit: {record.get('commit_sha') or 'none'}",
    ]
    lines += [f"- gate {g['name']}: {g['result']} ({_first_line(g)})" for g in record["gates"]]
    return Entry(
        kind="run",
        author=rec.ENGINE_AUTHOR,
        at=now,
        attrs=(("run_id", str(record["run_id"])), ("result", str(record["gate_result"]))),
        body="\n".join(lines) + "\n",
    )


def _first_line(gate: dict[str, Any]) -> str:
    lines = str(gate.get("detail") or "").strip().splitlines()
    return lines[0][:200] if lines else ""
