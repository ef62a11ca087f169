"""yoi.git against real repositories: refs CAS, private worktrees, apply, diffs."""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import pytest

from tests.helpers import commit_all, git, init_repo, user_state, write_tree
from yoi.errors import ConflictError, GitError, PatchError
from yoi.git import Repo, check_ref_name


class _Author(TypedDict):
    author_name: str
    author_email: str


AUTHOR: _Author = {"author_name": "Yoi Engine", "author_email": "yoi@example.invalid"}


def git_bytes(cwd: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True).stdout


def _blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


BASE_FILES: dict[str, str | bytes] = {
    "README.md": "hello\n",
    "text.txt": "one\ntwo\nthree\n",
    "crlf.txt": b"alpha\r\nbeta\r\ngamma\r\n",
    "image.bin": _blob(1, 48_000),
    "moved.txt": "".join(f"moved line {i}\n" for i in range(30)),
    "partial.txt": "".join(f"partial line {i}\n" for i in range(30)),
    "gone.txt": "bye\n",
    "run.sh": "#!/bin/sh\necho hi\n",
}


def _crlf_edit(root: Path) -> None:
    (root / "crlf.txt").write_bytes(b"alpha\r\nBETA\r\ngamma\r\n")


def _binary_delta(root: Path) -> None:
    data = bytearray((root / "image.bin").read_bytes())
    data[20_000:20_010] = b"0123456789"
    (root / "image.bin").write_bytes(bytes(data))


def _binary_literal(root: Path) -> None:
    (root / "assets").mkdir(exist_ok=True)
    (root / "assets" / "new.bin").write_bytes(_blob(2, 3000))


def _rename_exact(root: Path) -> None:
    (root / "moved.txt").rename(root / "renamed.txt")


def _rename_partial(root: Path) -> None:
    text = (root / "partial.txt").read_text().replace("partial line 7\n", "changed\n")
    (root / "partial.txt").unlink()
    (root / "partial2.txt").write_text(text)


def _delete(root: Path) -> None:
    (root / "gone.txt").unlink()


def _mode_change(root: Path) -> None:
    os.chmod(root / "run.sh", 0o755)


def _new_file(root: Path) -> None:
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "new.py").write_text("print('new')\n")


CHANGES: dict[str, Callable[[Path], None]] = {
    "crlf_edit": _crlf_edit,
    "binary_delta": _binary_delta,
    "binary_literal": _binary_literal,
    "rename_exact": _rename_exact,
    "rename_partial": _rename_partial,
    "delete": _delete,
    "mode_change": _mode_change,
    "new_file": _new_file,
}


@pytest.fixture
def base_repo(repo: Path) -> Path:
    write_tree(repo, BASE_FILES)
    commit_all(repo, "base")
    return repo


def _target(repo: Path, tmp_path: Path, *changes: Callable[[Path], None]) -> tuple[str, bytes]:
    """Make the change with the real git CLI in a clone: (target tree, git diff --binary)."""
    clone = tmp_path / f"clone-{len(list(tmp_path.glob('clone-*')))}"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    for change in changes:
        change(clone)
    commit_all(clone, "target")
    tree = git(clone, "rev-parse", "HEAD^{tree}").strip()
    return tree, git_bytes(clone, "diff", "--binary", "-M", "HEAD~1", "HEAD")


def _make_user_dirty(repo: Path) -> None:
    (repo / "README.md").write_text("dirty work in progress\n")
    (repo / "text.txt").write_text("staged change\n")
    git(repo, "add", "text.txt")
    (repo / "untracked.txt").write_text("untracked\n")
    for key, value in [
        ("core.autocrlf", "true"),
        ("diff.renames", "false"),
        ("diff.algorithm", "patience"),
        ("diff.noprefix", "true"),
        ("color.ui", "always"),
    ]:
        git(repo, "config", key, value)


# -- opening and reading ------------------------------------------------------------------


def test_open_discovers_worktree_linked_worktree_and_bare(base_repo: Path, tmp_path: Path) -> None:
    repo = Repo.open(base_repo / "src")
    assert repo.workdir == base_repo
    assert repo.common_dir == (base_repo / ".git").resolve()
    git(base_repo, "worktree", "add", "-q", str(tmp_path / "linked"), "-b", "side")
    linked = Repo.open(tmp_path / "linked")
    assert linked.workdir == tmp_path / "linked"
    assert linked.common_dir == (base_repo / ".git").resolve()
    git(tmp_path, "clone", "-q", "--bare", str(base_repo), str(tmp_path / "bare.git"))
    bare = Repo.open(tmp_path / "bare.git")
    assert bare.workdir is None
    assert bare.resolve_commit("main") == repo.resolve_commit("HEAD")
    with pytest.raises(GitError, match="not a git repository"):
        Repo.open(tmp_path / "nowhere")


def test_resolve_and_read(base_repo: Path) -> None:
    repo = Repo.open(base_repo)
    head = git(base_repo, "rev-parse", "HEAD").strip()
    git(base_repo, "tag", "-a", "-m", "v1", "v1")
    assert repo.resolve_commit("HEAD") == head
    assert repo.resolve_commit("v1") == head  # annotated tag peeled
    assert repo.resolve_commit(head[:10]) == head
    with pytest.raises(GitError, match="unknown ref 'nope'"):
        repo.resolve_commit("nope")
    with pytest.raises(GitError, match="does not name a commit"):
        repo.resolve_commit("HEAD:text.txt")
    assert repo.ref_target("refs/heads/main") == head
    assert repo.ref_target("HEAD") == head
    assert repo.ref_target("refs/heads/absent") is None
    first = git(base_repo, "rev-list", "--max-parents=0", "HEAD").strip()
    assert repo.is_ancestor(first, head) and repo.is_ancestor(head, head)
    assert not repo.is_ancestor(head, first)
    assert repo.tree_of(head) == git(base_repo, "rev-parse", "HEAD^{tree}").strip()
    assert repo.read_blob(head, "crlf.txt") == BASE_FILES["crlf.txt"]
    assert repo.read_blob(head, "image.bin") == BASE_FILES["image.bin"]
    assert repo.read_blob(head, "missing.txt") is None
    assert repo.read_blob(head, "src") is None  # a tree, not a blob
    assert (
        repo.blob_id_for(head, "src/app.py")
        == git(base_repo, "rev-parse", "HEAD:src/app.py").strip()
    )


