"""diazotroph.execute with real repositories, real runners and real processes."""

from __future__ import annotations

import base64
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import commit_all, git, user_state
from tests.support_diazotroph import FixedRunner, Rig, git_bytes, make_rig
from yoi import diazotroph, schema, yamlio
from yoi.errors import FencedError
from yoi.model import RunnerStatus
from yoi.runner.base import Candidate, RunRequest, completed
from yoi.runner.command import CommandRunner
from yoi.runner.patchfile import PatchFileRunner

GREETING_PATCH = b"""\
diff --git a/src/app.py b/src/app.py
--- a/src/app.py
+++ b/src/app.py
@@ -1 +1 @@
-print('hi')
+print('hello, friend')
"""


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path / "repo")


def _bundle_patch(bundle: dict[str, object]) -> bytes:
    meta = bundle["metadata"]
    assert isinstance(meta, dict)
    content = str(bundle["content"])
    if meta.get("content_encoding") == "base64":
        return base64.b64decode(content)
    return content.encode("utf-8")


def _stored(bundle: dict[str, object]) -> dict[str, object]:
    """The bundle as the engine writes and re-reads it (YAML, schema-checked)."""
    back = yamlio.load_plain(yamlio.dump(bundle), path="bundle", max_bytes=1 << 24)
    schema.check("output_bundle", back, "bundle")
    assert isinstance(back, dict)
    return back


def test_completed_with_a_patch_file_runner_commits_on_the_work_branch(rig: Rig) -> None:
    (rig.root / "incoming.diff").write_bytes(GREETING_PATCH)
    before = user_state(rig.root)
    workorder, ex = rig.execute(PatchFileRunner(name="replay", path="incoming.diff"))
    assert ex.status is RunnerStatus.COMPLETED, ex.bundle["notes"]
    assert ex.commit_sha is not None and ex.result_tree is not None
    assert git(rig.root, "rev-parse", rig.branch).strip() == ex.commit_sha
    assert git(rig.root, "rev-parse", f"{rig.branch}~1").strip() == ex.base_commit
    assert git(rig.root, "show", f"{rig.branch}:src/app.py") == "print('hello, friend')\n"
    message = git(rig.root, "log", "-1", "--format=%an <%ae>%n%B", rig.branch)
    assert message.startswith("yoi <yoi@localhost>\nMake the greeting friendlier\n")
    assert f"Yoi-Ticket: {rig.ticket.slug}" in message
    assert f"Yoi-Run: {workorder['run_id']}" in message
    # the bundle: schema-valid, normalized patch (index line added), notes and PR draft
    stored = _stored(ex.bundle)
    assert _bundle_patch(stored) == ex.patch
    assert ex.patch != GREETING_PATCH and b"index " in ex.patch
    meta = ex.bundle["metadata"]
    assert meta["commit_sha"] == ex.commit_sha and meta["change_notes"][0].startswith("modified")
    draft = meta["pr_description_draft"]
    assert "- [ ] the greeting is friendlier" in draft and "- [ ] nothing else changes" in draft
    assert rig.ticket.slug in draft and workorder["run_id"] in draft
    assert user_state(rig.root) == before
    assert rig.worktree_leftovers() == []


def test_a_command_runner_that_edits_files_in_place(rig: Rig) -> None:
    code = (
        "import pathlib\n"
        "pathlib.Path('src/app.py').write_text(\"print('hello, friend')\\n\")\n"
        "pathlib.Path('src/new.py').write_text('X = 1\\n')\n"
        "pathlib.Path('README.md').unlink()\n"
    )
    before = user_state(rig.root)
    _, ex = rig.execute(CommandRunner(name="agent", command=(sys.executable, "-c", code)))
    assert ex.status is RunnerStatus.COMPLETED, ex.bundle["notes"]
    assert ex.bundle["metadata"]["origin"] == "worktree"
    files = git(rig.root, "ls-tree", "-r", "--name-only", rig.branch).split()
    assert "src/new.py" in files and "README.md" not in files
    assert git(rig.root, "show", f"{rig.branch}:src/app.py") == "print('hello, friend')\n"
    assert user_state(rig.root) == before  # the user's README.md and app.py are untouched
    assert rig.worktree_leftovers() == []


