"""A fake OpenAI-compatible server on 127.0.0.1: ``/v1/chat/completions`` and ``/v1/responses``.

Replies are scripted (``fake.push(Reply.json({...}))``, consumed in order by either endpoint) and fall
back to ``fake.default`` (a ``Reply`` or a function of the request JSON). HTTP faults (429, 500, a hang)
are scripted on the underlying ``FakeServer`` with ``fake.server.fail_next(path, Fault(...))``.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.http import FakeServer, Request, Response

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"


@dataclass
class Reply:
    content: str | None = ""
    refusal: str | None = None
    finish: str = "stop"  # stop | length | content_filter
    prompt_tokens: int = 11
    completion_tokens: int = 7
    cached_tokens: int = 0

    @classmethod
    def json(cls, obj: Any, **kw: Any) -> Reply:
        return cls(content=json.dumps(obj), **kw)


Responder = Reply | Callable[[dict[str, Any]], Reply]


@dataclass
class FakeOpenAI:
    server: FakeServer = field(default_factory=FakeServer)
    default: Responder = field(default_factory=lambda: Reply.json({"answer": "ok"}))

    def __post_init__(self) -> None:
        self.script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.server.route("POST", CHAT, self._chat)
        self.server.route("POST", RESPONSES, self._responses)
        # the Batch API: files in, batches, files out (see complete_batches)
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.server.route("POST", "/v1/files", self._upload)
        self.server.route("GET", "/v1/files/*", self._file_content)
        self.server.route("POST", "/v1/batches", self._create_batch)
        self.server.route("GET", "/v1/batches/*", self._get_batch)

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.script.clear()
            self.files.clear()
            self.batches.clear()
        self.server.reset()
        self.default = Reply.json({"answer": "ok"})

    def calls(self, path: str | None = None) -> list[Request]:
        return [r for r in self.server.calls(path) if r.path in (CHAT, RESPONSES)]

    # --- Batch API -------------------------------------------------------------------
    def _upload(self, req: Request) -> Response:
        lines = [ln for ln in req.body.split(b"\r\n") if ln.startswith(b'{"custom_id"')]
        fid = f"file-in-{len(self.files) + 1}"
        self.files[fid] = b"\n".join(lines) + b"\n"
        return Response(
            200,
            {
                "id": fid,
                "object": "file",
                "bytes": len(self.files[fid]),
                "created_at": 1700000000,
                "filename": "batch.jsonl",
                "purpose": "batch",
                "status": "processed",
            },
        )

    def _file_content(self, req: Request) -> Response:
        fid = req.path.split("/")[3]
        if fid not in self.files:
            return Response(404, {"error": {"message": "no such file"}})
        return Response(200, self.files[fid], content_type="application/octet-stream")

    def _batch(self, bid: str) -> dict[str, Any]:
        b = self.batches[bid]
        return {
            "id": bid,
            "object": "batch",
            "endpoint": b["endpoint"],
            "input_file_id": b["input_file_id"],
            "completion_window": "24h",
            "status": b["status"],
            "output_file_id": b.get("output_file_id"),
            "error_file_id": None,
            "created_at": 1700000000,
            "metadata": b.get("metadata"),
        }

    def _create_batch(self, req: Request) -> Response:
        body = req.json()
        bid = f"batch_{len(self.batches) + 1}"
        self.batches[bid] = {**body, "status": "in_progress"}
        return Response(200, self._batch(bid))

    def _get_batch(self, req: Request) -> Response:
        bid = req.path.rsplit("/", 1)[1]
        if bid not in self.batches:
            return Response(404, {"error": {"message": "no such batch"}})
        return Response(200, self._batch(bid))

    def complete_batches(self, status: str = "completed") -> None:
        """Finish every batch in flight: each input line answered by the script, like a chat call."""
        for bid, b in self.batches.items():
            if b["status"] != "in_progress":
                continue
            b["status"] = status
            if status != "completed":
                continue
            out = []
            for raw in self.files[b["input_file_id"]].splitlines():
                if not raw.strip():
                    continue
                line = json.loads(raw)
                fake = Request("POST", CHAT, {}, {}, json.dumps(line["body"]).encode())
                reply = self._chat(fake).body
                out.append(
                    {
                        "id": f"req-{bid}",
                        "custom_id": line["custom_id"],
                        "error": None,
                        "response": {"status_code": 200, "request_id": "r", "body": reply},
                    }
                )
            fid = f"file-out-{bid}"
            self.files[fid] = "\n".join(json.dumps(o) for o in out).encode() + b"\n"
            b["output_file_id"] = fid

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self.script:
                return self.script.popleft()
        return self.default(body) if callable(self.default) else self.default

    def _chat(self, req: Request) -> Response:
        body = req.json()
        r = self._next(body)
        message: dict[str, Any] = {"role": "assistant", "content": r.content, "refusal": r.refusal}
        if r.refusal:
            message["content"] = None
        return Response(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1700000000,
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "message": message, "finish_reason": r.finish, "logprobs": None}],
                "usage": {
                    "prompt_tokens": r.prompt_tokens,
                    "completion_tokens": r.completion_tokens,
                    "total_tokens": r.prompt_tokens + r.completion_tokens,
                    "prompt_tokens_details": {"cached_tokens": r.cached_tokens},
                },
            },
        )

    def _responses(self, req: Request) -> Response:
        body = req.json()
        r = self._next(body)
        content: list[dict[str, Any]]
        if r.refusal:
            content = [{"type": "refusal", "refusal": r.refusal}]
        else:
            content = [{"type": "output_text", "text": r.content or "", "annotations": []}]
        status, incomplete = "completed", None
        if r.finish in ("length", "content_filter"):
            status = "incomplete"
            incomplete = {"reason": "max_output_tokens" if r.finish == "length" else "content_filter"}
        return Response(
            200,
            {
                "id": "resp_fake",
                "object": "response",
                "created_at": 1700000000,
                "model": body.get("model", "fake"),
                "status": status,
                "incomplete_details": incomplete,
                "output": [
                    {
                        "type": "message",
                        "id": "msg_fake",
                        "status": "completed",
                        "role": "assistant",
                        "content": content,
                    }
                ],
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": {
                    "input_tokens": r.prompt_tokens,
                    "input_tokens_details": {"cached_tokens": r.cached_tokens},
                    "output_tokens": r.completion_tokens,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": r.prompt_tokens + r.completion_tokens,
                },
            },
        )


def user_messages(req: Request) -> list[str]:
    """The user turns of a recorded chat or responses request, in order."""
    body = req.json()
    items = body.get("messages") or body.get("input") or []
    return [m["content"] for m in items if m.get("role") == "user"]


def schema_name(req: Request) -> str | None:
    body = req.json()
    if "response_format" in body:
        return str(body["response_format"]["json_schema"]["name"])
    fmt = (body.get("text") or {}).get("format") or {}
    return fmt.get("name")


def write_config(
    directory: Path,
    *,
    providers: dict[str, dict[str, Any]],
    profiles: dict[str, dict[str, Any]],
    genlayers: dict[str, Any] | None = None,
    schemas: dict[str, Any] | None = None,
) -> Path:
    """A config folder (logic.yaml, profiles.yaml, schemas/) for tests that point at fakes."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "schemas").mkdir(exist_ok=True)
    logic = {"providers": providers, "genlayers": genlayers or {}}
    (directory / "logic.yaml").write_text(yaml.safe_dump(logic), encoding="utf-8")
    (directory / "profiles.yaml").write_text(yaml.safe_dump({"profiles": profiles}), encoding="utf-8")
    for name, schema in (schemas or {}).items():
        text = schema if isinstance(schema, str) else json.dumps(schema)
        (directory / "schemas" / name).write_text(text, encoding="utf-8")
    return directory