def test_tracked_files_and_tree_entries_include_links(base_repo: Path) -> None:
    os.symlink("text.txt", base_repo / "link")
    git(base_repo, "add", "link")
    gitlink = git(base_repo, "rev-parse", "HEAD").strip()
    git(base_repo, "update-index", "--add", "--cacheinfo", f"160000,{gitlink},vendor/sub")
    git(base_repo, "commit", "-q", "-m", "links")
    head = git(base_repo, "rev-parse", "HEAD").strip()
    repo = Repo.open(base_repo)
    entries = {path: mode for path, mode, _ in repo.tree_entries(repo.tree_of(head))}
    assert entries["link"] == 0o120000
    assert entries["vendor/sub"] == 0o160000
    assert entries["src/app.py"] == 0o100644
    files = repo.tracked_files(head)
    assert list(files) == sorted(files)
    assert "link" in files and "src/app.py" in files and "vendor/sub" not in files
    assert set(files) == set(git(base_repo, "ls-tree", "-r", "--name-only", "HEAD").split()) - {
        "vendor/sub"
    }


# -- refs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "main",
        "refs/heads/a..b",
        "refs/heads/yoi/UPPER",
        "refs/yoi/claims/x.lock",
        "refs/yoi/-dash",
        "refs/heads/yoi/a b",
    ],
)
def test_bad_ref_names_are_refused(name: str) -> None:
    with pytest.raises(GitError, match="invalid ref name"):
        check_ref_name(name)


def test_update_ref_is_compare_and_swap(base_repo: Path) -> None:
    repo = Repo.open(base_repo)
    base = repo.resolve_commit("HEAD")
    one = repo.commit_tree(repo.tree_of(base), [base], "one", **AUTHOR)
    two = repo.commit_tree(repo.tree_of(base), [one], "two", **AUTHOR)
    name = "refs/heads/yoi/t1"
    repo.update_ref(name, base, expected_old=None, message="create")
    with pytest.raises(ConflictError, match="expected it to be absent"):
        repo.update_ref(name, one, expected_old=None, message="create again")
    repo.update_ref(name, one, expected_old=base, message="advance")
    with pytest.raises(ConflictError, match="moved"):
        repo.update_ref(name, two, expected_old=base, message="stale")  # someone moved it
    assert repo.ref_target(name) == one
    with pytest.raises(ConflictError):
        repo.delete_ref(name, expected_old=base)
    repo.delete_ref(name, expected_old=one)
    assert repo.ref_target(name) is None
    with pytest.raises(GitError, match="not a commit"):
        repo.update_ref(name, repo.tree_of(base), expected_old=None, message="tree")
    with pytest.raises(GitError, match="40-hex"):
        repo.update_ref(name, "HEAD", expected_old=None, message="symbolic")


def test_stale_lock_file_is_a_conflict_not_a_crash(base_repo: Path) -> None:
    repo = Repo.open(base_repo)
    base = repo.resolve_commit("HEAD")
    (base_repo / ".git" / "refs" / "yoi").mkdir()
    (base_repo / ".git" / "refs" / "yoi" / "x.lock").write_text("")
    with pytest.raises(ConflictError, match="another writer") as info:
        repo.update_ref("refs/yoi/x", base, expected_old=None, message="m")
    assert info.value.hint and "x.lock" in info.value.hint


def _race_worker(path: str, worker: int, rounds: int, barrier: object, out: object) -> None:
    repo = Repo.open(path)
    base = repo.resolve_commit("HEAD")
    tree = repo.tree_of(base)
    mine = [repo.commit_tree(tree, [base], f"w{worker} r{r}", **AUTHOR) for r in range(rounds)]
    for r in range(rounds):
        barrier.wait()  # type: ignore[attr-defined]
        try:
            repo.update_ref(f"refs/yoi/race/r{r}", mine[r], expected_old=None, message="race")
            result = "won"
        except ConflictError:
            result = "lost"
        except Exception as exc:  # anything else is a bug the test must show
            result = f"error {exc!r}"
        out.put((r, worker, mine[r], result))  # type: ignore[attr-defined]


def test_create_if_absent_race_has_exactly_one_winner(base_repo: Path) -> None:
    workers, rounds = 8, 20
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(workers)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_race_worker, args=(str(base_repo), w, rounds, barrier, out))
        for w in range(workers)
    ]
    for proc in procs:
        proc.start()
    results = []
    try:
        for _ in range(workers * rounds):
            results.append(out.get(timeout=60))
    except queue.Empty:
        pytest.fail(f"race workers stalled after {len(results)} results")
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    repo = Repo.open(base_repo)
    for r in range(rounds):
        this_round = [res for res in results if res[0] == r]
        assert not [res for res in this_round if res[3].startswith("error")], this_round
        winners = [res for res in this_round if res[3] == "won"]
        assert len(winners) == 1, this_round
        assert repo.ref_target(f"refs/yoi/race/r{r}") == winners[0][2]


# -- commits ---------------------------------------------------------------------------------


