"""fastdump writes exactly what yamlio.dump writes, whenever it writes anything: on
hypothesis-generated records and on the records of the example store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_cache_yaml import CANON, RECORDS
from yoi import fastdump, yamlio

EXAMPLE = Path(__file__).resolve().parents[1] / ".yoi-example"


def agree(data: Any) -> str | None:
    fast = fastdump.dump(data)
    if fast is not None:
        assert fast == yamlio.dump(data), (data, fast)
    return fast


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(CANON, RECORDS))
def test_generated_records_dump_the_same(data: dict[str, Any]) -> None:
    agree(data)


def test_example_records_take_the_fast_path() -> None:
    texts = [p.read_text(encoding="utf-8") for p in sorted(EXAMPLE.rglob("*.yaml"))]
    assert texts
    fast = 0
    for text in texts:
        data = yamlio.load_plain(text, path="x")
        fast += agree(data) is not None
    assert fast >= len(texts) * 3 // 4


def test_what_it_leaves_to_ruamel() -> None:
    for data in (
        {"a": 1.5},
        {"a": ("t",)},
        {"a b": 1},
        {"yes": 1},
        {"a": [[1]]},
        {"a": "tab\there"},
        {"a": "x'y: z"},
        {"a": "x\n\n"},
        {"a": " lead"},
        {"a": "-dash"},
        {},
        {1: "x"},
    ):
        assert fastdump.dump(data) is None, data


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(CANON, RECORDS))
def test_what_fastdump_writes_reads_back_as_the_same_data(data: dict[str, Any]) -> None:
    """The rule ``Transaction.write_record`` relies on when it remembers what it wrote
    (``store._MEMO``): plain data that ``fastdump`` writes is read back, by the fast
    reader and by ruamel, as exactly that data."""
    from tests.test_cache_yaml import strict_equal
    from yoi import fastschema, fastyaml

    text = fastdump.dump(data)
    if text is None or not fastschema.plain(data):
        return
    fast = fastyaml.load(text)  # None: not sure, the slow reader decides
    assert fast is None or strict_equal(fast, data), (data, text)
    assert strict_equal(yamlio.load_plain(text, path="x"), data), (data, text)
