"""CLI startup: ``yoi --version`` and ``yoi ticket list`` on an empty store, against the
least a click program costs: ``python -c "import click"``.

    python bench/bench_startup.py [--repeat 20]

Target: ``yoi --version`` <= 1.5x ``import click``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import gen_store
from bench._common import PY, Row, median_of, parser, report, run, yoi


def measure(work: Path, repeat: int) -> list[Row]:
    repo = work / "empty"
    gen_store.init_repo(repo)
    gen_store.init_store(repo)
    click = median_of(lambda: run([PY, "-c", "import click"], repo), repeat)
    version = median_of(lambda: run(yoi("--version"), repo), repeat)
    listing = median_of(lambda: run(yoi("ticket", "list"), repo), repeat)
    return [
        Row("startup", "yoi --version", 0, version, "import click", click, "<= 1.5x"),
        Row("startup", "yoi ticket list (empty)", 0, listing, "import click", click),
    ]


def main() -> None:
    args = parser(__doc__.split("\n\n")[0], repeat=20).parse_args()
    work = Path(tempfile.mkdtemp(prefix="yoi-bench-startup-"))
    try:
        report(measure(work, args.repeat))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