def test_commit_tree_moves_no_ref_and_commit_on_ref_is_cas(base_repo: Path) -> None:
    repo = Repo.open(base_repo)
    base = repo.resolve_commit("HEAD")
    refs_before = git(base_repo, "for-each-ref")
    commit = repo.commit_tree(repo.tree_of(base), [base], "plain", when=1_700_000_000, **AUTHOR)
    assert git(base_repo, "for-each-ref") == refs_before
    shown = git(base_repo, "show", "-s", "--format=%an <%ae> %at %cn %P %s", commit).strip()
    assert shown == f"Yoi Engine <yoi@example.invalid> 1700000000 Yoi Engine {base} plain"
    first = repo.commit_on_ref(
        "refs/heads/yoi/w", repo.tree_of(base), base, "first", create=True, **AUTHOR
    )
    assert repo.ref_target("refs/heads/yoi/w") == first
    second = repo.commit_on_ref("refs/heads/yoi/w", repo.tree_of(base), first, "second", **AUTHOR)
    with pytest.raises(ConflictError):
        repo.commit_on_ref("refs/heads/yoi/w", repo.tree_of(base), first, "stale", **AUTHOR)
    with pytest.raises(ConflictError):
        repo.commit_on_ref("refs/heads/yoi/w", repo.tree_of(base), base, "x", create=True, **AUTHOR)
    assert repo.ref_target("refs/heads/yoi/w") == second
    assert git(base_repo, "rev-parse", "HEAD").strip() == base


def test_libgit2_commits_run_no_hooks(base_repo: Path, tmp_path: Path) -> None:
    sentinel = tmp_path / "hook-fired"
    for hook in ("post-commit", "pre-commit", "reference-transaction"):
        path = base_repo / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\ntouch {sentinel}\n")
        path.chmod(0o755)
    repo = Repo.open(base_repo)
    base = repo.resolve_commit("HEAD")
    repo.commit_on_ref("refs/heads/yoi/h", repo.tree_of(base), base, "m", create=True, **AUTHOR)
    assert not sentinel.exists()


# -- private worktrees -----------------------------------------------------------------------


def test_private_worktree_is_detached_and_leaves_the_user_alone(
    base_repo: Path, tmp_path: Path
) -> None:
    _make_user_dirty(base_repo)
    git(base_repo, "branch", "yoi/x")
    before = user_state(base_repo)
    hooks_before = sorted(p.name for p in (base_repo / ".git" / "hooks").iterdir())
    repo = Repo.open(base_repo)
    base = repo.resolve_commit("yoi/x")
    wt_path = repo.common_dir / "yoi" / "worktrees" / "run-1"
    wt = repo.add_private_worktree(base, wt_path, "yoi-run-1")
    assert (wt_path / "text.txt").read_text() in ("one\ntwo\nthree\n", "one\r\ntwo\r\nthree\r\n")
    assert git(wt_path, "rev-parse", "--abbrev-ref", "HEAD").strip() == "HEAD"  # detached
    assert "yoi-tmp/" not in git(base_repo, "branch", "--list")
    git(base_repo, "branch", "-D", "yoi/x")  # the user can still delete "the" branch
    _, patch = _target(base_repo, tmp_path, _new_file)
    tree = wt.apply_to_index(patch)
    assert "src/new.py" in git(base_repo, "ls-tree", "-r", "--name-only", tree)
    assert not (wt_path / "src" / "new.py").exists()  # INDEX only: disk untouched
    assert [w.name for w in repo.list_private_worktrees("yoi-")] == ["yoi-run-1"]
    assert user_state(base_repo) == before
    assert repo.remove_private_worktree("yoi-run-1") is True
    assert not wt_path.exists()
    assert "run-1" not in git(base_repo, "worktree", "list")
    assert repo.list_private_worktrees("yoi-") == []
    assert repo.remove_private_worktree("yoi-run-1") is False
    assert user_state(base_repo) == before
    assert sorted(p.name for p in (base_repo / ".git" / "hooks").iterdir()) == hooks_before


def test_worktree_refusals(base_repo: Path, tmp_path: Path) -> None:
    repo = Repo.open(base_repo)
    base = repo.resolve_commit("HEAD")
    (tmp_path / "taken").mkdir()
    with pytest.raises(GitError, match="already exists"):
        repo.add_private_worktree(base, tmp_path / "taken", "yoi-a")
    with pytest.raises(GitError, match="invalid worktree name"):
        repo.add_private_worktree(base, tmp_path / "wt", "../evil")
    with repo.private_worktree(base, tmp_path / "deep" / "wt", "yoi-b") as wt:
        with pytest.raises(GitError):
            repo.add_private_worktree(base, tmp_path / "other", "yoi-b")  # name in use
        assert wt.path.is_dir()
        with pytest.raises(PatchError, match="empty"):
            wt.apply_to_index(b"")
        with pytest.raises(PatchError, match="does not parse"):
            wt.apply_to_index(b"this is not a diff\n")
    assert not (tmp_path / "deep" / "wt").exists()
    assert "yoi-b" not in git(base_repo, "worktree", "list")
    assert "yoi-tmp" not in git(base_repo, "branch", "--list")


def test_apply_failure_names_the_reason_and_changes_nothing(
    base_repo: Path, tmp_path: Path
) -> None:
    repo = Repo.open(base_repo)
    base = repo.resolve_commit("HEAD")
    good = (
        b"diff --git a/gone.txt b/gone.txt\n--- a/gone.txt\n+++ b/gone.txt\n"
        b"@@ -1 +1 @@\n-bye\n+hello\n"
    )
    bad = (
        b"diff --git a/text.txt b/text.txt\n--- a/text.txt\n+++ b/text.txt\n"
        b"@@ -1 +1 @@\n-nope\n+x\n"
    )
    with repo.private_worktree(base, tmp_path / "wt", "yoi-fail") as wt:
        with pytest.raises(PatchError, match="does not apply") as info:
            wt.apply_to_index(good + bad)
        assert "text.txt" in str(info.value)
        assert wt.apply_to_index(good) != repo.tree_of(base)  # nothing stacked from the failure


