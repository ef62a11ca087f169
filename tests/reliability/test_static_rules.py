"""Static checks over ``yoi/`` (the "lint" half of R1, R4, R6, R13 and R22): what the
code must never contain, found with ``ast`` rather than by running it.

- R1: files are replaced, linked or opened for writing only by the crash-safe writers
  (``fsio``, ``journal``, ``journal_apply``, ``checkpoint``) and a short list of places
  that never touch the store, each with its reason.
- R4: no ``references.create(...)`` and no ``force=False`` existence check.
- R6: no libgit2 apply to the WORKDIR or BOTH.
- R13: no ``--force`` and no ``+<refspec>`` in the git CLI calls of shared-remote claims.
- R22: the git CLI is run only with ``proc.GIT_SAFE_ARGS`` (hooks off, fsmonitor off).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

YOI = Path(__file__).resolve().parents[2] / "yoi"
MODULES = sorted(p for p in YOI.rglob("*.py"))

CRASH_SAFE_WRITERS = ("fsio.py", "journal.py", "journal_apply.py", "checkpoint.py", "store.py")

# Writers outside fsio/journal, and why they are not store writes.
WRITERS_ALLOWED = {
    "cache.py": "derived caches in the runtime dir (never authoritative; temp + replace)",
    "hooks.py": "installs hook scripts in .git/hooks (keeps a foreign hook as .legacy)",
    "runner/command.py": "the prompt file in the run's private scratch dir",
    "git.py": "an empty attributes file in yoi's private object dir",
    "demo_project.py": "the scratch repository of `yoi demo`",
    "commands/demo.py": "the scratch repository of `yoi demo`",
    "faults.py": "the crash-point trace and I/O count of the test harness",
}
RAW_GIT_ALLOWED = {
    "proc.py": "defines GIT_SAFE_ARGS",
    "hooks.py": "`git config --get core.hooksPath` (runs no hook, filter or fsmonitor)",
}


def _rel(path: Path) -> str:
    return str(path.relative_to(YOI))


def _trees() -> Iterator[tuple[str, ast.AST]]:
    for path in MODULES:
        yield _rel(path), ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _call_name(node: ast.Call) -> str:
    parts = []
    func: ast.expr = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _writes_files(node: ast.Call) -> bool:
    name = _call_name(node)
    if name in ("os.replace", "os.rename", "os.link", "shutil.move") or name.endswith(
        (".write_text", ".write_bytes")
    ):
        return not name.startswith(("tx.", "self.write_", "self.tx.")) and not name.endswith(
            ("tx.write_text", "tx.write_bytes")
        )
    if name in ("open", "os.fdopen") and len(node.args) > 1:
        mode = node.args[1]
        return isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+")
    return False


def test_only_the_crash_safe_writers_write_files() -> None:
    found = []
    for rel, tree in _trees():
        if rel in CRASH_SAFE_WRITERS or rel in WRITERS_ALLOWED:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _writes_files(node):
                found.append(f"{rel}:{node.lineno}: {_call_name(node)}")
    assert found == [], "write through fsio.atomic_write or a store transaction instead"


def test_no_reference_create_or_force_false() -> None:
    found = []
    for rel, tree in _trees():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            if _call_name(node).endswith("references.create"):
                found.append(f"{rel}:{node.lineno}: references.create")
            for kw in node.keywords:
                if (
                    kw.arg == "force"
                    and isinstance(kw.value, ast.Constant)
                    and (kw.value.value is False)
                ):
                    found.append(f"{rel}:{node.lineno}: force=False")
    assert found == []


def test_libgit2_apply_only_to_the_index() -> None:
    found = [
        f"{rel}:{node.lineno}: ApplyLocation.{node.attr}"
        for rel, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "ApplyLocation"
        and node.attr != "INDEX"
    ]
    assert found == []


def _string_parts(node: ast.AST) -> Iterator[tuple[int, str]]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub.lineno, sub.value
        elif isinstance(sub, ast.JoinedStr) and sub.values:
            first = sub.values[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield sub.lineno, first.value


@pytest.mark.parametrize("module", sorted(p.name for p in YOI.glob("remote_*.py")))
def test_shared_remote_pushes_never_force(module: str) -> None:
    tree = ast.parse((YOI / module).read_text(encoding="utf-8"))
    bad = [
        f"{module}:{line}: {text!r}"
        for line, text in _string_parts(tree)
        if text in ("--force", "-f", "--mirror") or (text.startswith("+") and len(text) > 1)
    ]
    assert bad == [], "a + refspec or --force defeats the lease (notes/reliability.md §0.4)"


def test_git_cli_runs_only_with_hooks_and_fsmonitor_off() -> None:
    found = []
    for rel, tree in _trees():
        if rel in RAW_GIT_ALLOWED:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.List | ast.Tuple) and node.elts:
                head = node.elts[0]
                if isinstance(head, ast.Constant) and head.value == "git":
                    found.append(f"{rel}:{node.lineno}")
    assert found == [], "start git argv with *proc.GIT_SAFE_ARGS"


def test_the_allow_lists_name_real_modules() -> None:
    for rel in [*WRITERS_ALLOWED, *RAW_GIT_ALLOWED]:
        assert (YOI / rel).is_file(), rel