def test_runner_sees_the_base_commit_in_its_private_worktree(rig: Rig) -> None:
    (rig.root / "src" / "app.py").write_text("dirty user edit\n")  # not committed
    seen = rig.root.parent / "seen.txt"
    code = (
        f"import os, pathlib; pathlib.Path({str(seen)!r})"
        ".write_text(os.getcwd() + '|' + open('src/app.py').read())"
    )
    _, ex = rig.execute(CommandRunner(name="agent", command=(sys.executable, "-c", code)))
    cwd, content = seen.read_text().split("|", 1)
    assert content == "print('hi')\n"
    assert Path(cwd).is_relative_to(rig.store.runtime_dir / "worktrees")
    assert ex.status is RunnerStatus.COMPLETED and ex.commit_sha is None  # no change made


def test_budget_exhausted_when_the_command_runs_past_the_budget(rig: Rig) -> None:
    runner = CommandRunner(
        name="slow", command=(sys.executable, "-c", "import time; time.sleep(30)")
    )
    started = time.monotonic()
    _, ex = rig.execute(runner, budget_ms=400)
    assert time.monotonic() - started < 10
    assert ex.status is RunnerStatus.BUDGET_EXHAUSTED
    assert ex.patch == b"" and ex.bundle["content"] == "" and ex.commit_sha is None
    assert "budget exhausted" in ex.bundle["notes"]
    assert rig.refs("refs/heads/yoi") == []
    _stored(ex.bundle)


@dataclass(frozen=True)
class LateRunner:
    """Returns a valid patch, but only after the budget has passed."""

    name: str = "late"
    budget_ms: int | None = None

    def produce(self, request: RunRequest) -> Candidate:
        time.sleep(max(0.0, request.deadline - time.monotonic()) + 0.05)
        return completed(GREETING_PATCH, "done, late", "file")


def test_budget_exhausted_when_the_budget_passed_before_finalization(rig: Rig) -> None:
    _, ex = rig.execute(LateRunner(), budget_ms=200)
    assert ex.status is RunnerStatus.BUDGET_EXHAUSTED
    assert ex.patch == b"" and ex.commit_sha is None
    assert rig.refs("refs/heads/yoi") == []


def test_patch_apply_failed_for_a_patch_that_does_not_apply(rig: Rig) -> None:
    stale = GREETING_PATCH.replace(b"-print('hi')", b"-print('something else')")
    before = user_state(rig.root)
    _, ex = rig.execute(FixedRunner(stale))
    assert ex.status is RunnerStatus.PATCH_APPLY_FAILED
    assert ex.patch == stale and _bundle_patch(ex.bundle) == stale  # the attempted patch
    assert "does not apply" in ex.bundle["notes"] and ex.violations
    assert ex.commit_sha is None and rig.refs("refs/heads/yoi") == []
    assert user_state(rig.root) == before
    _stored(ex.bundle)


def test_garbage_is_patch_apply_failed(rig: Rig) -> None:
    _, ex = rig.execute(FixedRunner(b"I could not find the bug, sorry.\n"))
    assert ex.status is RunnerStatus.PATCH_APPLY_FAILED
    assert "not a patch" in ex.violations[0]


@dataclass(frozen=True)
class RaisingRunner:
    name: str = "broken"
    budget_ms: int | None = None

    def produce(self, request: RunRequest) -> Candidate:
        raise RuntimeError("the model server is on fire")


def test_runner_error_for_a_runner_that_raises(rig: Rig) -> None:
    _, ex = rig.execute(RaisingRunner())
    assert ex.status is RunnerStatus.RUNNER_ERROR
    assert "RuntimeError: the model server is on fire" in ex.bundle["notes"]
    assert ex.patch == b"" and ex.commit_sha is None and rig.worktree_leftovers() == []
    _stored(ex.bundle)


def test_runner_error_for_a_command_that_exits_1(rig: Rig) -> None:
    code = "import sys, pathlib; pathlib.Path('src/app.py').write_text('x'); sys.exit(1)"
    _, ex = rig.execute(CommandRunner(name="agent", command=(sys.executable, "-c", code)))
    assert ex.status is RunnerStatus.RUNNER_ERROR
    assert "exit code 1" in ex.bundle["notes"]
    assert ex.patch == b"" and rig.refs("refs/heads/yoi") == []


def test_empty_candidate_is_completed_without_a_commit(rig: Rig) -> None:
    _, ex = rig.execute(FixedRunner(b""))
    assert ex.status is RunnerStatus.COMPLETED
    assert ex.patch == b"" and ex.commit_sha is None and rig.refs("refs/heads/yoi") == []


