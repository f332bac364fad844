"""A fake Anthropic Messages API (``POST /v1/messages``) on 127.0.0.1 with scripted replies."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.http import FakeServer, Request, Response

MESSAGES = "/v1/messages"


@dataclass
class AReply:
    tool_input: Any = None  # the structured answer (a tool_use block)
    text: str | None = None  # a plain text block (e.g. a refusal or prose)
    stop_reason: str = "tool_use"  # tool_use | end_turn | max_tokens | refusal
    input_tokens: int = 13
    output_tokens: int = 9
    cache_read_input_tokens: int = 0


@dataclass
class FakeAnthropic:
    server: FakeServer = field(default_factory=FakeServer)

    def __post_init__(self) -> None:
        self.script: deque[AReply] = deque()
        self._lock = threading.Lock()
        self.server.route("POST", MESSAGES, self._messages)

    @property
    def base_url(self) -> str:
        return self.server.url

    def push(self, *replies: AReply) -> None:
        with self._lock:
            self.script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.script.clear()
        self.server.reset()

    def _messages(self, req: Request) -> Response:
        if not req.headers.get("x-api-key") or not req.headers.get("anthropic-version"):
            return Response(401, {"type": "error", "error": {"type": "authentication_error"}})
        body = req.json()
        with self._lock:
            r = self.script.popleft() if self.script else AReply(tool_input={"answer": "ok"})
        content: list[dict[str, Any]] = []
        if r.text is not None:
            content.append({"type": "text", "text": r.text})
        if r.tool_input is not None:
            name = (body.get("tool_choice") or {}).get("name", "output")
            content.append({"type": "tool_use", "id": "toolu_fake", "name": name, "input": r.tool_input})
        return Response(
            200,
            {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", "claude-fake"),
                "content": content,
                "stop_reason": r.stop_reason,
                "usage": {
                    "input_tokens": r.input_tokens,
                    "output_tokens": r.output_tokens,
                    "cache_read_input_tokens": r.cache_read_input_tokens,
                },
            },
        )
