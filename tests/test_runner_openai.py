"""The openai runner against a real HTTP server on 127.0.0.1 (stdlib, ephemeral port)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from yoi.errors import ConfigError
from yoi.runner import diffextract
from yoi.runner.base import CandidateStatus, RunRequest
from yoi.runner.openai import OpenAIRunner
from yoi.runner.registry import make_runner

DIFF = (
    "diff --git a/src/app.py b/src/app.py\n"
    "--- a/src/app.py\n"
    "+++ b/src/app.py\n"
    "@@ -1 +1 @@\n"
    "-print('hi')\n"
    "+print('hello')\n"
)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def chat(content: str, finish_reason: str = "stop") -> Reply:
    doc = {
        "choices": [
            {"message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
        ]
    }
    return Reply(body=json.dumps(doc).encode())


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeAPI:
    """Serves the queued replies in order (the last one repeats) and records requests."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.seen: list[Seen] = []
        self.stop = threading.Event()
        self.url = ""

    def next_reply(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(min(size, 1 << 20))
                api.seen.append(Seen(self.path, dict(self.headers.items()), json.loads(raw)))
                reply = api.next_reply()
                if reply.delay_s:
                    api.stop.wait(reply.delay_s)
                # A client that timed out has hung up: the late reply goes nowhere (no
                # traceback from the server thread in the test output).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAPI]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    fake = FakeAPI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield fake
    finally:
        fake.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _request(tmp_path: Path, budget_ms: int = 20_000) -> RunRequest:
    return RunRequest(
        run_id="run-1",
        ticket_slug="20261120-100000-greet",
        ticket_title="Greet",
        acceptance_criteria=("prints hello",),
        prompt_text="TICKET: make src/app.py print hello",
        workorder_path=tmp_path / "workorder.yaml",
        snapshot_path=tmp_path / "snapshot.yaml",
        worktree=tmp_path,
        base_commit="0" * 40,
        budget_ms=budget_ms,
        deadline=time.monotonic() + budget_ms / 1000,
        scratch=tmp_path / "scratch",
        repo_root=tmp_path,
        patch_file=None,
        worktree_diff=lambda: b"",
    )


def _runner(api: FakeAPI, **kwargs: Any) -> OpenAIRunner:
    settings: dict[str, Any] = {"model": "coder-1", "backoff_s": 0.05, **kwargs}
    return OpenAIRunner(name="llm", base_url=api.url, **settings)


def test_fenced_diff_is_the_candidate_and_the_request_is_right(
    api: FakeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test-123")
    api.replies = [chat(f"Sure! Here it is:\n\n```diff\n{DIFF}```\n\nThis prints hello.")]
    cand = _runner(api, api_key_env="TEST_LLM_KEY").produce(_request(tmp_path))
    assert cand.status is CandidateStatus.COMPLETED, cand.notes
    assert cand.origin == "reply"
    assert cand.patch == DIFF.encode()
    [seen] = api.seen
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == "Bearer sk-test-123"
    assert seen.body["model"] == "coder-1"
    assert seen.body["temperature"] == 0
    roles = [m["role"] for m in seen.body["messages"]]
    assert roles == ["system", "user"]
    user = seen.body["messages"][1]["content"]
    assert user.startswith("TICKET: make src/app.py print hello")
    assert "```diff" in user and "diff --git a/<path> b/<path>" in user
    assert "sk-test-123" not in cand.notes


def test_no_key_header_without_api_key_env(api: FakeAPI, tmp_path: Path) -> None:
    api.replies = [chat(f"```diff\n{DIFF}```")]
    cand = _runner(api).produce(_request(tmp_path))
    assert cand.status is CandidateStatus.COMPLETED
    assert "Authorization" not in api.seen[0].headers


def test_unset_key_variable_is_a_runner_error_naming_it(api: FakeAPI, tmp_path: Path) -> None:
    api.replies = [chat(f"```diff\n{DIFF}```")]
    cand = _runner(api, api_key_env="YOI_TEST_UNSET_KEY").produce(_request(tmp_path))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert "YOI_TEST_UNSET_KEY" in cand.notes
    assert api.seen == []


def test_malformed_json_is_a_runner_error(api: FakeAPI, tmp_path: Path) -> None:
    api.replies = [Reply(body=b"<html>oops</html>")]
    cand = _runner(api).produce(_request(tmp_path))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert "malformed reply" in cand.notes and "oops" in cand.notes


def test_json_without_choices_is_a_runner_error(api: FakeAPI, tmp_path: Path) -> None:
    api.replies = [Reply(body=b'{"error": "nope"}')]
    cand = _runner(api).produce(_request(tmp_path))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert "choices[0].message.content" in cand.notes


def test_server_error_then_success_is_retried(api: FakeAPI, tmp_path: Path) -> None:
    api.replies = [Reply(status=500, body=b"busy"), chat(f"```diff\n{DIFF}```")]
    cand = _runner(api).produce(_request(tmp_path))
    assert cand.status is CandidateStatus.COMPLETED, cand.notes
    assert cand.patch == DIFF.encode()
    assert len(api.seen) == 2
    assert "2 attempt(s)" in cand.notes


def test_persistent_server_error_gives_up_after_max_retries(api: FakeAPI, tmp_path: Path) -> None:
    api.replies = [Reply(status=503, body=b"down for maintenance")]
    cand = _runner(api, max_retries=2).produce(_request(tmp_path))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert len(api.seen) == 3
    assert "HTTP 503" in cand.notes and "gave up after 3 attempts" in cand.notes


def test_rate_limit_honours_retry_after(api: FakeAPI, tmp_path: Path) -> None:
    api.replies = [
        Reply(status=429, body=b"slow down", headers={"Retry-After": "0"}),
        chat(f"```diff\n{DIFF}```"),
    ]
    start = time.monotonic()
    cand = _runner(api, backoff_s=30.0).produce(_request(tmp_path))
    assert cand.status is CandidateStatus.COMPLETED, cand.notes
    assert len(api.seen) == 2
    assert time.monotonic() - start < 5  # Retry-After: 0, not the 30 s backoff


def test_client_error_is_not_retried(api: FakeAPI, tmp_path: Path) -> None:
    api.replies = [Reply(status=400, body=b'{"error": "unknown model coder-1"}')]
    cand = _runner(api).produce(_request(tmp_path))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert "HTTP 400" in cand.notes and "unknown model" in cand.notes
    assert len(api.seen) == 1


def test_redirects_are_not_followed(api: FakeAPI, tmp_path: Path) -> None:
    api.replies = [Reply(status=307, headers={"Location": "http://127.0.0.1:9/steal"})]
    cand = _runner(api).produce(_request(tmp_path))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert "HTTP 307" in cand.notes and "redirects are not followed" in cand.notes


def test_slow_reply_exhausts_the_budget(api: FakeAPI, tmp_path: Path) -> None:
    api.replies = [Reply(delay_s=10.0, body=b"{}")]
    start = time.monotonic()
    cand = _runner(api).produce(_request(tmp_path, budget_ms=1000))
    elapsed = time.monotonic() - start
    assert cand.status is CandidateStatus.BUDGET_EXHAUSTED
    assert cand.patch == b""
    assert 0.9 < elapsed < 3.0
    assert "no reply within" in cand.notes


def test_reply_without_a_diff_is_completed_and_empty(api: FakeAPI, tmp_path: Path) -> None:
    api.replies = [chat("I cannot do that without more context.")]
    cand = _runner(api).produce(_request(tmp_path))
    assert cand.status is CandidateStatus.COMPLETED
    assert cand.patch == b""
    assert "the model's reply contained no diff" in cand.notes
    assert "more context" in cand.notes


def test_unreachable_server_is_retried_then_an_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: connection refused
    runner = OpenAIRunner(
        name="llm",
        base_url=f"http://127.0.0.1:{port}/v1",
        model="m",
        max_retries=1,
        backoff_s=0.01,
    )
    cand = runner.produce(_request(tmp_path))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert cand.notes.count("connection failed") == 2


def test_bare_diff_keeps_crlf_and_gets_a_final_newline() -> None:
    body = "diff --git a/w.txt b/w.txt\n--- a/w.txt\n+++ b/w.txt\n@@ -1 +1 @@\n-a\r\n+b\r"
    reply = "Explanation first.\n" + body
    assert diffextract.extract_from_reply(reply) == (body + "\n").encode()


def test_first_diff_fence_wins_and_unclosed_fences_run_to_the_end() -> None:
    other = DIFF.replace("hello", "howdy")
    reply = f"```python\nprint(1)\n```\n```patch\n{DIFF}```\n```diff\n{other}```\n"
    assert diffextract.extract_from_reply(reply) == DIFF.encode()
    assert diffextract.extract_from_reply(f"~~~diff\n{DIFF}") == DIFF.encode()
    assert diffextract.extract_from_reply(f"```\n{DIFF}```") == DIFF.encode()


def test_unified_diff_without_git_header_is_found() -> None:
    plain = "--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-a\n+b\n"
    assert diffextract.extract_from_reply("Here:\n" + plain + "Hope it helps!\n") == (
        plain.encode()
    )


def test_registry_builds_an_openai_runner() -> None:
    runner = make_runner(
        "llm",
        {
            "type": "openai",
            "base_url": "http://127.0.0.1:11434/v1",
            "model": "qwen",
            "api_key_env": "OPENAI_API_KEY",
            "timeout_s": 30,
            "max_retries": 0,
        },
    )
    assert isinstance(runner, OpenAIRunner)
    assert (runner.model, runner.timeout_s, runner.max_retries) == ("qwen", 30.0, 0)
    assert runner.url == "http://127.0.0.1:11434/v1/chat/completions"


@pytest.mark.parametrize(
    "config",
    [
        {"type": "openai", "base_url": "file:///etc/passwd", "model": "m"},
        {"type": "openai", "base_url": "http://x/v1"},
        {"type": "openai", "base_url": "http://x/v1", "model": "m", "temperature": 5},
        {"type": "openai", "base_url": "http://x/v1", "model": "m", "api_key": "sk-inline"},
    ],
)
def test_registry_rejects_bad_openai_entries(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        make_runner("llm", config)