def test_a_private_worktree_leaves_the_ticket_store_out(tmp_path: Path) -> None:
    """The store's files are not checked out (at 10,000 tickets: 100,000 files written and
    deleted per run and per gate run); the worktree is clean, its HEAD the base's tree
    without .yoi/ on top of the base; reading it back puts the base's store in again, with
    any file the runner wrote under .yoi/ over it (so the path policy sees it)."""
    files: dict[str, str | bytes] = {
        "README.md": "hi\n",
        "src/app.py": "print(1)\n",
        ".yoi/config.yaml": "version: 1\n",
        ".yoi/tickets/open/t/ticket.md": "x\n",
        ".yoi-example/keep.txt": "kept\n",
    }
    root = init_repo(tmp_path / "repo", files)
    before = user_state(root)
    repo = Repo.open(root)
    base = repo.resolve_commit("HEAD")
    base_tree = repo.tree_of(base)
    with repo.private_worktree(base, tmp_path / "wt", "yoi-nostore") as wt:
        assert sorted(p.name for p in wt.path.iterdir()) == [
            ".git",
            ".yoi-example",
            "README.md",
            "src",
        ]
        assert git(wt.path, "status", "--porcelain") == ""  # nothing shows as deleted
        head = git(wt.path, "rev-parse", "HEAD").strip()
        assert git(wt.path, "rev-parse", "HEAD^").strip() == base
        assert ".yoi" not in git(wt.path, "ls-tree", "--name-only", "HEAD").split()
        assert wt.workdir_tree() == base_tree and wt.workdir_diff() == b""
        (wt.path / "src" / "app.py").write_text("print(2)\n")
        changed = repo.diff_trees(base_tree, wt.workdir_tree()).files
        assert [(c.status, c.path) for c in changed] == [("M", "src/app.py")]
        (wt.path / ".yoi").mkdir()
        (wt.path / ".yoi" / "config.yaml").write_text("version: 2\n")
        (wt.path / ".yoi" / "new.txt").write_text("new\n")
        changed = repo.diff_trees(base_tree, wt.workdir_tree()).files
        assert sorted((c.status, c.path) for c in changed) == [
            ("A", ".yoi/new.txt"),
            ("M", ".yoi/config.yaml"),
            ("M", "src/app.py"),
        ]
        patch = (
            b"diff --git a/src/app.py b/src/app.py\n--- a/src/app.py\n+++ b/src/app.py\n"
            b"@@ -1 +1 @@\n-print(1)\n+print(3)\n"
        )
        tree = wt.apply_to_index(patch)
        assert repo.entry_at(tree, ".yoi/tickets/open/t/ticket.md") == repo.entry_at(
            base_tree, ".yoi/tickets/open/t/ticket.md"
        )
    with repo.private_worktree(base, tmp_path / "wt2", "yoi-nostore-2") as again:
        assert git(again.path, "rev-parse", "HEAD").strip() == head  # one object per base
    assert user_state(root) == before
    assert repo.list_private_worktrees("yoi-") == []


# -- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CHANGES))
def test_git_patch_round_trips_to_the_same_tree(base_repo: Path, tmp_path: Path, kind: str) -> None:
    tree, patch = _target(base_repo, tmp_path, CHANGES[kind])
    if kind == "binary_delta":
        assert b"GIT binary patch\ndelta " in patch
    if kind == "binary_literal":
        assert b"GIT binary patch\nliteral " in patch
    repo = Repo.open(base_repo)
    base = repo.resolve_commit("HEAD")
    before = user_state(base_repo)
    with repo.private_worktree(base, tmp_path / "wt", "yoi-rt") as wt:
        result = wt.apply_to_index(patch)
    assert result == tree  # every blob and mode equals the real `git commit`
    commit = repo.commit_tree(result, [base], kind, **AUTHOR)
    assert git(base_repo, "rev-parse", f"{commit}^{{tree}}").strip() == tree
    assert user_state(base_repo) == before
    statuses = {f.status for f in repo.diff_trees(repo.tree_of(base), result).files}
    expected = {
        "rename_exact": "R",
        "rename_partial": "R",
        "delete": "D",
        "new_file": "A",
        "binary_literal": "A",
    }.get(kind, "M")
    assert statuses == {expected}


def _file_becomes_directory(root: Path) -> None:
    (root / "gone.txt").unlink()
    (root / "gone.txt").mkdir()
    (root / "gone.txt" / "inside.txt").write_text("now a directory\n")


def _directory_becomes_file(root: Path) -> None:
    import shutil

    shutil.rmtree(root / "src")
    (root / "src").write_text("now a file\n")


def _deep_new_file(root: Path) -> None:
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "c" / "deep.txt").write_text("deep\n")


def _everything(root: Path) -> None:
    for change in CHANGES.values():
        change(root)


SPARSE_CHANGES: dict[str, Callable[[Path], None]] = {
    **CHANGES,
    "file_becomes_directory": _file_becomes_directory,
    "directory_becomes_file": _directory_becomes_file,
    "deep_new_file": _deep_new_file,
    "everything": _everything,
}


@pytest.mark.parametrize("kind", sorted(SPARSE_CHANGES))
def test_index_only_applies_to_the_same_tree_as_git(
    base_repo: Path, tmp_path: Path, kind: str
) -> None:
    """The sparse private index (only the paths the patch names) gives the tree that
    `git commit` made, for every kind of change, and each apply starts from the base."""
    tree, patch = _target(base_repo, tmp_path, SPARSE_CHANGES[kind])
    repo = Repo.open(base_repo)
    base = repo.resolve_commit("HEAD")
    index = repo.index_only(base)
    assert index.apply_to_index(patch) == tree
    assert index.apply_to_index(patch) == tree  # not stacked on the first
    assert git(base_repo, "cat-file", "-t", tree).strip() == "tree"


def test_index_only_keeps_its_index_in_memory(base_repo: Path, tmp_path: Path) -> None:
    """The sparse index is built in memory and libgit2's apply reads it there (yoi does
    not write it first): what the slot's index file holds on disk (emptied behind its
    back, or gone) changes nothing. Fails if libgit2 ever reads the file instead."""
    tree, patch = _target(base_repo, tmp_path, SPARSE_CHANGES["everything"])
    repo = Repo.open(base_repo)
    index = repo.index_only(repo.resolve_commit("HEAD"))
    assert index.apply_to_index(patch) == tree
    on_disk = index.path / "index"
    emptied = {**os.environ, "GIT_DIR": str(index.path), "GIT_INDEX_FILE": str(on_disk)}
    subprocess.run(["git", "read-tree", "--empty"], env=emptied, check=True)
    assert index.apply_to_index(patch) == tree
    on_disk.unlink()
    assert index.apply_to_index(patch) == tree
    assert on_disk.is_file()  # libgit2 wrote it once, after the patch applied


