"""The JSON Schemas and yoi.schema: valid examples pass, invalid ones give exact pointers."""

from __future__ import annotations

import copy
import datetime
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from yoi import schema
from yoi.errors import InvalidRecordError, UsageError

ROOT = Path(__file__).resolve().parent.parent
SLUG = "20261120-100000-add-retry-to-the-http-client"
OTHER = "20261118-093000-split-config-loader"
SUFFIX = "20261120113000-1a2b3c4d5e"
SHA = "3f2c9a1b7e4d5f60718293a4b5c6d7e8f9012345"
BASE = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a291807"

# Realistic valid records, one per kind. They double as documentation of the formats.
VALID: dict[str, dict[str, Any]] = {
    "ticket": {
        "title": "Add retry to the HTTP client",
        "state": "queued",
        "created_at": "2026-11-20T10:00:00Z",
        "updated_at": "2026-11-20T11:30:00Z",
        "acceptance_criteria": [
            "GET requests are retried up to 3 times on 502/503/504",
            "tests cover the retry and the give-up path",
        ],
        "importance": 3,
        "urgency": 2,
        "labels": ["http", "area:client"],
        "assignee": None,
        "base_ref": "main",
        "runner": "default",
        "budget_ms": 600000,
        "context_paths": ["src/http/client.py", "tests/test_client.py"],
        "patch_file": None,
        "blocked_on": [
            {
                "blocker_id": "b1",
                "kind": "DESIGN_DECISION",
                "description": "Should POST be retried too?",
                "resolved": True,
                "created_at": "2026-11-20T10:05:00Z",
                "resolved_at": "2026-11-20T11:00:00Z",
            }
        ],
        "blocked_reason": None,
        "planning_reason": None,
        "queued_by": "alice",
        "queued_at": "2026-11-20T11:30:00Z",
        "branch": None,
        "last_run": None,
        "x-jira": "HTTP-42",
    },
    "blocker_ref": {
        "blocker_id": "b2",
        "kind": "ENVIRONMENT_ACCESS",
        "description": "The staging API key is needed to run the integration tests",
        "resolved": False,
        "created_at": "2026-11-20T10:05:00Z",
        "resolved_at": None,
    },
    "event": {
        "event_id": f"ev-{SUFFIX}",
        "type": "TICKET_READY",
        "ticket": SLUG,
        "created_at": "2026-11-20T11:30:00Z",
        "source": "cli",
        "dedup_key": f"TICKET_READY:{SLUG}:2026-11-20T11:30:00Z",
        "processed": True,
        "processed_at": "2026-11-20T11:31:02.250000Z",
        "processed_reason": "EXECUTED",
        "run_id": f"run-{SUFFIX}",
    },
    "context_snapshot": {
        "snapshot_id": f"snap-{SUFFIX}",
        "ticket": SLUG,
        "metadata": {"commit_sha": BASE, "base_ref": "main", "tracked_files": 42},
        "related_yield_refs": [],
        "full_prompt_text": "# Ticket: Add retry to the HTTP client\n\n## Acceptance criteria\n",
        "created_at": "2026-11-20T11:31:00Z",
    },
    "workorder": {
        "work_order_id": f"wo-{SUFFIX}",
        "ticket": SLUG,
        "event_id": f"ev-{SUFFIX}",
        "run_id": f"run-{SUFFIX}",
        "diazotroph_type": "PATCH_DIAZOTROPH",
        "context_snapshot_id": f"snap-{SUFFIX}",
        "branch_name": f"yoi/{SLUG}",
        "budget_ms": 600000,
        "runner": "default",
        "status": "EXECUTED",
        "created_at": "2026-11-20T11:31:00Z",
        "executed_at": "2026-11-20T11:31:02Z",
    },
    "output_bundle": {
        "output_id": f"out-{SUFFIX}",
        "ticket": SLUG,
        "work_order_id": f"wo-{SUFFIX}",
        "runner_status": "COMPLETED",
        "title": "Add retry to the HTTP client",
        "metadata": {
            "branch_name": f"yoi/{SLUG}",
            "pr_description_draft": "Retries GET on 502/503/504 (up to 3 times).",
            "commit_sha": SHA,
            "base_commit": BASE,
            "content_encoding": "utf-8",
            "change_notes": ["src/http/client.py: retry loop around send()"],
            "files": [{"path": "src/http/client.py", "status": "M"}],
            "additions": 12,
            "deletions": 2,
        },
        "content": "diff --git a/src/http/client.py b/src/http/client.py\n",
        "notes": "runner exited 0; patch from YOI_PATCH_OUT",
        "created_at": "2026-11-20T11:31:01Z",
    },
    "run_record": {
        "run_id": f"run-{SUFFIX}",
        "work_order_id": f"wo-{SUFFIX}",
        "ticket": SLUG,
        "output_id": f"out-{SUFFIX}",
        "gate_result": "PASS",
        "gate_reason": "all 8 gates passed",
        "gates": [
            {"name": "bundle_schema", "result": "PASS", "detail": "valid", "kind": "builtin"},
            {
                "name": "tests",
                "result": "PASS",
                "detail": "exit 0",
                "kind": "command",
                "exit_code": 0,
                "duration_ms": 5310,
                "log_tail": "12 passed in 4.9s\n",
                "timed_out": False,
            },
        ],
        "commit_sha": SHA,
        "branch": f"yoi/{SLUG}",
        "started_at": "2026-11-20T11:31:00Z",
        "finished_at": "2026-11-20T11:31:09Z",
        "created_at": "2026-11-20T11:31:09Z",
        "runner_status": "COMPLETED",
        "base_commit": BASE,
        "backup_ref": None,
        "patch_sha256": "ab" * 32,
    },
    "pause_state": {
        "pause_id": "pause-20261120113109-run_complete-a1b2c3".replace("_", "-"),
        "ticket": SLUG,
        "reason": "RUN_COMPLETE",
        "prioritized_actions": [
            {
                "priority": 1,
                "action": f"review branch yoi/{SLUG}",
                "command": f"git log yoi/{SLUG}",
            },
            {"priority": 2, "action": "confirm the objective is met"},
        ],
        "created_at": "2026-11-20T11:31:09Z",
        "run_id": f"run-{SUFFIX}",
        "detail": "gates passed",
    },
    "claim_record": {
        "resource_type": "EVENT",
        "resource_id": f"ev-{SUFFIX}",
        "owner_id": "engine-buildbox-4711-9f3a",
        "lease_expires_at": "2026-11-20T11:32:00Z",
        "heartbeat_at": "2026-11-20T11:31:00Z",
        "claim_version": 3,
        "host": "buildbox",
        "pid": 4711,
        "acquired_at": "2026-11-20T11:30:40Z",
        "released": False,
    },
    "plan_record": {
        "record_id": "plan-20261120103000-depends-on-a1b2c3",
        "ticket": SLUG,
        "kind": "depends_on",
        "author": "alice",
        "at": "2026-11-20T10:30:00Z",
        "related_ticket": OTHER,
        "note": "the retry settings live in the new config loader",
    },
    "config": {
        "version": 1,
        "engine": {"capacity": 1, "base_ref": "HEAD", "branch_prefix": "yoi/", "lease_seconds": 60},
        "runners": {
            "default": {
                "type": "command",
                "command": ["./tools/agent.sh", "--fix"],
                "budget_ms": 600000,
                "env": {"AGENT_MODE": "patch"},
                "max_output_bytes": 1048576,
            },
            "llm": {
                "type": "openai",
                "base_url": "http://127.0.0.1:11434/v1",
                "model": "qwen2.5-coder",
                "api_key_env": "OPENAI_API_KEY",
                "timeout_s": 120,
                "max_retries": 2,
                "temperature": 0.2,
            },
            "replay": {"type": "patch-file", "path": "patches/fix.diff"},
        },
        "gates": [{"name": "tests", "command": ["python", "-m", "pytest", "-q"], "timeout_s": 600}],
        "protected_paths": [".yoi/**", ".github/**"],
        "allow_symlinks": False,
        "allow_submodules": False,
        "context_max_bytes": 200000,
    },
}