def _extra_commit_on(rig: Rig, branch: str, start: str) -> str:
    tree = git(rig.root, "rev-parse", f"{start}^{{tree}}").strip()
    tip = git(rig.root, "commit-tree", tree, "-p", start, "-m", "someone's work").strip()
    git(rig.root, "update-ref", f"refs/heads/{branch}", tip)
    return tip


def test_branch_reset_keeps_an_old_tip_with_extra_commits(rig: Rig) -> None:
    old_tip = _extra_commit_on(rig, rig.branch, "HEAD")
    (rig.root / "incoming.diff").write_bytes(GREETING_PATCH)
    workorder, ex = rig.execute(PatchFileRunner(name="replay", path="incoming.diff"))
    assert ex.status is RunnerStatus.COMPLETED
    expected = f"refs/yoi/backup/{rig.ticket.slug}/{workorder['run_id']}"
    assert ex.backup_ref == expected and ex.bundle["metadata"]["backup_ref"] == expected
    assert rig.refs("refs/yoi/backup") == [f"{expected} {old_tip}"]
    assert git(rig.root, "rev-parse", f"{rig.branch}~1").strip() == ex.base_commit


def test_branch_behind_the_base_is_reset_without_a_backup(rig: Rig) -> None:
    old = git(rig.root, "rev-parse", "HEAD").strip()
    (rig.root / "more.txt").write_text("more\n")
    commit_all(rig.root, "more")
    git(rig.root, "update-ref", f"refs/heads/{rig.branch}", old)
    (rig.root / "incoming.diff").write_bytes(GREETING_PATCH)
    _, ex = rig.execute(PatchFileRunner(name="replay", path="incoming.diff"))
    assert ex.status is RunnerStatus.COMPLETED and ex.backup_ref is None
    assert rig.refs("refs/yoi") == []
    assert git(rig.root, "rev-parse", f"{rig.branch}~1").strip() == ex.base_commit


def _fence_failing_at(call: int) -> Callable[[], None]:
    calls = []

    def fence() -> None:
        calls.append(1)
        if len(calls) >= call:
            raise FencedError("lost the claim")

    return fence


def test_a_stale_fence_raises_and_moves_no_ref(rig: Rig) -> None:
    before = rig.refs("refs")
    with pytest.raises(FencedError):
        rig.execute(FixedRunner(GREETING_PATCH), fence=_fence_failing_at(1))
    assert rig.refs("refs") == before
    assert rig.worktree_leftovers() == []


def test_the_fence_is_checked_before_each_ref_move(rig: Rig) -> None:
    old_tip = _extra_commit_on(rig, rig.branch, "HEAD")
    with pytest.raises(FencedError):  # 1st call (backup) passes, 2nd (reset) fails
        rig.execute(FixedRunner(GREETING_PATCH), fence=_fence_failing_at(2))
    assert git(rig.root, "rev-parse", rig.branch).strip() == old_tip
    assert len(rig.refs("refs/yoi/backup")) == 1


# -- byte-exact round trips: the result tree equals what a real `git commit` makes ----------

BASE_FILES: dict[str, str | bytes] = {
    "README.md": "hello\n",
    "src/app.py": "print('hi')\n",
    "dos.txt": b"one\r\ntwo\r\nthree\r\n",
    "img.bin": bytes(range(256)) * 8,
    "old_name.txt": "".join(f"line {i}\n" for i in range(40)),
    "gone.txt": "bye\n",
    "run.sh": "#!/bin/sh\necho run\n",
}


def _crlf(clone: Path) -> None:
    (clone / "dos.txt").write_bytes(b"one\r\nTWO\r\nthree\r\nfour\r\n")


def _binary(clone: Path) -> None:
    data = bytearray(bytes(range(256)) * 8)
    data[100:110] = b"\x00" * 10
    (clone / "img.bin").write_bytes(bytes(data))
    (clone / "new.bin").write_bytes(bytes(range(255, -1, -1)) * 3)


def _rename(clone: Path) -> None:
    text = (clone / "old_name.txt").read_text() + "one more\n"
    (clone / "old_name.txt").unlink()
    (clone / "new_name.txt").write_text(text)


def _delete(clone: Path) -> None:
    (clone / "gone.txt").unlink()


def _mode(clone: Path) -> None:
    os.chmod(clone / "run.sh", 0o755)


