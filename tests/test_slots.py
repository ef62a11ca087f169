"""Per-process slots (``yoi.slots``): held by one process at a time, real processes,
freed by the kernel on kill -9 and then taken over."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from yoi import slots

HOLD = """
import sys, time
from pathlib import Path
from yoi import slots
slot = slots.claim(Path(sys.argv[1]))
print(slot.path, flush=True)
time.sleep(60)
"""


def _holder(home: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(home)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def test_a_slot_is_held_by_one_process_and_taken_over_after_kill_9(tmp_path: Path) -> None:
    home = tmp_path / "slots"
    first, held = _holder(home)
    try:
        assert held == home / "0"
        mine = slots.claim(home)
        assert mine.path == home / "1"  # the child holds slot 0
        second, other = _holder(home)
        try:
            assert other == home / "2"
        finally:
            second.kill()
            second.wait()
        first.send_signal(signal.SIGKILL)
        first.wait()
        again = slots.claim(home)
        assert again.path == home / "0"  # freed by the kernel, taken over
        slots.release(again)
        slots.release(mine)
        assert slots.claim(home).path == home / "0"
    finally:
        first.kill()
        first.wait()