_DELETE = object()


def variant(kind: str, changes: dict[tuple[str | int, ...], object]) -> dict[str, Any]:
    """A deep copy of VALID[kind] with values set (or deleted with _DELETE) at paths."""
    data = copy.deepcopy(VALID[kind])
    for path, value in changes.items():
        target: Any = data
        for part in path[:-1]:
            target = target[part]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return data


def found(kind: str, data: object) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in schema.validate(kind, data, f"{kind}.yaml")]


# ----------------------------------------------------------------------------- the files


@pytest.mark.parametrize("kind", schema.KINDS)
def test_schema_is_a_valid_draft_2020_12_schema_with_id(kind: str) -> None:
    doc = schema.load_schema(kind)
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == f"https://yoi.dev/schemas/{kind}.schema.json" == schema.schema_id(kind)
    assert doc["title"] and doc["description"]


def test_published_and_packaged_copies_are_identical_and_complete() -> None:
    published = {p.name: p.read_bytes() for p in (ROOT / "schemas").iterdir()}
    packaged = {p.name: p.read_bytes() for p in (ROOT / "yoi" / "schemas").glob("*.json")}
    assert set(published) == {f"{k}.schema.json" for k in schema.KINDS}
    assert published == packaged
    assert len(schema.KINDS) == 11


