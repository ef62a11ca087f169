"""atheris (libFuzzer) harness: ``python -m tests.fuzz.run_atheris <target> [libFuzzer
options] [corpus dirs]``, e.g. ``-max_total_time=60 /tmp/work tests/fuzz_corpus/patch``.
Only ``YoiError`` is allowed out of a target; anything else is a crash, saved by
libFuzzer (``-artifact_prefix=``) and to be replayed as a regression test."""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]

with atheris.instrument_imports(include=["yoi"]):
    from tests.fuzz import targets


def main() -> None:
    name = sys.argv[1]
    if name not in targets.TARGETS:
        sys.exit(f"unknown target {name!r}; known: {', '.join(targets.TARGETS)}")

    def one(data: bytes) -> None:
        targets.run_one(name, data)

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
