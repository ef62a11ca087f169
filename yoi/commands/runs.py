"""`yoi runs list [ID]` and `yoi runs show RUN_ID [--patch]`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from yoi import engine_records
from yoi.errors import NotFoundError, UsageError, YoiError
from yoi.output import Output, table
from yoi.store import Store

_RUN_ID = re.compile(r"^run-[0-9a-z-]{1,95}$")


def _read(store: Store, path: Path, kind: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return store.read_record(path, kind)
    except YoiError:
        return None


def _ticket_dirs(store: Store, name: str | None) -> list[Path]:
    if name is None:
        return [tdir for _bucket, _slug, tdir in store.iter_ticket_dirs()]
    return [store.ticket_dir(store.resolve(name))]


def list_(store: Store, *, name: str | None = None) -> Output:
    records = []
    for tdir in _ticket_dirs(store, name):
        for run_dir in store.run_dirs(tdir):
            record = _read(store, run_dir / "run_record.yaml", "run_record")
            if record is not None:
                records.append(record)
    records.sort(key=lambda r: (str(r["created_at"]), str(r["run_id"])))
    rows = [
        [
            str(r["run_id"]),
            str(r["gate_result"]),
            str(r["ticket"]),
            str(r.get("commit_sha") or "")[:12],
            str(r["gate_reason"])[:60],
        ]
        for r in records
    ]
    text = table([["RUN", "RESULT", "TICKET", "COMMIT", "REASON"], *rows]) if rows else "no runs"
    return Output({"runs": records}, text)


def _find(store: Store, run_id: str) -> Path:
    if not _RUN_ID.match(run_id):
        raise UsageError(
            f"'{run_id}' is not a run id (run-<timestamp>-<hash>)",
            hint="`yoi runs list` shows them",
        )
    for _bucket, _slug, tdir in store.iter_ticket_dirs():
        run_dir = tdir / "runs" / run_id
        if run_dir.is_dir():
            return run_dir
    raise NotFoundError(f"no run '{run_id}'", hint="`yoi runs list` shows them")


def _pause_for(store: Store, tdir: Path, run_id: str) -> dict[str, Any] | None:
    found = [
        p
        for p in (_read(store, f, "pause_state") for f in store.record_files(tdir, "pause_states"))
        if p is not None and p.get("run_id") == run_id
    ]
    return max(found, key=lambda p: str(p["created_at"]), default=None)


def show(store: Store, run_id: str, *, patch: bool = False) -> Output:
    run_dir = _find(store, run_id)
    record = _read(store, run_dir / "run_record.yaml", "run_record")
    workorder = _read(store, run_dir / "workorder.yaml", "workorder")
    bundle = _read(store, run_dir / "output_bundle.yaml", "output_bundle")
    run: dict[str, Any] = (
        dict(record)
        if record is not None
        else {"run_id": run_id, "ticket": run_dir.parent.parent.name, "in_progress": True}
    )
    run["workorder"] = workorder
    run["output_bundle"] = bundle
    pause = _pause_for(store, run_dir.parent.parent, run_id)
    run["pause_state"] = pause
    patch_bytes = engine_records.bundle_patch(bundle) if bundle is not None else b""
    if patch:
        run["patch"] = patch_bytes.decode("utf-8", errors="replace")
        return Output({"run": run}, run["patch"], raw=patch_bytes)
    return Output({"run": run}, _human(store, run, pause))


def _human(store: Store, run: dict[str, Any], pause: dict[str, Any] | None) -> str:
    if run.get("in_progress"):
        state = "in progress" if run["output_bundle"] is None else "awaiting gates"
        return f"{run['run_id']}  [{state}]  ticket {run['ticket']}"
    lines = [
        f"{run['run_id']}  [{run['gate_result']}]  ticket {run['ticket']}",
        f"  reason: {run['gate_reason']}",
        f"  runner status: {run.get('runner_status') or '-'}",
        f"  branch: {run['branch']}  commit: {run.get('commit_sha') or 'none'}",
        f"  base commit: {run.get('base_commit') or '-'}",
        f"  started {run['started_at']}, finished {run['finished_at']}",
    ]
    if run.get("backup_ref"):
        lines.append(f"  previous tip kept at {run['backup_ref']}")
    gates = [
        [
            str(g["name"]),
            str(g["result"]),
            str(g["detail"]).splitlines()[0][:80] if g["detail"] else "",
        ]
        for g in run["gates"]
    ]
    if gates:
        lines += [
            "  gates:",
            *("    " + line for line in table([["GATE", "RESULT", "DETAIL"], *gates]).splitlines()),
        ]
    if pause is not None:
        lines.append(f"  next actions ({pause['reason']}):")
        for a in pause["prioritized_actions"]:
            cmd = f"  `{a['command']}`" if a.get("command") else ""
            lines.append(f"    {a['priority']}. {a['action']}{cmd}")
    lines.append(f"  patch: yoi runs show {run['run_id']} --patch")
    return "\n".join(lines)
