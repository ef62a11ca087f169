"""The one place that spawns processes (runners, gates, the git CLI for pushes).

Argument lists only, never a shell. Each child runs in its own session and process group;
at the timeout the whole group gets SIGTERM, a short grace, then SIGKILL, so
grandchildren die too. When the child exits on its own, anything it left running in its
group is killed as well. stdout and stderr are captured as bytes, each capped (head and
tail kept, the middle replaced by a marker) and read with a selector, so a child that
writes gigabytes neither deadlocks nor exhausts memory.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from yoi.errors import YoiError

MiB = 1024 * 1024
DEFAULT_MAX_OUTPUT = MiB
KILL_GRACE_S = 1.0  # between SIGTERM and SIGKILL of the group
_DRAIN_S = 2.0  # how long to keep reading pipes after the group is gone
_POLL_S = 0.05
_CHUNK = 65536

GIT_SAFE_ARGS: tuple[str, ...] = (
    "git",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
)

# Variables a child may inherit from our environment (everything else is dropped).
_BASE_ENV_KEYS = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR")


class ProcError(YoiError):
    """A command that could not be started (missing executable, bad cwd, permission)."""

    def __init__(self, argv: Sequence[str], reason: str):
        self.argv = tuple(argv)
        shown = argv[0] if argv else "<empty>"
        super().__init__(
            f"cannot run command {shown!r}: {reason}",
            hint="check the command in the configuration and that it is installed",
        )


@dataclass(frozen=True)
class Completed:
    """The outcome of one process. ``returncode`` is None exactly when it timed out;
    a negative value -N means the child died of signal N."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: bytes
    stderr: bytes
    duration_ms: int
    timed_out: bool
    truncated: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class _Capped:
    """Keeps the first and last ``cap // 2`` bytes of a stream and counts the rest."""

    def __init__(self, cap: int):
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail += data
        excess = len(self.tail) - self.tail_cap
        if excess > self.tail_cap:  # trim in batches, not on every chunk
            self._trim()

    def _trim(self) -> None:
        excess = len(self.tail) - self.tail_cap
        if excess > 0:
            del self.tail[:excess]
            self.dropped += excess

    def value(self) -> tuple[bytes, bool]:
        self._trim()
        if not self.dropped:
            return bytes(self.head + self.tail), False
        marker = f"\n[... yoi: {self.dropped} bytes omitted ...]\n".encode()
        return bytes(self.head) + marker + bytes(self.tail), True


def tail_text(data: bytes, limit: int = 4000) -> str:
    """The last ``limit`` characters of ``data`` decoded as UTF-8 (bad bytes replaced)."""
    text = data.decode("utf-8", errors="replace")
    return text[-limit:] if limit > 0 else ""


def base_env(extra: Sequence[str] = ()) -> dict[str, str]:
    """A minimal environment taken from ours: PATH, HOME, locale, TZ, TMPDIR (plus the
    names in ``extra``). Never any ``GIT_*`` variable."""
    keys = [*_BASE_ENV_KEYS, *extra]
    env = {k: os.environ[k] for k in keys if k in os.environ and not k.startswith("GIT_")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("LC_")})
    return env


