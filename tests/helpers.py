"""Small helpers for tests that build real repositories."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run the real git CLI and return stdout."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {args} failed: {proc.stdout}\n{proc.stderr}")
    return proc.stdout


def write_tree(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def init_repo(path: Path, files: dict[str, str | bytes] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    write_tree(path, files or {"README.md": "hello\n", "src/app.py": "print('hi')\n"})
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def user_state(repo: Path) -> tuple[str, str, bytes, str]:
    """Snapshot of everything the engine must never touch: HEAD, status, index bytes,
    and a hash of every tracked and untracked file outside .yoi/ and .git/."""
    head = git(repo, "rev-parse", "HEAD").strip()
    status = git(repo, "status", "--porcelain", "-uall", "--", ".", ":(exclude).yoi")
    index = (repo / ".git" / "index").read_bytes() if (repo / ".git" / "index").exists() else b""
    digest = hashlib.sha256()
    for p in sorted(repo.rglob("*")):
        rel = p.relative_to(repo)
        if rel.parts and rel.parts[0] in (".git", ".yoi"):
            continue
        if p.is_symlink():
            digest.update(f"L {rel} {p.readlink()}\n".encode())
        elif p.is_file():
            digest.update(f"F {rel}\n".encode() + p.read_bytes())
    return head, status, index, digest.hexdigest()


def counted_fsyncs(monkeypatch: pytest.MonkeyPatch, *, failing: int | None = None) -> list[int]:
    """Record the descriptor of every ``os.fsync`` from now on (the list returned); the
    one of ``failing`` raises EIO instead and is not recorded."""
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        if fd == failing:
            raise OSError(5, "injected EIO")
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced
