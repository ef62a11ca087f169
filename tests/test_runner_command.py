"""The command runner with real processes in a real git clone (the stand-in worktree)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import commit_all, git, write_tree
from yoi.errors import ConfigError
from yoi.runner import diffextract
from yoi.runner.base import CandidateStatus, RunRequest
from yoi.runner.command import DEFAULT_MAX_OUTPUT, CommandRunner
from yoi.runner.registry import make_runner

PY = sys.executable
DIFF = (
    b"diff --git a/README.md b/README.md\n"
    b"--- a/README.md\n"
    b"+++ b/README.md\n"
    b"@@ -1 +1,2 @@\n"
    b" hello\n"
    b"+world\r\n"
)


def _git_bytes(cwd: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, check=True, timeout=60
    ).stdout


def _worktree(repo: Path, tmp_path: Path) -> Path:
    wt = tmp_path / "wt"
    git(tmp_path, "clone", "-q", str(repo), str(wt))
    return wt


def _request(tmp_path: Path, worktree: Path, *, budget_ms: int = 30_000) -> RunRequest:
    base = git(worktree, "rev-parse", "HEAD").strip()

    def worktree_diff() -> bytes:
        git(worktree, "add", "-A")
        return _git_bytes(worktree, "diff", "--cached", "--binary", base)

    (tmp_path / "workorder.yaml").write_text("work_order_id: wo-1\n")
    (tmp_path / "snapshot.yaml").write_text("snapshot_id: snap-1\n")
    return RunRequest(
        run_id="run-20261120100000-abc",
        ticket_slug="20261120-100000-fix-readme",
        ticket_title="Fix the readme",
        acceptance_criteria=("README says world",),
        prompt_text="Please fix the README.\nÜnïcode ok.\n",
        workorder_path=tmp_path / "workorder.yaml",
        snapshot_path=tmp_path / "snapshot.yaml",
        worktree=worktree,
        base_commit=base,
        budget_ms=budget_ms,
        deadline=time.monotonic() + budget_ms / 1000,
        scratch=tmp_path / "scratch",
        repo_root=worktree,
        patch_file=None,
        worktree_diff=worktree_diff,
    )


def _script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "agent.py"
    path.write_text("import os, sys, pathlib\n" + body)
    return [PY, str(path)]


def _runner(
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    pass_env: tuple[str, ...] = (),
    max_output_bytes: int = DEFAULT_MAX_OUTPUT,
) -> CommandRunner:
    return CommandRunner(
        name="default",
        command=tuple(command),
        env=env or {},
        pass_env=pass_env,
        max_output_bytes=max_output_bytes,
    )


def test_patch_out_file_wins_over_stdout_and_worktree(repo: Path, tmp_path: Path) -> None:
    wt = _worktree(repo, tmp_path)
    body = (
        f"pathlib.Path(os.environ['YOI_PATCH_OUT']).write_bytes({DIFF!r})\n"
        "pathlib.Path('src/app.py').write_text('changed\\n')\n"
        "print('diff --git a/x b/x')\n"
    )
    cand = _runner(_script(tmp_path, body)).produce(_request(tmp_path, wt))
    assert cand.status is CandidateStatus.COMPLETED, cand.notes
    assert cand.origin == "patch-out"
    assert cand.patch == DIFF  # bytes exactly, CRLF included


def test_empty_patch_out_means_no_change(repo: Path, tmp_path: Path) -> None:
    wt = _worktree(repo, tmp_path)
    body = (
        "pathlib.Path(os.environ['YOI_PATCH_OUT']).write_bytes(b'')\n"
        "pathlib.Path('src/app.py').write_text('changed\\n')\n"
    )
    cand = _runner(_script(tmp_path, body)).produce(_request(tmp_path, wt))
    assert cand.status is CandidateStatus.COMPLETED
    assert (cand.patch, cand.origin) == (b"", "patch-out")
    assert "empty YOI_PATCH_OUT" in cand.notes


def test_stdout_diff_with_chatter_is_extracted(repo: Path, tmp_path: Path) -> None:
    wt = _worktree(repo, tmp_path)
    text = b"Thinking...\nHere is the patch:\n" + DIFF + b"Done, bye!\n"
    body = f"sys.stdout.buffer.write({text!r})\n"
    cand = _runner(_script(tmp_path, body)).produce(_request(tmp_path, wt))
    assert cand.status is CandidateStatus.COMPLETED, cand.notes
    assert cand.origin == "stdout"
    assert cand.patch == DIFF
    (tmp_path / "p.diff").write_bytes(cand.patch)
    git(wt, "apply", "--check", str(tmp_path / "p.diff"))


def test_in_place_edits_become_the_worktree_diff(repo: Path, tmp_path: Path) -> None:
    wt = _worktree(repo, tmp_path)
    body = (
        "pathlib.Path('README.md').write_text('hello\\nedited in place\\n')\n"
        "pathlib.Path('src/new_module.py').write_text('X = 1\\n')\n"
        "pathlib.Path('blob.bin').write_bytes(bytes(range(256)))\n"
        "print('I edited some files.')\n"
    )
    cand = _runner(_script(tmp_path, body)).produce(_request(tmp_path, wt))
    assert cand.status is CandidateStatus.COMPLETED, cand.notes
    assert cand.origin == "worktree"
    assert b"+edited in place" in cand.patch
    assert b"b/src/new_module.py" in cand.patch
    assert b"GIT binary patch" in cand.patch
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(repo), str(fresh))
    (tmp_path / "w.diff").write_bytes(cand.patch)
    git(fresh, "apply", "--index", str(tmp_path / "w.diff"))
    assert (fresh / "blob.bin").read_bytes() == bytes(range(256))
    assert (fresh / "README.md").read_text() == "hello\nedited in place\n"


def test_no_change_at_all_is_an_empty_completed_candidate(repo: Path, tmp_path: Path) -> None:
    wt = _worktree(repo, tmp_path)
    cand = _runner(_script(tmp_path, "print('nothing to do')\n")).produce(_request(tmp_path, wt))
    assert cand.status is CandidateStatus.COMPLETED
    assert cand.patch == b""
    assert "produced no patch" in cand.notes


def test_budget_exceeded_kills_the_group_and_keeps_no_patch(repo: Path, tmp_path: Path) -> None:
    wt = _worktree(repo, tmp_path)
    pidfile = tmp_path / "grandchild.pid"
    body = (
        f"pathlib.Path(os.environ['YOI_PATCH_OUT']).write_bytes({DIFF!r})\n"
        "import subprocess, time\n"
        "p = subprocess.Popen(['sleep', '600'])\n"
        f"pathlib.Path({str(pidfile)!r}).write_text(str(p.pid))\n"
        "time.sleep(600)\n"
    )
    start = time.monotonic()
    cand = _runner(_script(tmp_path, body)).produce(_request(tmp_path, wt, budget_ms=1500))
    elapsed = time.monotonic() - start
    assert cand.status is CandidateStatus.BUDGET_EXHAUSTED
    assert cand.patch == b""
    assert "process group was killed" in cand.notes
    # The script sleeps 600 s unless killed: this bound only separates "killed at the
    # budget" from "ran to completion"; it is not a speed claim (timings live in bench/).
    assert elapsed < 120
    assert _dead(int(pidfile.read_text()))


def _dead(pid: int, within_s: float = 30.0) -> bool:
    """Polls until ``pid`` is dead; generous, so a loaded machine cannot fail it (a process
    that was not killed runs ``sleep 600`` far past it)."""
    end = time.monotonic() + within_s
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.05)


def test_budget_already_spent_runs_nothing(repo: Path, tmp_path: Path) -> None:
    wt = _worktree(repo, tmp_path)
    sentinel = tmp_path / "ran"
    request = _request(tmp_path, wt, budget_ms=0)
    cand = _runner(["touch", str(sentinel)]).produce(request)
    assert cand.status is CandidateStatus.BUDGET_EXHAUSTED
    assert not sentinel.exists()


def test_nonzero_exit_is_a_runner_error_and_discards_the_patch(repo: Path, tmp_path: Path) -> None:
    wt = _worktree(repo, tmp_path)
    body = (
        f"pathlib.Path(os.environ['YOI_PATCH_OUT']).write_bytes({DIFF!r})\n"
        "print('model quota exceeded', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    cand = _runner(_script(tmp_path, body)).produce(_request(tmp_path, wt))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert cand.patch == b""
    assert "exit code 3" in cand.notes
    assert "model quota exceeded" in cand.notes


def test_missing_executable_is_a_runner_error(repo: Path, tmp_path: Path) -> None:
    wt = _worktree(repo, tmp_path)
    cand = _runner(["yoi-missing-agent-xyz"]).produce(_request(tmp_path, wt))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert "yoi-missing-agent-xyz" in cand.notes


def test_environment_contract(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_YOI_TEST_MARKER", "leak")
    monkeypatch.setenv("SECRET_NOT_PASSED", "s3cret")
    monkeypatch.setenv("AGENT_API_KEY", "k3y")
    wt = _worktree(repo, tmp_path)
    dump = tmp_path / "env.json"
    body = f"pathlib.Path({str(dump)!r}).write_text(__import__('json').dumps(dict(os.environ)))\n"
    runner = _runner(
        _script(tmp_path, body),
        env={"AGENT_MODE": "fast", "YOI_TICKET": "spoofed"},
        pass_env=("AGENT_API_KEY",),
    )
    request = _request(tmp_path, wt)
    cand = runner.produce(request)
    assert cand.status is CandidateStatus.COMPLETED, cand.notes
    env = json.loads(dump.read_text())
    assert env["YOI_TICKET"] == request.ticket_slug
    assert env["YOI_RUN_ID"] == request.run_id
    assert env["YOI_WORKORDER"] == str(request.workorder_path)
    assert env["YOI_SNAPSHOT"] == str(request.snapshot_path)
    assert Path(env["YOI_PROMPT_FILE"]).read_text(encoding="utf-8") == request.prompt_text
    assert 0 < int(env["YOI_BUDGET_MS"]) <= 30_000
    assert Path(env["YOI_PATCH_OUT"]).parent == request.scratch
    assert env["AGENT_MODE"] == "fast" and env["AGENT_API_KEY"] == "k3y"
    assert "SECRET_NOT_PASSED" not in env
    assert "GIT_YOI_TEST_MARKER" not in env and "GIT_AUTHOR_NAME" not in env
    assert env["PATH"] and env["HOME"]


def test_arguments_are_never_shell_interpreted(repo: Path, tmp_path: Path) -> None:
    wt = _worktree(repo, tmp_path)
    out = tmp_path / "argv.json"
    body = f"pathlib.Path({str(out)!r}).write_text(__import__('json').dumps(sys.argv[1:]))\n"
    hostile = ["$(touch pwned)", "`touch pwned2`; touch pwned3", "*", "a && b"]
    cand = _runner([*_script(tmp_path, body), *hostile]).produce(_request(tmp_path, wt))
    assert cand.status is CandidateStatus.COMPLETED, cand.notes
    assert json.loads(out.read_text()) == hostile
    for name in ("pwned", "pwned2", "pwned3"):
        assert not (wt / name).exists() and not (tmp_path / name).exists()


def test_relative_program_is_the_repos_own_tool(repo: Path, tmp_path: Path) -> None:
    tool = "#!/bin/sh\nprintf 'from tool\\n' > \"$YOI_PATCH_OUT\"\n"
    write_tree(repo, {"tools/agent.sh": tool})
    (repo / "tools" / "agent.sh").chmod(0o755)
    commit_all(repo, "add agent")
    wt = _worktree(repo, tmp_path)
    cand = _runner(["./tools/agent.sh", "--fix"]).produce(_request(tmp_path, wt))
    assert cand.status is CandidateStatus.COMPLETED, cand.notes
    assert cand.patch == b"from tool\n"


def test_relative_program_outside_the_worktree_is_refused(repo: Path, tmp_path: Path) -> None:
    wt = _worktree(repo, tmp_path)
    (tmp_path / "evil.sh").write_text("#!/bin/sh\ntouch ran\n")
    (tmp_path / "evil.sh").chmod(0o755)
    cand = _runner(["../evil.sh"]).produce(_request(tmp_path, wt))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert "outside the worktree" in cand.notes
    assert not (wt / "ran").exists()


def test_truncated_stdout_diff_is_refused(repo: Path, tmp_path: Path) -> None:
    wt = _worktree(repo, tmp_path)
    body = "sys.stdout.write('diff --git a/a b/a\\n' + '+x\\n' * 100_000)\n"
    runner = _runner(_script(tmp_path, body), max_output_bytes=4096)
    cand = runner.produce(_request(tmp_path, wt))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert "YOI_PATCH_OUT" in cand.notes


def test_registry_builds_a_command_runner() -> None:
    runner = make_runner("default", {"type": "command", "command": ["./a.sh"], "budget_ms": 5})
    assert isinstance(runner, CommandRunner)
    assert runner.command == ("./a.sh",) and runner.budget_ms == 5 and runner.name == "default"


@pytest.mark.parametrize(
    "config",
    [
        {"type": "shell", "command": ["x"]},
        {"command": ["x"]},
        {"type": "command", "command": []},
        {"type": "command", "command": "echo hi"},
        {"type": "command", "command": ["x"], "comand": ["typo"]},
        {"type": "command", "command": ["x"], "env": {"A": 1}},
        {"type": "command", "command": ["x"], "budget_ms": 0},
    ],
)
def test_registry_rejects_bad_entries(config: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        make_runner("bad", config)
    assert "runners.bad" in str(info.value)


_text_line = st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=30)


@given(st.lists(_text_line, max_size=5))
def test_chatter_before_a_diff_is_dropped(chatter: list[str]) -> None:
    lines = [line for line in chatter if not line.startswith(("diff --git ", "--- "))]
    prefix = "".join(line + "\n" for line in lines).encode()
    assert diffextract.extract_diff(prefix + DIFF) == DIFF
    assert diffextract.extract_diff(prefix) == b""


@pytest.mark.parametrize(
    "make",
    [
        "os.mkdir(os.environ['YOI_PATCH_OUT'])",
        "os.symlink('/etc/hostname', os.environ['YOI_PATCH_OUT'])",
    ],
)
def test_patch_out_must_be_a_regular_file(repo: Path, tmp_path: Path, make: str) -> None:
    wt = _worktree(repo, tmp_path)
    cand = _runner(_script(tmp_path, make + "\n")).produce(_request(tmp_path, wt))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert "YOI_PATCH_OUT" in cand.notes


def test_scratch_inside_the_worktree_is_refused(repo: Path, tmp_path: Path) -> None:
    wt = _worktree(repo, tmp_path)
    request = dataclasses.replace(_request(tmp_path, wt), scratch=wt / ".scratch")
    cand = _runner(["true"]).produce(request)
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert "scratch" in cand.notes
    assert not (wt / ".scratch").exists()
