"""docs/architecture.md's module map is generated from the module docstrings (the first
paragraph of each), so a module cannot be added, renamed or re-described silently.

Regenerate with:  REGEN_DOCS=1 python -m pytest tests/test_architecture_doc.py
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
SKIP = {"__init__.py", "__main__.py"}
_ROW = re.compile(r"^\| `yoi/[^`]+` \| .* \|\n", re.M)


def summary(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    text = " ".join(doc.split("\n\n")[0].split())
    if len(text) > 150:
        text = text[:147].rsplit(" ", 1)[0] + " ..."
    return text.replace("|", "\\|")


def rows() -> str:
    modules = sorted(p for p in (ROOT / "yoi").rglob("*.py") if p.name not in SKIP)
    return "".join(f"| `{p.relative_to(ROOT)}` | {summary(p)} |\n" for p in modules)


def test_module_map_is_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    found = list(_ROW.finditer(text))
    assert found, "no module map in docs/architecture.md"
    start, end = found[0].start(), found[-1].end()
    current = rows()
    if os.environ.get("REGEN_DOCS") == "1":
        DOC.write_text(text[:start] + current + text[end:], encoding="utf-8")
        text = DOC.read_text(encoding="utf-8")
        end = start + len(current)
    assert text[start:end] == current, "module map is stale: REGEN_DOCS=1 pytest " + __file__