def git_env() -> dict[str, str]:
    """Environment for the git CLI: minimal, no inherited ``GIT_*``, no system config,
    never prompts. ``SSH_AUTH_SOCK`` is kept so pushes over ssh can use the agent."""
    env = base_env(extra=("SSH_AUTH_SOCK",))
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def run_git(
    args: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float | None,
    extra_env: Mapping[str, str] | None = None,
    max_output: int = DEFAULT_MAX_OUTPUT,
    stdin: bytes | None = None,
) -> Completed:
    """``run`` of the git CLI as yoi runs it everywhere: ``GIT_SAFE_ARGS`` (no hooks, no
    fsmonitor) before ``args``, in ``git_env()`` (plus ``extra_env``)."""
    env = {**git_env(), **extra_env} if extra_env else git_env()
    return run(
        [*GIT_SAFE_ARGS, *args],
        cwd=cwd,
        env=env,
        timeout_s=timeout_s,
        max_output=max_output,
        stdin=stdin,
    )


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None,
    max_output: int = DEFAULT_MAX_OUTPUT,
    stdin: bytes | None = None,
) -> Completed:
    """Run ``argv`` (no shell) in ``cwd`` and wait for it, at most ``timeout_s`` seconds.

    ``env=None`` inherits our environment. Raises ``ProcError`` when the command cannot
    be started; every other outcome (exit code, signal, timeout) is in the result.
    """
    args = tuple(str(a) for a in argv)
    if not args:
        raise ProcError(args, "empty argument list")
    if not cwd.is_dir():
        raise ProcError(args, f"working directory {str(cwd)!r} does not exist")
    start = time.monotonic()
    deadline = None if timeout_s is None else start + max(timeout_s, 0.0)
    try:
        child = subprocess.Popen(
            args,
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise ProcError(args, exc.strerror or str(exc)) from None
    return _Session(child, args, max(max_output, 2), stdin).finish(start, deadline)


class _Session:
    """Pumps the pipes of one running child and enforces its deadline."""

    def __init__(
        self, child: subprocess.Popen[bytes], argv: tuple[str, ...], cap: int, stdin: bytes | None
    ):
        self.child = child
        self.argv = argv
        self.out = _Capped(cap)
        self.err = _Capped(cap)
        self.pending = memoryview(stdin or b"")
        self.sel = selectors.DefaultSelector()
        assert child.stdout is not None and child.stderr is not None
        self.sel.register(child.stdout, selectors.EVENT_READ, self.out)
        self.sel.register(child.stderr, selectors.EVENT_READ, self.err)
        if child.stdin is not None:
            os.set_blocking(child.stdin.fileno(), False)
            self.sel.register(child.stdin, selectors.EVENT_WRITE, None)

    def finish(self, start: float, deadline: float | None) -> Completed:
        timed_out = False
        try:
            timed_out = self._pump(deadline)
            if timed_out:
                self._terminate_group()
            else:
                _signal_group(self.child.pid, signal.SIGKILL)  # leftovers of a finished child
            self._drain(time.monotonic() + _DRAIN_S)
            code = self.child.wait()
        finally:
            self._close()
        stdout, cut_out = self.out.value()
        stderr, cut_err = self.err.value()
        return Completed(
            argv=self.argv,
            returncode=None if timed_out else code,
            stdout=stdout,
            stderr=stderr,
            duration_ms=int((time.monotonic() - start) * 1000),
            timed_out=timed_out,
            truncated=cut_out or cut_err,
        )

    def _pump(self, deadline: float | None) -> bool:
        """Move data until the child has exited (True if the deadline came first)."""
        while not _exited(self.child):
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return True
            wait = _POLL_S if deadline is None else min(_POLL_S, deadline - now)
            if self.sel.get_map():
                self._step(wait)
            else:
                time.sleep(wait)
        return False

    def _step(self, wait: float) -> None:
        for key, _ in self.sel.select(wait):
            if key.data is None:
                self._feed_stdin(key)
                continue
            data = os.read(key.fd, _CHUNK)
            if data:
                key.data.add(data)
            else:
                self.sel.unregister(key.fileobj)

    def _feed_stdin(self, key: selectors.SelectorKey) -> None:
        assert self.child.stdin is not None
        try:
            written = os.write(self.child.stdin.fileno(), self.pending[:_CHUNK])
            self.pending = self.pending[written:]
        except BlockingIOError:
            return
        except (BrokenPipeError, ConnectionResetError):
            self.pending = memoryview(b"")
        if not self.pending:
            self.sel.unregister(key.fileobj)
            self.child.stdin.close()

    def _terminate_group(self) -> None:
        _signal_group(self.child.pid, signal.SIGTERM)
        grace_end = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < grace_end and not _exited(self.child):
            time.sleep(0.02)
        _signal_group(self.child.pid, signal.SIGKILL)

    def _drain(self, until: float) -> None:
        """Read what is left in the pipes; stop at EOF or when ``until`` passes (a
        process that escaped the group may hold a pipe open forever)."""
        for key in list(self.sel.get_map().values()):
            if key.data is None:  # stop feeding stdin: the child is gone
                self.sel.unregister(key.fileobj)
        while any(k.data is not None for k in self.sel.get_map().values()):
            left = until - time.monotonic()
            if left <= 0:
                return
            self._step(min(left, _POLL_S))

    def _close(self) -> None:
        self.sel.close()
        for pipe in (self.child.stdin, self.child.stdout, self.child.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if self.child.returncode is None:  # only on an unexpected error above
            _signal_group(self.child.pid, signal.SIGKILL)
            self.child.wait()


def _exited(child: subprocess.Popen[bytes]) -> bool:
    """Whether the child has exited, WITHOUT reaping it: while it is a zombie its pid
    (our process group id) cannot be reused, so signalling the group stays safe."""
    if child.returncode is not None:
        return True
    try:
        info = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_together(
    argvs: Sequence[Sequence[str]], *, cwd: Path, max_output: int = DEFAULT_MAX_OUTPUT
) -> list[tuple[int, bytes]]:
    """Run every argument list at once and wait for all: ``(exit code, stdout)`` for each,
    in order (stdout capped at ``max_output``). These are yoi's own workers, not
    untrusted commands: they share our process group (a Ctrl-C in the terminal reaches
    them as it reaches us), write to our stderr, and get no timeout; a SIGTERM or SIGINT
    sent to us is passed on to each as SIGTERM, and what each does with it is its own
    business. Raises ``ProcError`` when one cannot be started (the others are stopped)."""
    children: list[subprocess.Popen[bytes]] = []
    try:
        for argv in argvs:
            args = tuple(str(a) for a in argv)
            try:
                children.append(
                    subprocess.Popen(
                        args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
                    )
                )
            except OSError as exc:
                raise ProcError(args, exc.strerror or str(exc)) from None
        with _passed_on(children):
            outputs = _read_all_stdout(children, max(max_output, 2))
            codes = [child.wait() for child in children]
    except BaseException:
        for child in children:
            if child.poll() is None:
                child.terminate()
            child.wait()
        raise
    return list(zip(codes, outputs, strict=True))


@contextlib.contextmanager
def on_stop_signals(
    handler: Callable[[int, FrameType | None], object],
    signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[None]:
    """While in the block, ``signals`` call ``handler`` (only the main thread may set
    handlers; elsewhere nothing changes); the previous handlers come back after."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, previous in old.items():
            signal.signal(s, previous)


def _passed_on(
    children: Sequence[subprocess.Popen[bytes]],
) -> contextlib.AbstractContextManager[None]:
    """While in the block, a SIGTERM or SIGINT received by us is sent on to ``children``
    as SIGTERM: "stop cleanly". (A Ctrl-C in the terminal reaches them as SIGINT
    anyway; a second SIGINT could cut short what they do about the first.)"""

    def forward(_signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)

    return on_stop_signals(forward)


def _read_all_stdout(children: Sequence[subprocess.Popen[bytes]], cap: int) -> list[bytes]:
    """Every child's stdout to its end, read together (none blocks another)."""
    outputs = [_Capped(cap) for _ in children]
    with selectors.DefaultSelector() as sel:
        for i, child in enumerate(children):
            assert child.stdout is not None
            sel.register(child.stdout, selectors.EVENT_READ, i)
        while sel.get_map():
            for key, _events in sel.select():
                chunk = os.read(key.fd, _CHUNK)
                if chunk:
                    outputs[key.data].add(chunk)
                else:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]
    return [out.value()[0] for out in outputs]
