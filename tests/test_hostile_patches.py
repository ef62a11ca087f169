"""Hostile candidate patches (notes/reliability.md §1, SPEC §5 path policy).

Each one must end as PATCH_APPLY_FAILED and a FAIL gate result with a clear reason, with
nothing written outside the private worktree, ``.git/hooks`` untouched, no ref moved,
no worktree left behind, and the user's tree, index and HEAD byte-identical.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import commit_all, user_state
from tests.support_diazotroph import FixedRunner, IndexOnlyRunner, Rig, make_rig
from yoi.model import RunnerStatus


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def new_file(path: str, data: bytes = b"x\n", mode: str = "100644") -> bytes:
    lines = data.splitlines(keepends=True)
    body = b"".join(b"+" + line for line in lines)
    if not data.endswith(b"\n"):
        body += b"\n\\ No newline at end of file\n"
    p = path.encode()
    return (
        b"diff --git a/%s b/%s\nnew file mode %s\nindex 0000000..%s\n--- /dev/null\n+++ b/%s\n"
        b"@@ -0,0 +1,%d @@\n"
        % (p, p, mode.encode(), blob_id(data)[:7].encode(), p, len(lines))
        + body
    )


def modify(path: str, old: bytes, new: bytes, index: str | None = None) -> bytes:
    p = path.encode()
    hunks = difflib.diff_bytes(
        difflib.unified_diff,
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        b"a/" + p,
        b"b/" + p,
    )
    ids = index or f"{blob_id(old)[:7]}..{blob_id(new)[:7]}"
    return b"diff --git a/%s b/%s\nindex %s 100644\n" % (p, p, ids.encode()) + b"".join(hunks)


def gitlink(path: str) -> bytes:
    commit = "1234567890abcdef1234567890abcdef12345678"
    p = path.encode()
    return (
        b"diff --git a/%s b/%s\nnew file mode 160000\nindex 0000000..1234567\n--- /dev/null\n"
        b"+++ b/%s\n@@ -0,0 +1 @@\n+Subproject commit %s\n" % (p, p, p, commit.encode())
    )


@dataclass(frozen=True)
class World:
    rig: Rig
    outside: Path  # a sentinel directory outside the repository: must stay empty

    def read(self, rel: str) -> bytes:
        return (self.rig.root / rel).read_bytes()


Case = Callable[[World], bytes]
CASES: dict[str, tuple[Case, str]] = {
    "dotdot": (lambda w: new_file("../pwned"), "'..'"),
    "dotdot-nested": (lambda w: new_file("src/../../pwned"), "'..'"),
    "absolute": (
        lambda w: b"--- /dev/null\n+++ %s/pwned\n@@ -0,0 +1 @@\n+x\n" % str(w.outside).encode(),
        "absolute path",
    ),
    "absolute-git": (
        lambda w: new_file("x").replace(b"+++ b/x", b"+++ %s/pwned" % str(w.outside).encode()),
        "absolute path",
    ),
    "git-hooks": (lambda w: new_file(".git/hooks/post-commit", b"#!/bin/sh\n", "100755"), ".git"),
    "git-upper": (lambda w: new_file(".GIT/config"), ".git component"),
    "git-trailing-dot": (lambda w: new_file(".git./config"), ".git component"),
    "git-short-name": (lambda w: new_file("git~1/config"), ".git component"),
    "git-nested": (lambda w: new_file("src/.git/hooks/pre-commit"), ".git component"),
    "git-dot-prefix": (lambda w: new_file("./.git/config"), "'.'"),
    "yoi-config": (
        lambda w: modify(".yoi/config.yaml", w.read(".yoi/config.yaml"), b"version: 1\n"),
        ".yoi/",
    ),
    "yoi-new-ticket": (lambda w: new_file(".yoi/tickets/open/evil/ticket.md"), ".yoi/"),
    "ci-github": (lambda w: new_file(".github/workflows/pwn.yml"), "protected"),
    "ci-gitlab": (lambda w: new_file(".gitlab-ci.yml"), "protected"),
    "pre-commit-config": (lambda w: new_file(".pre-commit-config.yaml"), "protected"),
    "husky": (lambda w: new_file(".husky/pre-commit", b"#!/bin/sh\n", "100755"), "protected"),
    "gitattributes": (
        lambda w: modify(".gitattributes", w.read(".gitattributes"), b"* filter=evil\n"),
        "protected",
    ),
    "new-symlink-and-write-through-it": (
        lambda w: new_file("evil", str(w.outside).encode(), "120000") + new_file("evil/pwned"),
        "symlink",
    ),
    "through-existing-absolute-symlink": (lambda w: new_file("outlink/pwned"), "symlink"),
    "through-existing-relative-symlink": (lambda w: new_file("rellink/pwned"), "symlink"),
    "gitlink": (lambda w: gitlink("subm"), "submodule"),
    "gitmodules-symlink": (lambda w: new_file(".gitmodules", b"/etc/passwd", "120000"), "symlink"),
    "wrong-index-preimage": (
        lambda w: modify("README.md", b"hello\n", b"pwned\n", index="1234567..89abcde"),
        "preimage",
    ),
    "backslash": (lambda w: new_file("src\\..\\..\\pwned"), "backslash"),
    "huge": (lambda w: new_file("big.txt", b"a" * 99 + b"\n") + b"+" * (9 << 20), "limit"),
}


def _hooks(root: Path) -> dict[str, bytes]:
    hooks = root / ".git" / "hooks"
    return {p.name: p.read_bytes() for p in sorted(hooks.iterdir())} if hooks.exists() else {}


def _world(tmp_path: Path) -> World:
    outside = tmp_path / "outside"
    outside.mkdir()
    rig = make_rig(tmp_path / "repo")
    os.symlink(outside, rig.root / "outlink")
    os.symlink("../outside", rig.root / "rellink")
    commit_all(rig.root, "links that point outside")
    return World(rig, outside)


@pytest.mark.parametrize("runner", [FixedRunner, IndexOnlyRunner])
@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_patch_is_refused_and_nothing_leaks(
    tmp_path: Path, name: str, runner: type[FixedRunner]
) -> None:
    """With a checkout (a linked worktree) and without one (an index-only repository)."""
    make_patch, expected = CASES[name]
    world = _world(tmp_path)
    rig = world.rig
    patch = make_patch(world)
    state, hooks, refs = user_state(rig.root), _hooks(rig.root), rig.refs("refs")

    workorder, ex = rig.execute(runner(patch))
    outcome = rig.evaluate(workorder, ex)

    assert ex.status is RunnerStatus.PATCH_APPLY_FAILED, ex.bundle["notes"]
    assert ex.commit_sha is None and ex.violations
    assert any(expected in v for v in ex.violations), ex.violations
    assert outcome.gate_result == "FAIL"
    assert outcome.gate_reason.startswith("runner status: PATCH_APPLY_FAILED: ")
    assert expected in outcome.gate_reason or expected in " ".join(ex.violations)
    by_name = {g["name"]: g for g in outcome.gates}
    assert by_name["path-policy"]["result"] == "FAIL"
    assert by_name["applied-cleanly"]["result"] == "FAIL"
    # nothing escaped, nothing changed
    assert list(world.outside.iterdir()) == []
    assert not [p for p in tmp_path.rglob("pwned*") if ".git" not in p.parts]
    assert _hooks(rig.root) == hooks
    assert rig.refs("refs") == refs
    assert user_state(rig.root) == state
    assert rig.worktree_leftovers() == []


def test_huge_attempted_patch_is_not_kept_in_the_bundle(tmp_path: Path) -> None:
    world = _world(tmp_path)
    make_patch, _ = CASES["huge"]
    _, ex = world.rig.execute(FixedRunner(make_patch(world)))
    assert ex.status is RunnerStatus.PATCH_APPLY_FAILED
    assert ex.patch == b"" and ex.bundle["content"] == ""
    assert "is not kept" in ex.bundle["notes"] and "sha256" in ex.bundle["notes"]


def test_the_hostile_patches_would_apply_without_the_policy(tmp_path: Path) -> None:
    """The suite is meaningful: libgit2 itself applies the CI edit, the gitlink and the
    wrong-preimage patch (reliability.md), so only yoi's checks stop them."""
    world = _world(tmp_path)
    rig = world.rig
    base = rig.repo.resolve_commit("HEAD")
    path = rig.store.runtime_dir / "probe-wt"
    with rig.repo.private_worktree(base, path, "probe-wt") as worktree:
        for name in ("ci-github", "gitlink", "wrong-index-preimage"):
            tree = worktree.apply_to_index(CASES[name][0](world))
            assert tree != rig.repo.tree_of(base), name


def test_many_violations_are_capped(tmp_path: Path) -> None:
    world = _world(tmp_path)
    patch = b"".join(new_file(f".github/w{i}.yml") for i in range(300))
    _, ex = world.rig.execute(FixedRunner(patch))
    assert ex.status is RunnerStatus.PATCH_APPLY_FAILED
    assert len(ex.violations) == 51 and ex.violations[-1] == "(+250 more)"
    assert len(ex.bundle["notes"].encode()) <= 8 * 1024