@pytest.mark.parametrize(
    ("name", "patch", "message"),
    [
        (
            "file where a directory is",
            b"diff --git a/src b/src\nnew file mode 100644\n--- /dev/null\n+++ b/src\n"
            b"@@ -0,0 +1 @@\n+x\n",
            "'src' is a directory",
        ),
        (
            "directory where a file is",
            b"diff --git a/README.md/x b/README.md/x\nnew file mode 100644\n--- /dev/null\n"
            b"+++ b/README.md/x\n@@ -0,0 +1 @@\n+x\n",
            "'README.md' is a file",
        ),
        (
            "wrong preimage",
            b"diff --git a/text.txt b/text.txt\n--- a/text.txt\n+++ b/text.txt\n"
            b"@@ -1 +1 @@\n-nope\n+x\n",
            "does not apply",
        ),
    ],
)
def test_index_only_refuses_what_git_refuses(
    base_repo: Path, tmp_path: Path, name: str, patch: bytes, message: str
) -> None:
    repo = Repo.open(base_repo)
    base = repo.resolve_commit("HEAD")
    index = repo.index_only(base)
    with pytest.raises(PatchError, match=message):
        index.apply_to_index(patch)
    work = tmp_path / "check"
    git(tmp_path, "clone", "-q", str(base_repo), str(work))
    (tmp_path / "p.diff").write_bytes(patch)
    refused = subprocess.run(["git", "apply", "--cached", str(tmp_path / "p.diff")], cwd=work)
    assert refused.returncode != 0, name  # git refuses it too
    good = b"diff --git a/gone.txt b/gone.txt\n--- a/gone.txt\n+++ b/gone.txt\n"
    good += b"@@ -1 +1 @@\n-bye\n+hello\n"
    after = index.apply_to_index(good)  # nothing of the refused patch stays behind
    assert (
        git(base_repo, "ls-tree", "-r", "--name-only", after).split()
        == git(base_repo, "ls-tree", "-r", "--name-only", repo.tree_of(base)).split()
    )


def _workdir_edits(root: Path) -> None:
    for change in CHANGES.values():
        change(root)
    os.symlink("text.txt", root / "newlink")
    (root / "deep" / "er").mkdir(parents=True)
    (root / "deep" / "er" / "x.txt").write_bytes(b"crlf line\r\n")
    (root / "name with spaces.txt").write_text("libgit2 needs quoted names for this\n")


def test_workdir_diff_reapplies_to_the_same_tree(base_repo: Path, tmp_path: Path) -> None:
    tree, _ = _target(base_repo, tmp_path, _workdir_edits)
    repo = Repo.open(base_repo)
    base = repo.resolve_commit("HEAD")
    with repo.private_worktree(base, tmp_path / "runner", "yoi-runner") as wt:
        _workdir_edits(wt.path)
        patch = wt.workdir_diff()
        assert wt.workdir_tree() == tree
        assert git(wt.path, "status", "--porcelain", "--untracked-files=no") != ""
        assert git(wt.path, "diff", "--cached") == ""  # no index was written
    assert b"new file mode 120000" in patch and b"deleted file mode" in patch
    assert b"old mode 100644\nnew mode 100755" in patch and b"GIT binary patch" in patch
    with repo.private_worktree(base, tmp_path / "apply", "yoi-apply") as wt:
        assert wt.apply_to_index(patch) == tree


def test_workdir_diff_with_autocrlf_shows_only_real_edits(base_repo: Path, tmp_path: Path) -> None:
    git(base_repo, "config", "core.autocrlf", "true")
    repo = Repo.open(base_repo)
    base = repo.resolve_commit("HEAD")
    with repo.private_worktree(base, tmp_path / "wt", "yoi-crlf") as wt:
        on_disk = (wt.path / "text.txt").read_bytes()
        assert on_disk == b"one\r\ntwo\r\nthree\r\n"  # built-in CRLF filter applied
        (wt.path / "text.txt").write_bytes(on_disk + b"four\r\n")
        diff = repo.diff_trees(repo.tree_of(base), wt.workdir_tree())
    assert [(f.path, f.additions, f.deletions) for f in diff.files] == [("text.txt", 1, 0)]
    assert b"+four\n" in diff.patch and b"\r" not in diff.patch


# -- normalized diff -------------------------------------------------------------------------


def test_normalized_diff_ignores_user_config(base_repo: Path, tmp_path: Path) -> None:
    tree, patch = _target(
        base_repo, tmp_path, _rename_partial, _crlf_edit, _binary_delta, _mode_change
    )
    repo = Repo.open(base_repo)
    base_tree = repo.tree_of(repo.resolve_commit("HEAD"))
    with repo.private_worktree(repo.resolve_commit("HEAD"), tmp_path / "wt", "yoi-nd") as wt:
        assert wt.apply_to_index(patch) == tree
    clean = repo.diff_trees(base_tree, tree)
    _make_user_dirty(base_repo)
    for key, value in [
        ("diff.mnemonicPrefix", "true"),
        ("core.abbrev", "12"),
        ("diff.context", "8"),
        ("diff.indentHeuristic", "false"),
    ]:
        git(base_repo, "config", key, value)
    (base_repo / ".gitattributes").write_text("*.txt binary\n")
    configured = Repo.open(base_repo).diff_trees(base_tree, tree)
    assert configured == clean
    files = {f.path: f for f in clean.files}
    assert files["partial2.txt"].status == "R" and files["partial2.txt"].old_path == "partial.txt"
    assert files["crlf.txt"].additions == 1 and files["crlf.txt"].deletions == 1
    assert files["image.bin"].binary and files["run.sh"].new_mode == 0o100755
    assert b"+BETA\r\n" in clean.patch and b"diff --git a/crlf.txt b/crlf.txt\n" in clean.patch
    assert (clean.additions, clean.deletions) == (2, 2)


