"""fastschema agrees with jsonschema: on every record of the example store, and on random
mutations of them, `is_valid` is True exactly when `schema.validate` finds no problem
(None only for data it does not claim to handle)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yoi import fastschema, schema, yamlio

EXAMPLE = Path(__file__).resolve().parents[1] / ".yoi-example"
RUN_FILES = {
    "workorder.yaml": "workorder",
    "context_snapshot.yaml": "context_snapshot",
    "output_bundle.yaml": "output_bundle",
    "run_record.yaml": "run_record",
}
DIRS = {"events": "event", "pause_states": "pause_state", "plan": "plan_record"}


def kind_of(path: Path) -> str | None:
    if path.name == "ticket.md":
        return "ticket"
    if path.name == "config.yaml":
        return "config"
    if path.name in RUN_FILES:
        return RUN_FILES[path.name]
    return DIRS.get(path.parent.name)


def samples() -> list[tuple[str, Any]]:
    out = []
    for path in sorted(EXAMPLE.rglob("*")):
        kind = kind_of(path)
        if kind is None or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if kind == "ticket":
            text = yamlio.split_front_matter(text, path=str(path))[0]
        out.append((kind, yamlio.load_plain(text, path=str(path))))
    return out


SAMPLES = samples() if EXAMPLE.is_dir() else []


def agree(kind: str, data: Any) -> None:
    fast = fastschema.is_valid(kind, data)
    slow = not schema.validate(kind, data, "x")
    assert fast is None or fast == slow, (kind, data, fast, slow)


def test_every_packaged_schema_compiles() -> None:
    assert [k for k in schema.KINDS if fastschema.checker(k) is None] == []


def test_patterns_compile_like_schema() -> None:
    patterns: set[str] = set()
    for kind in schema.KINDS:
        patterns.update(re.findall(r'"pattern": "((?:[^"\\]|\\.)*)"', schema.schema_text(kind)))
    assert patterns
    for raw in patterns:
        pattern = raw.encode().decode("unicode_escape")
        assert fastschema.ecma_pattern(pattern).pattern == schema._compiled(pattern).pattern


@pytest.mark.skipif(not SAMPLES, reason="no example store")
def test_example_records_are_valid_on_the_fast_path() -> None:
    kinds = {k for k, _ in SAMPLES}
    assert {"ticket", "event", "config"} <= kinds
    for kind, data in SAMPLES:
        assert fastschema.is_valid(kind, data) is True, (kind, data)


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.text(max_size=12),
    st.sampled_from(["", "2026-01-01T00:00:00Z", "b1", "x-y", "EXECUTED", "done", "ev-1-a"]),
    st.lists(st.text(max_size=5), max_size=3),
    st.just({}),
    st.just([{}]),
    st.floats(allow_nan=False, allow_infinity=False),
)


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out.extend(paths(v, (*prefix, k)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.extend(paths(v, (*prefix, i)))
    return out


def mutate(data: Any, where: tuple[Any, ...], how: str, value: Any) -> Any:
    data = copy.deepcopy(data)
    if not where:
        return value if how == "set" else data
    parent = data
    for part in where[:-1]:
        parent = parent[part]
    last = where[-1]
    if how == "delete" and isinstance(parent, dict):
        del parent[last]
    elif how == "add" and isinstance(parent, dict):
        parent[f"{last}_extra" if isinstance(last, str) else "extra"] = value
    else:
        parent[last] = value
    return data


@pytest.mark.skipif(not SAMPLES, reason="no example store")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_records_agree(data: st.DataObject) -> None:
    kind, record = data.draw(st.sampled_from(SAMPLES))
    where = data.draw(st.sampled_from(paths(record)))
    how = data.draw(st.sampled_from(["set", "delete", "add"]))
    changed = mutate(record, where, how, data.draw(VALUES))
    agree(kind, changed)


def test_foreign_types_are_not_vouched_for() -> None:
    ticket = next((d for k, d in SAMPLES if k == "ticket"), None)
    if ticket is None:
        pytest.skip("no example ticket")
    for odd in (
        {**ticket, "importance": 2.0},
        {**ticket, "title": ("a",)},
        {**ticket, 3: "x"},
        {**ticket, "labels": ("a",)},
    ):
        assert fastschema.is_valid("ticket", odd) is not True
