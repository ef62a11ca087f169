"""yoi.proc against real processes: exit codes, env, timeouts with group kill, caps."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from yoi import proc

PY = sys.executable
# The children below sleep 600 s unless killed. Ending well before that is what shows the
# timeout fired and the group was killed; this bound only separates "killed" from "ran to
# completion" and is not a speed claim (timings belong in bench/, never in a unit test).
KILLED_WITHIN_S = 120.0


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for a reaper (PID 1 of a container may never reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _wait_dead(pid: int, within_s: float = 30.0) -> bool:
    """Polls until ``pid`` is dead; generous, so a loaded machine cannot fail it (a process
    that was not killed runs ``sleep 600`` far past it)."""
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        if _dead(pid):
            return True
        time.sleep(0.05)
    return _dead(pid)


def test_exit_code_and_output_are_captured(tmp_path: Path) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(7)"
    result = proc.run([PY, "-c", code], cwd=tmp_path, timeout_s=30)
    assert result.returncode == 7
    assert result.stdout == b"out\n"
    assert result.stderr == b"err\n"
    assert not result.timed_out and not result.truncated and not result.ok
    assert result.argv == (PY, "-c", code)


def test_success_is_ok_and_runs_in_cwd(tmp_path: Path) -> None:
    result = proc.run([PY, "-c", "import os; print(os.getcwd())"], cwd=tmp_path, timeout_s=30)
    assert result.ok
    assert Path(result.stdout.decode().strip()).resolve() == tmp_path.resolve()


def test_env_is_passed_exactly(tmp_path: Path) -> None:
    code = "import os, json; print(json.dumps(sorted(os.environ)))"
    env = {"ONLY_THIS": "1", "PATH": os.environ["PATH"]}
    result = proc.run([PY, "-c", code], cwd=tmp_path, env=env, timeout_s=30)
    keys = set(json.loads(result.stdout))
    assert "ONLY_THIS" in keys
    assert "HOME" not in keys


def test_stdin_bytes_reach_the_child(tmp_path: Path) -> None:
    data = b"line\r\n" * 200_000  # larger than a pipe buffer
    result = proc.run(["cat"], cwd=tmp_path, timeout_s=30, stdin=data, max_output=4 << 20)
    assert result.stdout == data


def test_killed_by_signal_reports_negative_code(tmp_path: Path) -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    result = proc.run([PY, "-c", code], cwd=tmp_path, timeout_s=30)
    assert result.returncode == -9
    assert not result.timed_out


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    script = "sleep 600 & echo $!; sleep 600"
    start = time.monotonic()
    result = proc.run(["sh", "-c", script], cwd=tmp_path, timeout_s=0.5)
    elapsed = time.monotonic() - start
    assert result.timed_out and result.returncode is None
    assert elapsed < KILLED_WITHIN_S  # killed, not left to run its 600 s
    grandchild = int(result.stdout.decode().strip())
    assert _wait_dead(grandchild)


def test_child_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    code = (
        "import signal, time, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    start = time.monotonic()
    result = proc.run([PY, "-c", code], cwd=tmp_path, timeout_s=1.0)
    assert result.timed_out and result.returncode is None
    assert time.monotonic() - start < KILLED_WITHIN_S  # SIGKILLed after the grace period
    assert result.stdout == b"ready\n"


def test_leftovers_of_a_finished_child_are_killed(tmp_path: Path) -> None:
    # The background sleep keeps stdout open: run() returns when the child exits, not when
    # the pipe closes (600 s later), and kills what the child left running in its group.
    start = time.monotonic()
    result = proc.run(["sh", "-c", "sleep 600 & echo $!"], cwd=tmp_path, timeout_s=300)
    assert result.returncode == 0 and not result.timed_out
    assert time.monotonic() - start < KILLED_WITHIN_S
    assert _wait_dead(int(result.stdout.decode().strip()))


def test_huge_output_is_capped_without_deadlock(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.stdout.buffer.write(b'H' * 1000 + b'x' * 50_000_000 + b'T' * 1000)\n"
        "sys.stderr.buffer.write(b'e' * 3_000_000)\n"
    )
    cap = 64 * 1024
    # A deadlock (child blocked on a full stderr pipe while we read stdout) would hit the
    # timeout and come back timed out, with no return code.
    result = proc.run([PY, "-c", code], cwd=tmp_path, timeout_s=300, max_output=cap)
    assert not result.timed_out
    assert result.returncode == 0 and result.truncated
    assert result.stdout.startswith(b"H" * 1000)
    assert result.stdout.endswith(b"T" * 1000)
    assert b"bytes omitted" in result.stdout
    assert len(result.stdout) < cap + 200
    assert len(result.stderr) < cap + 200


def test_output_under_the_cap_is_not_truncated(tmp_path: Path) -> None:
    code = "import sys; sys.stdout.buffer.write(b'a' * 5000)"
    result = proc.run([PY, "-c", code], cwd=tmp_path, timeout_s=30, max_output=5000)
    assert result.stdout == b"a" * 5000 and not result.truncated


def test_missing_executable_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(proc.ProcError) as info:
        proc.run(["yoi-no-such-tool-xyz", "--flag"], cwd=tmp_path, timeout_s=5)
    assert "yoi-no-such-tool-xyz" in str(info.value)
    assert info.value.argv == ("yoi-no-such-tool-xyz", "--flag")


def test_missing_cwd_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(proc.ProcError, match="working directory"):
        proc.run(["true"], cwd=tmp_path / "nope", timeout_s=5)


def test_no_shell_interpretation(tmp_path: Path) -> None:
    result = proc.run(["echo", "$(touch pwned)", ";", "rm", "-rf", "x"], cwd=tmp_path, timeout_s=5)
    assert result.stdout == b"$(touch pwned) ; rm -rf x\n"
    assert not (tmp_path / "pwned").exists()


def test_tail_text_decodes_with_replacement() -> None:
    assert proc.tail_text(b"abc\xffdef", limit=4) == "\ufffddef"
    assert proc.tail_text(b"short") == "short"
    assert proc.tail_text(b"x" * 5000) == "x" * 4000


def test_git_env_is_minimal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_DIR", "/elsewhere")
    monkeypatch.setenv("SECRET_TOKEN", "s3cret")
    env = proc.git_env()
    assert {k for k in env if k.startswith("GIT_")} == {
        "GIT_CONFIG_NOSYSTEM",
        "GIT_TERMINAL_PROMPT",
    }
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_TERMINAL_PROMPT"] == "0"
    assert "SECRET_TOKEN" not in env
    assert env["PATH"] == os.environ["PATH"]
    assert proc.GIT_SAFE_ARGS[:1] == ("git",)
    assert "core.hooksPath=/dev/null" in proc.GIT_SAFE_ARGS


def test_git_safe_args_do_not_run_hooks(repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "post-commit"
    hook.write_text("#!/bin/sh\ntouch hook-ran\n")
    hook.chmod(0o755)
    env = proc.git_env() | {
        "GIT_AUTHOR_NAME": "A",
        "GIT_AUTHOR_EMAIL": "a@example.invalid",
        "GIT_COMMITTER_NAME": "A",
        "GIT_COMMITTER_EMAIL": "a@example.invalid",
    }
    argv = [*proc.GIT_SAFE_ARGS, "commit", "-q", "--allow-empty", "-m", "x"]
    result = proc.run(argv, cwd=repo, env=env, timeout_s=30)
    assert result.ok, result.stderr
    assert not (repo / "hook-ran").exists()