def test_normalized_text_matches_git_cli_and_identity_is_stable(
    base_repo: Path, tmp_path: Path
) -> None:
    tree, _ = _target(base_repo, tmp_path, _crlf_edit, _rename_exact, _delete, _new_file)
    clone = next(tmp_path.glob("clone-*"))
    cli = git_bytes(clone, "diff", "-M", "HEAD~1", "HEAD")
    repo = Repo.open(base_repo)
    base_tree = repo.tree_of(repo.resolve_commit("HEAD"))
    git(base_repo, "fetch", "-q", str(clone), "HEAD")
    diff = repo.diff_trees(base_tree, tree)
    strip_index = [ln for ln in cli.split(b"\n") if not ln.startswith(b"index ")]
    assert [ln for ln in diff.patch.split(b"\n") if not ln.startswith(b"index ")] == strip_index
    again = Repo.open(base_repo).diff_trees(base_tree, tree)
    assert again.identity == diff.identity and len(diff.identity) == 64
    assert repo.diff_trees(base_tree, base_tree).identity != diff.identity
    assert repo.diff_trees(base_tree, base_tree).files == ()


def test_type_change_is_one_t_entry_and_round_trips(base_repo: Path, tmp_path: Path) -> None:
    def to_link(root: Path) -> None:
        (root / "text.txt").unlink()
        os.symlink("README.md", root / "text.txt")

    tree, patch = _target(base_repo, tmp_path, to_link)
    repo = Repo.open(base_repo)
    base = repo.resolve_commit("HEAD")
    with repo.private_worktree(base, tmp_path / "wt", "yoi-t") as wt:
        assert wt.apply_to_index(patch) == tree
        (change,) = repo.diff_trees(repo.tree_of(base), tree).files
        assert (change.status, change.path, change.old_mode, change.new_mode) == (
            "T",
            "text.txt",
            0o100644,
            0o120000,
        )
        assert wt.apply_to_index(repo.diff_trees(repo.tree_of(base), tree).patch) == tree


def test_checkout_runs_no_external_filter_driver(base_repo: Path, tmp_path: Path) -> None:
    sentinel = tmp_path / "filter-ran"
    (base_repo / ".gitattributes").write_text("*.dat filter=evil\n")
    (base_repo / "x.dat").write_text("data\n")
    commit_all(base_repo, "attributes")
    for step in ("smudge", "clean"):
        git(base_repo, "config", f"filter.evil.{step}", f"touch {sentinel}; cat")
    git(base_repo, "config", "filter.evil.required", "true")
    repo = Repo.open(base_repo)
    base = repo.resolve_commit("HEAD")
    with repo.private_worktree(base, tmp_path / "wt", "yoi-filter") as wt:
        assert (wt.path / "x.dat").read_text() == "data\n"
        (wt.path / "x.dat").write_text("changed\n")
        assert wt.workdir_tree() != repo.tree_of(base)
    assert not sentinel.exists()


def _diff_in_child(
    repo: str, base: str, new: str, go: Any, out: multiprocessing.Queue[bytes]
) -> None:
    go.wait(60)  # every child starts creating at once: the race the lock must settle
    out.put(Repo.open(repo).diff_trees(base, new).patch)