def _properties(node: object, where: str = "") -> list[tuple[str, object]]:
    found_: list[tuple[str, object]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                found_.extend((f"{where}/{name}", sub) for name, sub in value.items())
            found_.extend(_properties(value, f"{where}/{key}"))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found_.extend(_properties(item, f"{where}/{i}"))
    return found_


@pytest.mark.parametrize("kind", schema.KINDS)
def test_every_property_has_a_description(kind: str) -> None:
    props = _properties(schema.load_schema(kind))
    assert props
    missing = [
        where for where, sub in props if not (isinstance(sub, dict) and sub.get("description"))
    ]
    assert missing == []


def test_ticket_blocked_on_refers_to_the_blocker_ref_schema_by_id() -> None:
    items = schema.load_schema("ticket")["properties"]["blocked_on"]["items"]
    assert items == {"$ref": schema.schema_id("blocker_ref")}


def test_config_schema_carries_the_documented_defaults() -> None:
    props = schema.load_schema("config")["properties"]
    engine = props["engine"]["properties"]
    assert {k: v["default"] for k, v in engine.items()} == {
        "capacity": 1,
        "base_ref": "HEAD",
        "branch_prefix": "yoi/",
        "lease_seconds": 60,
    }
    assert ".yoi/**" in props["protected_paths"]["default"]
    assert props["allow_symlinks"]["default"] is False
    gate = schema.load_schema("config")["$defs"]["gate"]["properties"]
    assert gate["timeout_s"]["default"] == 600


def test_unknown_kind_is_a_usage_error_listing_the_kinds() -> None:
    with pytest.raises(UsageError, match="known kinds: ticket, blocker_ref"):
        schema.validate("tiket", {}, "x.yaml")


# ----------------------------------------------------------------------------- valid records


@pytest.mark.parametrize("kind", schema.KINDS)
def test_valid_example_validates(kind: str) -> None:
    assert found(kind, VALID[kind]) == []
    schema.check(kind, VALID[kind], f"{kind}.yaml")


def test_minimal_records_validate() -> None:
    ticket = {
        "title": "x",
        "state": "planning",
        "created_at": "2026-11-20T10:00:00Z",
        "updated_at": "2026-11-20T10:00:00Z",
    }
    assert found("ticket", ticket) == []
    assert found("config", {"version": 1}) == []
    accepted = variant("plan_record", {("kind",): "accepted_plan", ("related_ticket",): _DELETE})
    accepted["accepted_plan"] = {"summary": "retry GET only", "branch": f"yoi/{SLUG}"}
    assert found("plan_record", accepted) == []
    pending = variant(
        "event",
        {("processed",): False, ("processed_at",): None, ("processed_reason",): None},
    )
    assert found("event", pending | {"run_id": None}) == []


# ----------------------------------------------------------------------------- invalid records

INVALID: list[tuple[str, dict[tuple[str | int, ...], object], list[tuple[str, str]]]] = [
    (
        "ticket",
        {("state",): "quened"},
        [
            (
                "/state",
                "'quened' is not one of "
                "['planning', 'ready', 'queued', 'inprogress', 'done', 'blocked']",
            )
        ],
    ),
    ("ticket", {("title",): _DELETE}, [("", "'title' is a required property")]),
    ("ticket", {("title",): "two\nlines"}, [("/title", "does not match")]),
    ("ticket", {("title",): "trailing newline\n"}, [("/title", "does not match")]),
    ("ticket", {("titel",): "typo"}, [("/titel", "unknown key 'titel' (did you mean 'title'?)")]),
    ("ticket", {("urgency",): 5}, [("/urgency", "5 is greater than the maximum of 4")]),
    ("ticket", {("labels",): ["http", "http"]}, [("/labels", "non-unique")]),
    ("ticket", {("runner",): "My Runner"}, [("/runner", "does not match")]),
    ("ticket", {("blocked_on", 0, "kind"): "PERSON"}, [("/blocked_on/0/kind", "'PERSON'")]),
    ("ticket", {("created_at",): "2026-11-20 10:00:00"}, [("/created_at", "RFC 3339 UTC")]),
    ("workorder", {("priority",): 1}, [("/priority", "unknown key 'priority' (allowed:")]),
    ("workorder", {("budget_ms",): 0}, [("/budget_ms", "0 is less than the minimum of 1")]),
    ("event", {("ticket",): "Add-Retry"}, [("/ticket", "'Add-Retry' does not match")]),
    ("event", {("ticket",): SLUG + "\n"}, [("/ticket", "does not match")]),
    (
        "event",
        {("processed_at",): None},
        [("/processed_at", "null is not of type 'string' (processed_at is set once processed")],
    ),
    ("event", {("processed_reason",): "DONE"}, [("/processed_reason", "'DONE' is not one of")]),
    (
        "pause_state",
        {("prioritized_actions",): [{"priority": 1, "action": "x"}] * 4},
        [("/prioritized_actions", "has 4 items; at most 3 allowed")],
    ),
    (
        "pause_state",
        {("prioritized_actions",): []},
        [("/prioritized_actions", "has 0 items; at least 1 required")],
    ),
    (
        "pause_state",
        {("prioritized_actions", 1, "priority"): 4},
        [("/prioritized_actions/1/priority", "4")],
    ),
    (
        "config",
        {("runners", "default", "type"): "docker"},
        [("/runners/default/type", "'docker' is not one of ['command', 'openai', 'patch-file']")],
    ),
    (
        "config",
        {("runners", "default", "command"): _DELETE},
        [("/runners/default", "'command' is a required property")],
    ),
    ("config", {("runners", "llm", "command"): ["x"]}, [("/runners/llm/command", "unknown key")]),
    (
        "config",
        {("runners", "replay"): "patches/fix.diff"},
        [("/runners/replay", "not of type 'object'")],
    ),
    (
        "config",
        {("runners", "replay", "type"): _DELETE},
        [("/runners/replay", "'type' is a required")],
    ),
    (
        "config",
        {("runners", "My Runner"): {"type": "patch-file"}},
        [("/runners/My Runner", "does not match")],
    ),
    ("config", {("version",): 2}, [("/version", "2 is not 1")]),
    (
        "config",
        {("engine", "branch_prefix"): "Yoi/"},
        [("/engine/branch_prefix", "does not match")],
    ),
    ("config", {("gates", 0, "timeout_s"): 0}, [("/gates/0/timeout_s", "less than or equal to")]),
    (
        "plan_record",
        {("related_ticket",): _DELETE},
        [("", "'related_ticket' is a required property (kinds before, after, depends_on")],
    ),
    (
        "plan_record",
        {("kind",): "accepted_plan"},
        [("", "'accepted_plan' is a required property (kind accepted_plan needs")],
    ),
    ("run_record", {("gates", 1, "stdout"): ""}, [("/gates/1/stdout", "unknown key 'stdout'")]),
    (
        "run_record",
        {("gate_result",): "SKIP"},
        [("/gate_result", "'SKIP' is not one of ['PASS', 'FAIL']")],
    ),
    (
        "output_bundle",
        {("metadata", "commit_sha"): "3f2c9a1"},
        [("/metadata/commit_sha", "does not match")],
    ),
    ("output_bundle", {("content",): None}, [("/content", "null is not of type 'string'")]),
    (
        "context_snapshot",
        {("metadata", "commit_sha"): _DELETE},
        [("/metadata", "'commit_sha' is a required")],
    ),
    ("claim_record", {("claim_version",): 0}, [("/claim_version", "less than the minimum of 1")]),
    ("blocker_ref", {("blocker_id",): "blocker-1"}, [("/blocker_id", "does not match")]),
]


@pytest.mark.parametrize(("kind", "changes", "expected"), INVALID)
def test_invalid_record_reports_pointer_and_message(
    kind: str, changes: dict[tuple[str | int, ...], object], expected: list[tuple[str, str]]
) -> None:
    problems = found(kind, variant(kind, changes))
    assert [p for p, _ in problems] == [p for p, _ in expected], problems
    for (_, message), (_, want) in zip(problems, expected, strict=True):
        assert want in message


def test_every_problem_is_reported_sorted_by_pointer() -> None:
    data = variant(
        "ticket",
        {("state",): "quened", ("updated_at",): _DELETE, ("color",): "red", ("urgency",): 9},
    )
    data["labels"] = [f"l{i}" for i in range(11)] + ["bad label"] * 2
    problems = schema.validate("ticket", data, ".yoi/tickets/open/x/ticket.md")
    assert [p.pointer for p in problems] == [
        "",
        "/color",
        "/labels",
        "/labels/11",
        "/labels/12",
        "/state",
        "/urgency",
    ]
    assert {p.path for p in problems} == {".yoi/tickets/open/x/ticket.md"}
    assert {p.severity for p in problems} == {"error"}


def test_check_raises_invalid_record_error_with_all_problems() -> None:
    data = variant("workorder", {("status",): "DONE", ("runner",): _DELETE})
    with pytest.raises(InvalidRecordError) as info:
        schema.check("workorder", data, "runs/x/workorder.yaml")
    assert info.value.path == "runs/x/workorder.yaml"
    assert [p.pointer for p in info.value.problems] == ["", "/status"]
    assert "(+1 more)" in str(info.value)


def test_pointer_escapes_per_rfc_6901() -> None:
    assert schema.pointer(["a/b", "c~d", 0]) == "/a~1b/c~0d/0"
    problems = found("workorder", variant("workorder", {("x/y",): 1}))
    assert [p for p, _ in problems] == ["/x~1y"]


# ----------------------------------------------------------------------------- hostile data


def test_data_that_is_not_json_is_reported_not_raised() -> None:
    when = datetime.datetime(2026, 11, 20, 10, 0, tzinfo=datetime.UTC)
    data: dict[Any, Any] = variant(
        "ticket",
        {("created_at",): when, ("labels",): {"a", "b"}, ("importance",): float("nan")},
    )
    data[7] = "int key"
    problems = found("ticket", data)
    assert [p for p, _ in problems] == ["/7", "/created_at", "/importance", "/labels"]
    messages = dict(problems)
    assert "write timestamps as quoted strings" in messages["/created_at"]
    assert "key 7 is not a string" in messages["/7"]
    assert "set" in messages["/labels"]
    assert "not a valid number" in messages["/importance"]


def test_top_level_must_be_a_mapping() -> None:
    assert found("event", ["not", "a", "mapping"]) == [
        ("", "['not', 'a', 'mapping'] is not of type 'object'")
    ]
    assert found("event", None) == [("", "null is not of type 'object'")]


def test_long_values_are_shortened_in_messages() -> None:
    problems = found("ticket", variant("ticket", {("state",): "x" * 10_000}))
    assert len(problems) == 1 and len(problems[0][1]) < 400


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.datetimes(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(schema.KINDS), data=_json)
def test_validate_never_raises_on_arbitrary_data(kind: str, data: object) -> None:
    problems = schema.validate(kind, data, "fuzz.yaml")
    assert all(p.message and (p.pointer == "" or p.pointer.startswith("/")) for p in problems)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(schema.KINDS), key=st.text(min_size=1, max_size=12), value=_json)
