"""The ``openai`` runner: ask an OpenAI-compatible ``/chat/completions`` endpoint for a
unified diff. Standard library only (``urllib.request``).

The API key is read from the environment variable named by ``api_key_env`` at request
time; it is sent only in the ``Authorization`` header and never stored, logged or put in
notes. Redirects are not followed (they would carry the key to another host).
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any, ClassVar

from yoi.runner import diffextract
from yoi.runner.base import (
    MAX_PATCH_BYTES,
    ORIGIN_REPLY,
    Candidate,
    RunRequest,
    budget_exhausted,
    completed,
    runner_error,
)

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful software engineer. You change code only by replying with one "
    "unified diff in git format that applies cleanly with `git apply`."
)
ANSWER_INSTRUCTIONS = """

---
Answer with a single unified diff in git format that makes the change, inside one
```diff fenced block:
- start each file with `diff --git a/<path> b/<path>`, then `--- a/<path>` and
  `+++ b/<path>` (`--- /dev/null` for a new file, `+++ /dev/null` for a deleted one);
- paths are relative to the repository root;
- hunk headers carry exact line counts and context lines match the files exactly;
- put nothing but the diff inside the fence.
"""
MAX_REPLY_BYTES = 8 * 1024 * 1024
_EXCERPT = 1000
_CHUNK = 65536


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


@dataclass(frozen=True)
class _Retry:
    note: str
    delay: float | None  # what the server asked for (Retry-After), if anything


@dataclass(frozen=True)
class OpenAIRunner:
    needs_checkout: ClassVar[bool] = False  # reads no file of the worktree
    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    timeout_s: float = 120.0
    budget_ms: int | None = None
    max_retries: int = 3
    temperature: float = 0.0
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    backoff_s: float = 1.0  # first retry delay, doubled each time (not a config key)

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def payload(self, request: RunRequest) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": self.system_prompt},
                {"role": "user", "content": request.prompt_text + ANSWER_INSTRUCTIONS},
            ],
            "temperature": self.temperature,
        }

    def produce(self, request: RunRequest) -> Candidate:
        if request.remaining_s() <= 0:
            return budget_exhausted("the budget was exhausted before the request was sent")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env, "")
            if not key:
                return runner_error(
                    f"runner {self.name!r}: the environment variable {self.api_key_env} "
                    "(api_key_env) is not set or is empty"
                )
            headers["Authorization"] = f"Bearer {key}"
        body = json.dumps(self.payload(request)).encode("utf-8")
        outcome = self._exchange(body, headers, request)
        if isinstance(outcome, Candidate):
            return outcome
        reply, attempts = outcome
        return self._interpret(reply, attempts)

    def _exchange(
        self, body: bytes, headers: dict[str, str], request: RunRequest
    ) -> Candidate | tuple[bytes, int]:
        """POST with retries inside the budget: the reply body, or a final Candidate."""
        opener = urllib.request.build_opener(_NoRedirect())
        history: list[str] = []
        for attempt in range(1, self.max_retries + 2):
            left = request.remaining_s()
            if left <= 0:
                return budget_exhausted(self._story("the budget ran out", history))
            outcome = self._attempt(opener, body, headers, min(self.timeout_s, left), request)
            if not isinstance(outcome, _Retry):
                return outcome if isinstance(outcome, Candidate) else (outcome, attempt)
            history.append(f"attempt {attempt}: {outcome.note}")
            if request.remaining_s() <= 0:
                return budget_exhausted(self._story("the budget ran out", history))
            if attempt > self.max_retries:
                break
            delay = outcome.delay
            if delay is None:
                delay = self.backoff_s * 2 ** (attempt - 1)
            if delay >= request.remaining_s():
                why = f"the next retry (in {delay:g} s) would pass the budget"
                return budget_exhausted(self._story(why, history))
            time.sleep(delay)
        return runner_error(self._story(f"gave up after {len(history)} attempts", history))

    def _attempt(
        self,
        opener: urllib.request.OpenerDirector,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
        request: RunRequest,
    ) -> bytes | _Retry | Candidate:
        post = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with opener.open(post, timeout=timeout) as response:
                return _read_capped(response, request.deadline)
        except urllib.error.HTTPError as exc:
            status = exc.code
            excerpt = _error_excerpt(exc)
            exc.close()
            if status == 429 or status >= 500:
                return _Retry(f"HTTP {status}: {excerpt}", _retry_after(exc.headers))
            return runner_error(
                f"runner {self.name!r}: {self.url} answered HTTP {status}"
                f"{' (redirects are not followed)' if 300 <= status < 400 else ''}: {excerpt}"
            )
        except _ReplyTooLarge:
            return runner_error(f"runner {self.name!r}: the reply exceeds {MAX_REPLY_BYTES} bytes")
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
                return _Retry(f"no reply within {timeout:.1f} s", None)
            return _Retry(f"connection failed: {reason}", None)

    def _interpret(self, reply: bytes, attempts: int) -> Candidate:
        try:
            doc = json.loads(reply)
            choice = doc["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return runner_error(
                f"runner {self.name!r}: malformed reply (expected JSON with "
                f"choices[0].message.content): {_excerpt_bytes(reply)}"
            )
        if not isinstance(content, str):
            return runner_error(f"runner {self.name!r}: choices[0].message.content is not text")
        said = f"model {self.model} replied after {attempts} attempt(s) ({len(content)} chars)"
        if isinstance(choice, dict) and choice.get("finish_reason") == "length":
            said += "; the reply was cut at the token limit (finish_reason=length)"
        patch = diffextract.extract_from_reply(content)
        if len(patch) > MAX_PATCH_BYTES:
            return runner_error(f"runner {self.name!r}: the diff exceeds {MAX_PATCH_BYTES} bytes")
        reply_text = content[:3000]
        if not patch:
            return completed(
                b"",
                f"the model's reply contained no diff; {said}\n--- reply ---\n{reply_text}",
                ORIGIN_REPLY,
            )
        return completed(patch, f"{said}\n--- reply ---\n{reply_text}", ORIGIN_REPLY)

    def _story(self, outcome: str, history: list[str]) -> str:
        lines = "\n".join(history) if history else "(no attempt finished)"
        return f"runner {self.name!r}: POST {self.url}: {outcome}\n{lines}"


class _ReplyTooLarge(Exception):
    pass


def _read_capped(response: http.client.HTTPResponse, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(_CHUNK):
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            raise _ReplyTooLarge
        if time.monotonic() > deadline:
            raise TimeoutError("the budget ran out while reading the reply")
        chunks.append(chunk)
    return b"".join(chunks)


def _retry_after(headers: Message | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is ignored)."""
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _error_excerpt(exc: urllib.error.HTTPError) -> str:
    try:
        return _excerpt_bytes(exc.read(_EXCERPT * 4))
    except (OSError, http.client.HTTPException):
        return "(no body)"


def _excerpt_bytes(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    return text[:_EXCERPT] + (" [...]" if len(text) > _EXCERPT else "") if text else "(empty)"