def test_the_diff_repository_is_made_once_kept_and_remade_when_changed(
    base_repo: Path, tmp_path: Path
) -> None:
    (base_repo / "README.md").write_text("changed\n")
    new = commit_all(base_repo, "change")
    repo = Repo.open(base_repo)
    base = repo.tree_of(f"{new}~1")
    home = base_repo / ".git" / "yoi" / "cache" / "diff"
    tmp_before = set(Path("/tmp").glob("yoi-diff-*"))
    # several processes make it at once: one wins, all get the same canonical diff
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[bytes] = ctx.Queue()
    go = ctx.Barrier(6)
    procs = [
        ctx.Process(target=_diff_in_child, args=(str(base_repo), base, new, go, out))
        for _ in range(6)
    ]
    for p in procs:
        p.start()
    patches = {out.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
    expected = repo.diff_trees(base, new).patch
    assert patches == {expected} and b"a/README.md" in expected
    assert (home / "diff.git" / "HEAD").is_file()
    assert not [p for p in home.parent.iterdir() if p.name.startswith(".diff-")]  # none set aside
    assert set(Path("/tmp").glob("yoi-diff-*")) == tmp_before  # nothing left in /tmp
    # a changed config is not trusted: the repository is made again
    git(home / "diff.git", "config", "diff.noprefix", "true")
    assert Repo.open(base_repo).diff_trees(base, new).patch == expected
    assert git(home / "diff.git", "config", "diff.noprefix").strip() == "false"


def test_creators_of_the_diff_repository_take_turns(
    base_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process making the diff repository waits while another holds ``diff.lock``, then
    uses the repository that one made instead of setting it aside as broken."""
    import contextlib

    from yoi import git as yoi_git
    from yoi import slots

    (base_repo / "README.md").write_text("changed\n")
    new = commit_all(base_repo, "change")
    base = Repo.open(base_repo).tree_of(f"{new}~1")
    cache_dir = base_repo / ".git" / "yoi" / "cache"
    cache_dir.mkdir(parents=True)
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[bytes] = ctx.Queue()
    go = ctx.Barrier(2)
    with slots.held(cache_dir / "diff.lock"):
        child = ctx.Process(target=_diff_in_child, args=(str(base_repo), base, new, go, out))
        child.start()
        go.wait(60)
        with pytest.raises(queue.Empty):
            out.get(timeout=1.5)  # still waiting for the lock
        assert not (cache_dir / "diff").exists()
        # this process makes it meanwhile (the lock it holds stands in for its own turn)
        with monkeypatch.context() as m:
            m.setattr(slots, "held", lambda _path: contextlib.nullcontext())
            yoi_git._DiffRepo(base_repo / ".git" / "objects", cache_dir)
        made = (cache_dir / "diff").stat().st_ino
    patch = out.get(timeout=60)
    child.join(timeout=60)
    assert b"a/README.md" in patch and (cache_dir / "diff" / "diff.git" / "HEAD").is_file()
    assert (cache_dir / "diff").stat().st_ino == made  # used, not set aside and made again
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".diff-")]


def test_changed_entries_give_the_policy_of_the_whole_trees(base_repo: Path) -> None:
    """Skipping the subtrees two trees share loses no added, changed or removed entry:
    the result-tree policy is the same as over every entry (adds, edits, deletions, a
    directory replaced by a file and back, a symlink, a mode change, a deep new file)."""
    from yoi import patching

    repo = Repo.open(base_repo)
    (base_repo / "deep" / "a" / "b").mkdir(parents=True)
    (base_repo / "deep" / "a" / "b" / "keep.txt").write_text("keep\n")
    (base_repo / "deep" / "same.txt").write_text("same\n")
    (base_repo / "dir").mkdir()
    (base_repo / "dir" / "x.txt").write_text("x\n")
    (base_repo / "file").write_text("f\n")
    base = commit_all(base_repo, "base")

    def after(change: Callable[[], object]) -> str:
        git(base_repo, "checkout", "-q", base, "--", ".")
        change()
        return commit_all(base_repo, "change")

    def dir_to_file() -> None:
        git(base_repo, "rm", "-rq", "dir")
        (base_repo / "dir").write_text("now a file\n")

    def file_to_dir() -> None:
        (base_repo / "file").unlink()
        (base_repo / "file").mkdir()
        (base_repo / "file" / "inner.txt").write_text("i\n")

    def link_and_mode() -> None:
        os.symlink("deep", base_repo / "link")
        (base_repo / "deep" / "same.txt").chmod(0o755)

    changes = [
        lambda: (base_repo / "deep" / "a" / "b" / "new.txt").write_text("n\n"),
        lambda: (base_repo / "deep" / "same.txt").write_text("edited\n"),
        lambda: git(base_repo, "rm", "-q", "deep/a/b/keep.txt"),
        dir_to_file,
        file_to_dir,
        link_and_mode,
        lambda: (base_repo / ".gitmodules").write_text("[x]\n"),
    ]
    for change in changes:
        new = after(change)
        whole = patching.check_tree_policy(repo.tree_entries(new), repo.tree_entries(base))
        changed, before = repo.changed_entries(repo.tree_of(base), repo.tree_of(new))
        assert patching.check_tree_policy(changed, before) == whole
        differing = {p for p, m, o in repo.tree_entries(new)} ^ {
            p for p, m, o in repo.tree_entries(base)
        }
        assert differing <= {p for p, _m, _o in changed} | {p for p, _m, _o in before}
        assert "deep/a/b/keep.txt" not in {p for p, _m, _o in changed} or change is changes[2]
        git(base_repo, "reset", "-q", "--hard", base)
    assert repo.entry_at(repo.tree_of(base), "deep/same.txt") is not None
    assert repo.entry_at(repo.tree_of(base), "deep") is None  # a directory
    assert repo.entry_at(repo.tree_of(base), "nope/x") is None


def _to_symlink(root: Path) -> None:
    (root / "text.txt").unlink()
    os.symlink("README.md", root / "text.txt")


@pytest.mark.parametrize("kind", [*sorted(SPARSE_CHANGES), "symlink", "submodule"])
def test_diff_of_the_changed_entries_is_the_whole_tree_diff(
    base_repo: Path, tmp_path: Path, kind: str
) -> None:
    """``diff_trees`` diffs two small trees of the entries that differ (libgit2 would
    walk every entry of both trees): byte for byte the patch libgit2 gives for the two
    whole trees, with the same rename pairs, beside subtrees the two trees share."""
    import pygit2
    from pygit2.enums import DiffFind, DiffOption

    (base_repo / "src").mkdir(exist_ok=True)
    (base_repo / "src" / "old.py").write_text("print('old')\n")
    for i in range(3):  # shared subtrees, at several depths
        (base_repo / "vendor" / f"lib{i}" / "x").mkdir(parents=True)
        (base_repo / "vendor" / f"lib{i}" / "x" / "mod.py").write_text(f"v = {i}\n")
        (base_repo / "vendor" / f"lib{i}" / "note.txt").write_text(f"note {i}\n")
    commit_all(base_repo, "more")
    if kind == "submodule":
        sub = git(base_repo, "rev-parse", "HEAD").strip()
        git(base_repo, "update-index", "--add", "--cacheinfo", f"160000,{sub},vendor/sub")
        git(base_repo, "commit", "-qm", "gitlink")
        tree = git(base_repo, "rev-parse", "HEAD^{tree}").strip()
    else:
        change = _to_symlink if kind == "symlink" else SPARSE_CHANGES[kind]
        tree, _patch = _target(base_repo, tmp_path, change)
        git(base_repo, "fetch", "-q", str(next(tmp_path.glob("clone-*"))), "HEAD")
    repo = Repo.open(base_repo)
    base = repo.tree_of("HEAD~1" if kind == "submodule" else "HEAD")
    got = repo.diff_trees(base, tree)

    common = Path(git(base_repo, "rev-parse", "--git-common-dir").strip())
    common = common if common.is_absolute() else base_repo / common
    oracle = pygit2.Repository(str(common / "yoi" / "cache" / "diff" / "diff.git"))
    oracle.odb.add_disk_alternate(str(common / "objects"))
    whole = (
        oracle[base]
        .peel(pygit2.Tree)
        .diff_to_tree(
            oracle[tree].peel(pygit2.Tree),
            flags=DiffOption.SHOW_BINARY,
            context_lines=3,
            interhunk_lines=0,
        )
    )
    whole.find_similar(flags=DiffFind.FIND_RENAMES, rename_threshold=50)
    expected = b"".join(p.data for p in whole if p is not None)
    assert expected  # every case changes something
    assert got.patch == expected
    assert [f.path for f in got.files] and got.base_tree == base and got.new_tree == tree
    assert not any(
        o
        for o in os.listdir(common / "yoi" / "cache" / "diff" / "diff.git" / "objects")
        if len(o) == 2
    ), "the small trees are never written to disk"


def test_tracked_files_are_kept_across_processes_and_derived_from_the_kept_tree(
    base_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache file holds the last tree's list; another tree's list is derived from it
    by the entries that differ, and equals reading every entry (files and directories
    added, removed, swapped; a symlink; a gitlink left out)."""
    from yoi import git as git_mod

    def fresh_process() -> None:
        git_mod._TRACKED.clear()

    repo = Repo.open(base_repo)
    first = repo.resolve_commit("HEAD")
    kept = repo.tracked_files(first)
    cache_file = base_repo / ".git" / "yoi" / "cache" / "tracked-files.bin"
    assert cache_file.exists()
    (base_repo / "gone.txt").unlink()
    (base_repo / "gone.txt").mkdir()
    (base_repo / "gone.txt" / "inside.txt").write_text("now a directory\n")
    (base_repo / "deep" / "er").mkdir(parents=True)
    (base_repo / "deep" / "er" / "new.txt").write_text("new\n")
    os.unlink(base_repo / "moved.txt")
    os.symlink("README.md", base_repo / "link")
    second = commit_all(base_repo, "second")
    sub = git(base_repo, "rev-parse", "HEAD").strip()
    git(base_repo, "update-index", "--add", "--cacheinfo", f"160000,{sub},vendor/sub")
    git(base_repo, "commit", "-qm", "gitlink")
    third = git(base_repo, "rev-parse", "HEAD").strip()
    expected = {
        c: sorted(git(base_repo, "ls-tree", "-r", "--name-only", c).split())
        for c in (second, third)
    }
    walked: list[str] = []
    real = Repo._all_tracked

    def counting(self: Repo, tree: str) -> tuple[str, ...]:
        walked.append(tree)
        return real(self, tree)

    monkeypatch.setattr(Repo, "_all_tracked", counting)
    for commit in (second, third):
        fresh_process()
        got = Repo.open(base_repo).tracked_files(commit)
        assert list(got) == [p for p in expected[commit] if p != "vendor/sub"]
    assert walked == []  # derived each time, never read in full
    fresh_process()
    assert Repo.open(base_repo).tracked_files(third) == got  # the kept tree itself
    assert list(kept) == sorted(git(base_repo, "ls-tree", "-r", "--name-only", first).split())
    cache_file.write_bytes(cache_file.read_bytes()[:-5])  # damaged: read in full, rewritten
    fresh_process()
    assert Repo.open(base_repo).tracked_files(second) == tuple(
        p for p in expected[second] if p != "vendor/sub"
    )
    assert len(walked) == 1


def test_tracked_files_read_in_full_by_git_or_by_the_walk_are_the_same(
    base_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tree read in full is listed by `git ls-tree` (fast) when the git CLI is there,
    else walked: both give every blob path (symlinks too, no gitlink), sorted; a name
    that is not UTF-8 makes the listing defer to the walk."""
    from yoi import git as git_mod

    os.symlink("text.txt", base_repo / "link")
    (base_repo / "a b" / "ü").mkdir(parents=True)
    (base_repo / "a b" / "ü" / "x.txt").write_text("x\n")
    commit_all(base_repo, "names")
    sub = git(base_repo, "rev-parse", "HEAD").strip()
    git(base_repo, "update-index", "--add", "--cacheinfo", f"160000,{sub},vendor/sub")
    git(base_repo, "commit", "-qm", "gitlink")
    repo = Repo.open(base_repo)
    tree = repo.tree_of("HEAD")
    walked = tuple(sorted(p for p, mode, _ in repo.tree_entries(tree) if mode != 0o160000))
    listed = git_mod._ls_tree(repo.common_dir, tree)
    assert listed == walked and "link" in walked and "a b/ü/x.txt" in walked
    assert "vendor/sub" not in walked
    monkeypatch.setenv("PATH", str(base_repo / "no-git-here"))
    assert git_mod._ls_tree(repo.common_dir, tree) is None
    assert repo._all_tracked(tree) == walked
    monkeypatch.undo()
    blob = (
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            cwd=base_repo,
            input=b"y\n",
            capture_output=True,
        )
        .stdout.decode()
        .strip()
    )
    subprocess.run(
        ["git", "update-index", "--add", "--cacheinfo", f"100644,{blob}".encode() + b",caf\xe9"],
        cwd=base_repo,
        check=True,
    )
    git(base_repo, "commit", "-qm", "latin-1 name")
    latin = repo.tree_of(git(base_repo, "rev-parse", "HEAD").strip())
    assert git_mod._ls_tree(repo.common_dir, latin) is None  # the walk decides that name


def test_pygit2_is_imported_without_ca_certificates_and_the_environment_is_kept(
    tmp_path: Path,
) -> None:
    """On a machine without a CA bundle (here: SSL_CERT_FILE and SSL_CERT_DIR naming
    nothing) pygit2's own import fails ("failed to load certificates"); yoi, which never
    talks TLS through libgit2, imports it without the bundle. The caller's SSL_CERT_*
    are left as they were, for yoi and for every process it starts."""
    bundle, certs = str(tmp_path / "no-bundle.pem"), str(tmp_path / "no-certs")
    child = "import os; print(os.environ['SSL_CERT_FILE'], os.environ['SSL_CERT_DIR'])"
    code = (
        "import os, subprocess, sys; import yoi.git, pygit2; "
        "print(os.environ['SSL_CERT_FILE'], os.environ['SSL_CERT_DIR']); "
        f"print(subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, "
        "text=True, check=True).stdout.strip())"
    )
    env = {**os.environ, "SSL_CERT_FILE": bundle, "SSL_CERT_DIR": certs}
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == [f"{bundle} {certs}"] * 2