@pytest.mark.parametrize("change", [_crlf, _binary, _rename, _delete, _mode])
def test_patches_round_trip_to_the_blobs_of_a_real_commit(
    tmp_path: Path, change: Callable[[Path], None]
) -> None:
    rig = make_rig(tmp_path / "repo", BASE_FILES)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(rig.root), str(clone))
    change(clone)
    commit_all(clone, "the change")
    patch = git_bytes(clone, "diff", "--binary", "-M", "HEAD~1", "HEAD")
    want_tree = git(clone, "rev-parse", "HEAD^{tree}").strip()
    (rig.root / "incoming.diff").write_bytes(patch)
    before = user_state(rig.root)
    _, ex = rig.execute(PatchFileRunner(name="replay", path="incoming.diff"))
    assert ex.status is RunnerStatus.COMPLETED, ex.bundle["notes"]
    assert ex.result_tree == want_tree
    assert git(rig.root, "rev-parse", f"{rig.branch}^{{tree}}").strip() == want_tree
    assert _bundle_patch(_stored(ex.bundle)) == ex.patch
    assert user_state(rig.root) == before
    if change is _crlf:
        assert b"+TWO\r\n" in ex.patch and b"+TWO\r\n" in patch


def test_the_normalized_patch_reapplies_to_the_same_tree(tmp_path: Path) -> None:
    rig = make_rig(tmp_path / "repo", BASE_FILES)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(rig.root), str(clone))
    for change in (_crlf, _binary, _rename, _delete, _mode):
        change(clone)
    commit_all(clone, "everything")
    patch = git_bytes(clone, "diff", "--binary", "-M", "HEAD~1", "HEAD")
    _, first = rig.execute(FixedRunner(patch))
    assert first.status is RunnerStatus.COMPLETED, first.bundle["notes"]
    notes = first.bundle["metadata"]["change_notes"]
    assert any(n.startswith("renamed old_name.txt -> new_name.txt") for n in notes)
    assert any(n.startswith("deleted gone.txt") for n in notes)
    assert any(n.startswith("mode 100644 -> 100755") for n in notes)
    _, again = rig.execute(FixedRunner(_bundle_patch(_stored(first.bundle))))
    assert again.status is RunnerStatus.COMPLETED
    assert again.result_tree == first.result_tree
    assert again.patch == first.patch


def test_execution_from_bundle_restores_the_execution(rig: Rig) -> None:
    _, ex = rig.execute(FixedRunner(GREETING_PATCH))
    stored = _stored(ex.bundle)
    back = diazotroph.execution_from_bundle(rig.store, stored, _bundle_patch(stored))
    assert back.status is ex.status and back.patch == ex.patch
    assert (back.commit_sha, back.result_tree, back.base_commit) == (
        ex.commit_sha,
        ex.result_tree,
        ex.base_commit,
    )
    assert back.elapsed_ms == ex.elapsed_ms and back.violations == ex.violations


def test_a_runner_without_a_checkout_gets_an_index_only_repository(rig: Rig) -> None:
    """The patch-file runner needs no files on disk: nothing is checked out, no worktree
    is registered, the result is the same commit tree a worktree run makes, the private
    repository (this process's slot under the cache) shares the user's objects, nothing
    is left under worktrees/, the user is untouched."""
    seen: list[RunRequest] = []
    slots_dir = rig.store.runtime_dir / "cache" / "index"

    class Watching(PatchFileRunner):
        def produce(self, request: RunRequest) -> Candidate:
            seen.append(request)
            made = [p for p in slots_dir.iterdir() if p.is_dir()]
            assert len(made) == 1 and (made[0] / "objects").is_symlink()
            names = {p.name for p in made[0].iterdir()} - {"index"}  # made at the first apply
            assert names == {"HEAD", "config", "objects", "refs"}
            assert not (rig.store.runtime_dir / "worktrees" / request.run_id).exists()
            assert not git(rig.root, "worktree", "list").count("\n") > 1
            return super().produce(request)

    (rig.root / "incoming.diff").write_bytes(GREETING_PATCH)
    before = user_state(rig.root)
    _, ex = rig.execute(Watching(name="replay", path="incoming.diff"))
    assert ex.status is RunnerStatus.COMPLETED, ex.bundle["notes"]
    assert seen and seen[0].worktree is None and seen[0].worktree_diff() == b""
    assert git(rig.root, "show", f"{rig.branch}:src/app.py") == "print('hello, friend')\n"
    _, with_checkout = rig.execute(FixedRunner(GREETING_PATCH))
    assert with_checkout.result_tree == ex.result_tree
    assert rig.worktree_leftovers() == []
    assert user_state(rig.root) == before
    assert git(rig.root, "fsck", "--no-dangling").strip() == ""
