"""Keep the layers honest: click only in cli.py, pygit2 only in git.py, no process
spawning outside proc.py, and no heavy imports at startup."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "yoi"
MODULES = sorted(PKG.rglob("*.py"))


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    ("lib", "owner"), [("click", "cli.py"), ("pygit2", "git.py"), ("subprocess", "proc.py")]
)
def test_library_confined_to_one_module(lib: str, owner: str) -> None:
    offenders = [
        str(p.relative_to(PKG))
        for p in MODULES
        if lib in imported(p) and p.relative_to(PKG) != Path(owner)
    ]
    assert offenders == [], f"{lib} imported outside {owner}: {offenders}"


PURE = ["lifecycle.py", "model.py", "errors.py", "slug.py", "thread.py"]


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_do_no_io(name: str) -> None:
    path = PKG / name
    if not path.exists():
        pytest.skip(f"{name} not present")
    bad = imported(path) & {
        "os",
        "shutil",
        "subprocess",
        "filelock",
        "pygit2",
        "socket",
        "tempfile",
        "yoi.store",
    }
    assert not bad, f"{name} imports I/O modules {bad}"


def test_startup_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from yoi.cli import main; main(['--version']); "
        "print(sorted(m for m in ('pygit2', 'jsonschema', 'ruamel', 'filelock') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_reading_tickets_imports_no_yaml_or_schema_library(tmp_path: Path) -> None:
    """``ticket show`` and ``ticket list`` on a store that yoi wrote read it with the fast
    parsers: neither ruamel.yaml nor jsonschema is imported (ruamel.yaml and yoi's dump
    rules cost a process ~200 M instructions, a fifth of ``ticket show``)."""
    from tests.helpers import init_repo
    from yoi import tickets
    from yoi.commands.init import init
    from yoi.store import Store

    repo = init_repo(tmp_path / "repo")
    init(path=repo)
    spec = tickets.NewTicket(title="Read me", acceptance_criteria=["it reads"])
    slug = tickets.create(Store.discover(repo), spec, by="ada").slug
    env = {**os.environ, "PYTHONPATH": str(PKG.parent)}
    for argv in (["ticket", "show", slug], ["ticket", "list"]):
        code = (
            f"import sys; from yoi.cli import main; code = main({argv!r}); "
            "print(code, sorted(m for m in ('ruamel', 'jsonschema') if m in sys.modules))"
        )
        argv_ = [sys.executable, "-c", code]
        out = subprocess.run(argv_, capture_output=True, text=True, cwd=repo, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == "0 []", (argv, out.stdout)
