"""What this machine's file system charges for the operations a commit is made of,
against renaming a file (the cheapest one that changes a directory), in the same run.

An engine run is mostly small durable writes: for each ticket 28 new files and
directories (its records' temp files, the run and pause directories, journals, claim
records, git's objects, the private index and the ref lock) and 33 fsyncs, where the
spawn-git floor makes 8 files and no fsync. How much those cost varies a great
deal between machines, and between directories of one machine, so when the engine's
throughput ratio (``bench_engine.py``) differs from the figures in
``docs/performance.md``, run this on the same disk first:

    python bench/bench_fs.py [--ops 300] [--repeat 5] [--dir PATH]

Each case runs ``--ops`` operations in a fresh directory under ``--dir`` (default: the
system's temporary directory), and the cases take turns, ``--repeat`` rounds (medians).
The table's times are per 1,000 operations, i.e. microseconds per operation.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import Row, parser, report

Case = Callable[[str, int], None]
DATA = b"x" * 400  # about a small record's size
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def _touch(path: str) -> None:
    os.close(os.open(path, FLAGS, 0o600))


def create(d: str, n: int) -> None:
    for i in range(n):
        _touch(f"{d}/c{i}")


def mkdir(d: str, n: int) -> None:
    for i in range(n):
        os.mkdir(f"{d}/m{i}")


def write_fsync(d: str, n: int) -> None:
    """Write a small record into an existing file and fsync it (no new inode)."""
    for i in range(n):
        fd = os.open(f"{d}/w{i}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, DATA)
            os.fsync(fd)
        finally:
            os.close(fd)


def dir_fsync(d: str, n: int) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(n):
            os.fsync(fd)
    finally:
        os.close(fd)


def rename(d: str, n: int) -> None:
    for i in range(n):
        os.rename(f"{d}/r{i}", f"{d}/s{i}")


OPS = 300  # operations per case and round (``--ops``)
PER = 1000  # the table's "ms" are per this many operations: microseconds per operation
CASES: dict[str, Case] = {
    f"create {PER:,} files": create,
    f"make {PER:,} directories": mkdir,
    f"write + fsync {PER:,} files": write_fsync,
    f"fsync a directory {PER:,}x": dir_fsync,
}
NEEDS_FILES: dict[Case, str] = {rename: "r", write_fsync: "w"}  # they work on existing files


def measure(root: Path, ops: int, repeat: int) -> list[Row]:
    """Median seconds per operation of each case and of the rename baseline."""
    cases: dict[str, Case] = {"rename": rename, **CASES}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            d = tempfile.mkdtemp(prefix="fs-", dir=root)
            prefix = NEEDS_FILES.get(fn)
            if prefix is not None:
                for i in range(ops):
                    _touch(f"{d}/{prefix}{i}")
            start = time.perf_counter()
            fn(d, ops)
            samples[name].append((time.perf_counter() - start) / ops * PER)
    base = statistics.median(samples["rename"])
    return [
        Row("file system", name, 0, statistics.median(samples[name]), f"rename {PER:,} files", base)
        for name in CASES
    ]


def main() -> None:
    p = parser(__doc__.split("\n\n")[0], repeat=5)
    p.add_argument("--ops", type=int, default=OPS, help=f"operations per case (default {OPS})")
    p.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="yoi-bench-fs-", dir=args.dir))
    try:
        report(measure(root, args.ops, args.repeat))
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
