"""Engine work per ticket in instructions (valgrind's callgrind), against the git
plumbing floor of ``bench_engine``: the same comparison without this machine's noise.

Wall times here swing by a quarter between identical runs, so an engine change worth a
few percent cannot be seen in ``bench_engine``. callgrind counts the instructions a
process executes in user space (the same count for the same code and input, whatever
else the machine does; the kernel's work, file creation and fsync included, is not
counted): a change to the engine's Python shows exactly.

- engine: ``yoi engine run`` under callgrind over a store with ``--tickets`` queued
  tickets and over one with twice as many; instructions per ticket = the difference /
  ``--tickets`` (what starting Python and importing yoi cost is in both and cancels).
- floor: ``git apply --cached`` + ``write-tree`` + ``commit-tree`` + ``update-ref`` under
  callgrind for each of ``--floor-tickets`` patches of the first store (the four
  processes of ``bench_engine``'s floor), summed, per ticket.

The floor's processes spend most of their time in the kernel (starting a process), which
callgrind does not see, so this ratio is far above ``bench_engine``'s wall-time ratio:
it measures the engine's own code, not the target. Needs ``valgrind`` on the PATH
(Debian: ``apt-get install valgrind``); takes a few minutes (callgrind runs code ~50x
slower).

    python bench/bench_instructions.py [--tickets 10] [--floor-tickets 4]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import gen_store
from bench._common import PY, run, yoi

_TOTALS = re.compile(rb"^totals: (\d+)", re.MULTILINE)


def counted(
    argv: list[str], cwd: Path, out: Path, extra_env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Instructions ``argv`` executed in user space (its children not followed), and
    what it printed."""
    proc = run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--dump-instr=no",
            "--compress-strings=no",
            *argv,
        ],
        cwd,
        extra_env=extra_env,
    )
    found = _TOTALS.search(out.read_bytes())
    if found is None:
        raise RuntimeError(f"no instruction total in {out}")
    out.unlink()
    return int(found.group(1)), proc.stdout.decode().strip()


def _is_binary(path: str) -> bool:
    """``path`` (links followed) is an executable file, not a script."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def engine(repo: Path, work: Path) -> int:
    # the interpreter itself, not a wrapper script (a pyenv shim would be counted instead);
    # a virtual environment's python (a link to the interpreter) is kept as it is, since
    # the interpreter finds the environment's packages through the path it was started by
    python = PY if _is_binary(PY) else os.path.realpath(PY)
    return counted([python, *yoi("engine", "run")[1:]], repo, work / "engine.out")[0]


def floor(repo: Path, work: Path, clones: list[gen_store.Clone]) -> int:
    """Instructions of ``bench_engine``'s floor over ``clones``' patches."""
    base = run(["git", "rev-parse", "HEAD"], repo).stdout.decode().strip()
    index = repo / ".git" / "bench-floor-index"
    run(["git", "read-tree", base], repo, extra_env={"GIT_INDEX_FILE": str(index)})
    out = work / "floor.out"
    total = 0
    for clone in clones:
        scratch = repo / ".git" / "bench-floor-work"
        shutil.copyfile(index, scratch)
        idx = {"GIT_INDEX_FILE": str(scratch)}
        patch = str(repo / "patches" / f"{clone.patch_name}.diff")
        steps = [
            counted(["git", "apply", "--cached", patch], repo, out, idx),
            tree := counted(["git", "write-tree"], repo, out, idx),
            sha := counted(
                ["git", "commit-tree", tree[1], "-p", base, "-m", clone.title], repo, out
            ),
            counted(
                ["git", "update-ref", f"refs/heads/floor/{clone.slug}", sha[1], "0" * 40], repo, out
            ),
        ]
        total += sum(count for count, _printed in steps)
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tickets", type=int, default=10, help="queued tickets (and twice as many)")
    p.add_argument("--floor-tickets", type=int, default=4, help="patches the floor applies")
    p.add_argument("--keep", action="store_true", help="keep the stores")
    args = p.parse_args()
    if args.tickets < 1 or not 1 <= args.floor_tickets <= args.tickets:
        p.error("--tickets must be at least 1 and --floor-tickets between 1 and --tickets")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: engine instructions not measured")
        return
    n = args.tickets
    work = Path(tempfile.mkdtemp(prefix="yoi-bench-instr-"))
    try:
        templates = gen_store.build_templates(work)
        small, large = work / "small", work / "large"
        clones = gen_store.generate(small, n, templates, queued=n)
        gen_store.generate(large, 2 * n, templates, queued=2 * n)
        queued = [c for c in clones if (small / "patches" / f"{c.patch_name}.diff").exists()]
        floor_per = floor(small, work, queued[: args.floor_tickets]) / args.floor_tickets
        once, twice = engine(small, work), engine(large, work)
    finally:
        if args.keep:
            print(f"stores kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    per = (twice - once) / n
    fixed = once - per * n
    print(f"engine run, fixed (start, imports, idle tick): {fixed / 1e6:,.1f} M instructions")
    print(f"engine per ticket ({n} and {2 * n} queued): {per / 1e6:,.2f} M instructions")
    print(f"git plumbing per ticket (4 processes): {floor_per / 1e6:,.2f} M instructions")
    print(f"ratio (user-space instructions only): {per / floor_per:.2f}x")


if __name__ == "__main__":
    main()
