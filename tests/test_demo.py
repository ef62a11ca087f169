"""`yoi demo` end to end in a subprocess (the README's main job), plus the demo project
itself: its tests fail on the bug and pass once the fixer has run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_yoi
from tests.helpers import git
from yoi import demo_project


def test_demo_runs_the_full_lifecycle(tmp_path: Path) -> None:
    target = tmp_path / "scratch"
    proc = run_yoi("demo", "--dir", str(target), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "yoi: demo:" in proc.stderr  # progress goes to stderr
    doc = json.loads(proc.stdout)
    assert doc["schema_version"] == 1 and doc["repo"] == str(target.resolve())
    ticket, run, branch = doc["ticket"], doc["run"], doc["branch"]
    assert ticket["state"] == "done" and ticket["title"] == demo_project.TICKET_TITLE
    assert branch == f"yoi/{ticket['slug']}" and run["branch"] == branch
    assert run["gate_result"] == "PASS"
    tests = next(g for g in run["gates"] if g["name"] == "tests")
    assert tests["result"] == "PASS" and tests["exit_code"] == 0
    assert doc["pause_state"]["reason"] == "RUN_COMPLETE"
    # the branch carries the fix; main (the user's checkout) still has the bug
    fixed = git(target, "show", f"{branch}:textstats/stats.py")
    assert demo_project.FIXED_LINE in fixed and demo_project.BUGGY_LINE not in fixed
    assert demo_project.BUGGY_LINE in (target / "textstats" / "stats.py").read_text()
    assert git(target, "rev-parse", branch).strip() == run["commit_sha"]
    assert git(target, "status", "--porcelain", "--", ".", ":(exclude).yoi") == ""


def test_demo_human_output_names_the_next_steps(tmp_path: Path) -> None:
    target = tmp_path / "human"
    proc = run_yoi("demo", "--dir", str(target), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"repository: {target.resolve()}" in out
    assert re.search(r"^ +tests +PASS +exit 0", out, re.MULTILINE), out
    assert "next actions (RUN_COMPLETE):" in out
    assert f"git -C {target.resolve()} log --stat yoi/" in out
    assert f"yoi -C {target.resolve()} ticket show " in out


def test_demo_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("mine\n")
    proc = run_yoi("demo", "--dir", str(tmp_path / "busy"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "is not an empty directory" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["file.txt"]


def _unittest(cwd: Path) -> subprocess.CompletedProcess[str]:
    # -B: the fix keeps the line's length, so a rewrite within the second the first run
    # cached stats.py's byte code in would look unchanged to the second run.
    return subprocess.run(
        [sys.executable, "-B", "-m", "unittest", "-q"], cwd=cwd, capture_output=True, text=True
    )


def test_the_demo_project_fails_on_the_bug_and_the_fixer_fixes_it(tmp_path: Path) -> None:
    for rel, text in demo_project.FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert _unittest(tmp_path).returncode != 0
    fixer = subprocess.run(
        [sys.executable, "tools/fix_bug.py"], cwd=tmp_path, capture_output=True, text=True
    )
    assert fixer.returncode == 0, fixer.stderr
    assert _unittest(tmp_path).returncode == 0
    again = subprocess.run(
        [sys.executable, "tools/fix_bug.py"], cwd=tmp_path, capture_output=True, text=True
    )
    assert again.returncode == 1 and "not in" in again.stderr
