"""`yoi hooks install|uninstall|status`: pre-commit-style installation, chaining of foreign
hooks, refusal under core.hooksPath, and an uninstall that leaves no trace."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.helpers import git
from tests.test_doctor_support import yoi
from yoi import hooks, yamlio
from yoi.errors import YoiError
from yoi.paths import discover


def run_git(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, **(env or {}))
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=full
    )


def dir_state(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {
        p.name: (stat.S_IMODE(p.lstat().st_mode), p.read_bytes())
        for p in sorted(directory.iterdir())
    }


def write_hook(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def test_install_is_idempotent_and_uninstall_leaves_no_trace(repo: Path) -> None:
    hooks_dir = repo / ".git" / "hooks"
    hooks_dir.mkdir(exist_ok=True)
    write_hook(hooks_dir / "post-merge", "echo foreign")
    before = dir_state(hooks_dir)
    layout = discover(repo, require_store=False)
    done = hooks.install(layout)
    assert "installed pre-commit" in done and any(".legacy" in line for line in done)
    assert hooks.install(layout) == []  # idempotent
    _dir, infos, hooks_path = hooks.status(layout)
    assert hooks_path is None
    assert {i.hook_type: (i.state, i.legacy) for i in infos} == {
        t: (hooks.HookState.INSTALLED, t == "post-merge") for t in hooks.HOOK_TYPES
    }
    for t in hooks.HOOK_TYPES:
        assert hooks.MARKER in (hooks_dir / t).read_text()
        assert os.access(hooks_dir / t, os.X_OK)
    hooks.uninstall(layout)
    assert dir_state(hooks_dir) == before


def test_cli_install_status_json(repo: Path) -> None:
    proc = yoi(repo, "hooks", "install", "--json")
    assert proc.returncode == 0, proc.stderr
    status = yoi(repo, "hooks", "status", "--json")
    assert '"installed": true' in status.stdout
    assert yoi(repo, "hooks", "uninstall").returncode == 0
    assert '"installed": false' in yoi(repo, "hooks", "status", "--json").stdout


def test_core_hooks_path_is_refused_with_a_hint(repo: Path) -> None:
    git(repo, "config", "core.hooksPath", ".githooks")
    before = dir_state(repo / ".git" / "hooks")
    proc = yoi(repo, "hooks", "install")
    assert proc.returncode == 1
    assert "core.hooksPath" in proc.stderr and "hint: " in proc.stderr
    assert dir_state(repo / ".git" / "hooks") == before
    assert "core.hooksPath is set" in yoi(repo, "hooks", "status").stderr


def test_foreign_hook_and_legacy_both_present_is_refused(repo: Path) -> None:
    hooks_dir = repo / ".git" / "hooks"
    write_hook(hooks_dir / "pre-commit", "exit 0")
    write_hook(hooks_dir / "pre-commit.legacy", "exit 0")
    before = dir_state(hooks_dir)
    with pytest.raises(YoiError, match=r"pre-commit\.legacy"):
        hooks.install(discover(repo, require_store=False))
    assert dir_state(hooks_dir) == before


def test_outdated_hook_is_rewritten(repo: Path) -> None:
    layout = discover(repo, require_store=False)
    (repo / ".git" / "hooks").mkdir(exist_ok=True)
    path = repo / ".git" / "hooks" / "post-commit"
    path.write_bytes(hooks.render("post-commit", "/old/python"))
    assert hooks.hook_info(path.parent, "post-commit").state is hooks.HookState.OUTDATED
    assert "updated post-commit" in hooks.install(layout)
    assert path.read_bytes() == hooks.render("post-commit")


def test_foreign_hook_keeps_running_with_args_stdin_and_status(store_repo: Path) -> None:
    repo = store_repo
    hooks_dir = repo / ".git" / "hooks"
    log = repo.parent / "legacy.log"
    write_hook(hooks_dir / "post-checkout", f'echo "post-checkout $#" >> {log}')
    write_hook(hooks_dir / "post-rewrite", f'echo "post-rewrite $1" >> {log}; cat >> {log}')
    write_hook(hooks_dir / "pre-commit", f"echo pre-commit >> {log}; exit 7")
    hooks.install(discover(repo))
    assert run_git(repo, "checkout", "-q", "-b", "side").returncode == 0
    (repo / "f.txt").write_text("x\n", encoding="utf-8")
    git(repo, "add", "f.txt")
    head = git(repo, "rev-parse", "HEAD")
    assert run_git(repo, "commit", "-q", "-m", "f").returncode != 0  # the foreign one decides
    assert git(repo, "rev-parse", "HEAD") == head
    write_hook(hooks_dir / "pre-commit.legacy", f"echo pre-commit >> {log}")
    assert run_git(repo, "commit", "-q", "-m", "f").returncode == 0
    old = git(repo, "rev-parse", "HEAD").strip()
    assert run_git(repo, "commit", "-q", "--amend", "-m", "f2").returncode == 0
    new = git(repo, "rev-parse", "HEAD").strip()
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "post-checkout 3"
    assert lines.count("pre-commit") == 3
    assert "post-rewrite amend" in lines and f"{old} {new}" in lines


def test_missing_yoi_warns_and_lets_git_continue(store_repo: Path) -> None:
    repo = store_repo
    hooks_dir = repo / ".git" / "hooks"
    for t in hooks.HOOK_TYPES:
        (hooks_dir / t).write_bytes(hooks.render(t, "/nonexistent/python3"))
        (hooks_dir / t).chmod(0o755)
    (repo / "f.txt").write_text("x\n", encoding="utf-8")
    git(repo, "add", "f.txt")
    proc = run_git(repo, "commit", "-q", "-m", "f", env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0
    assert "cannot find yoi" in proc.stderr


def test_hooks_live_in_the_common_dir_for_linked_worktrees(store_repo: Path) -> None:
    repo = store_repo
    wt = repo.parent / "wt"
    git(repo, "worktree", "add", "-q", str(wt), "-b", "wt")
    hooks.install(discover(wt))
    assert (repo / ".git" / "hooks" / "post-commit").read_text().count(hooks.MARKER) == 1
    assert not (repo / ".git" / "worktrees" / "wt" / "hooks").exists()


def test_hook_impl_outside_a_store_and_unknown_types_exit_zero(repo: Path) -> None:
    quiet = yoi(repo, "hook-impl", "post-merge", "0")
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert yoi(repo, "hook-impl", "pre-commit").returncode == 0
    odd = yoi(repo, "hook-impl", "pre-push", "origin")
    assert odd.returncode == 0 and "unknown hook type" in odd.stderr


def test_pre_commit_framework_manifest() -> None:
    manifest = Path(__file__).resolve().parents[1] / ".pre-commit-hooks.yaml"
    hooks_list = yamlio.load_plain(manifest.read_text(encoding="utf-8"), path=str(manifest))
    assert hooks_list == [
        {
            "id": "yoi-doctor",
            "name": "yoi doctor (staged ticket files)",
            "description": "Validate the staged files under .yoi/ before they are committed.",
            "entry": "yoi doctor --staged",
            "language": "python",
            "pass_filenames": False,
            "files": "^\\.yoi/",
        }
    ]


def test_a_legacy_that_is_itself_a_yoi_hook_is_not_run_again(store_repo: Path) -> None:
    hooks_dir = store_repo / ".git" / "hooks"
    hooks.install(discover(store_repo))
    (hooks_dir / "post-commit.legacy").write_bytes((hooks_dir / "post-commit").read_bytes())
    (hooks_dir / "post-commit.legacy").chmod(0o755)
    (store_repo / "f.txt").write_text("x\n", encoding="utf-8")
    git(store_repo, "add", "f.txt")
    proc = subprocess.run(
        ["git", "commit", "-q", "-m", "f"],
        cwd=store_repo,
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