def test_extra_top_level_keys_are_reported_at_their_pointer(
    kind: str, key: str, value: object
) -> None:
    if key in schema.load_schema(kind)["properties"] or (kind == "ticket" and key.startswith("x-")):
        return
    data = copy.deepcopy(VALID[kind]) | {key: value}
    pointers = [p.pointer for p in schema.validate(kind, data, "x.yaml")]
    assert schema.pointer([key]) in pointers


# ----------------------------------------------------------------------------- process facts


def test_validators_are_compiled_once_per_process() -> None:
    first = schema._validator("ticket")
    schema.validate("ticket", VALID["ticket"], "a")
    assert schema._validator("ticket") is first


def test_importing_yoi_schema_does_not_import_jsonschema() -> None:
    code = (
        "import sys, yoi.schema\n"
        "heavy = [m for m in ('jsonschema', 'referencing') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "yoi.schema.validate('config', {'version': 1}, 'c')\n"
        "assert 'jsonschema' in sys.modules\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


# ----------------------------------------------------------------------------- the docs


def _doc_examples() -> list[tuple[str, str]]:
    text = (ROOT / "docs" / "file-format.md").read_text(encoding="utf-8")
    pattern = r"<!-- example: (\w+) -->\n```yaml\n(.*?)```"
    return [(m.group(1), m.group(2)) for m in re.finditer(pattern, text, re.S)]


def test_every_kind_has_a_valid_example_in_the_docs() -> None:
    from yoi import yamlio

    examples = _doc_examples()
    assert {kind for kind, _ in examples} == set(schema.KINDS)
    for kind, text in examples:
        data = yamlio.load_plain(text, path=f"docs/file-format.md ({kind})")
        assert found(kind, data) == [], (kind, text)
