"""Anthropic through the Messages API over httpx (no SDK). Structured output uses tool use: the
profile's schema becomes the ``input_schema`` of one tool the model is forced to call, and the tool
call's ``input`` is the reply."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from shared.config.models import ProviderSettings
from shared.providers.llm import (
    LENGTH,
    REFUSAL,
    STOP,
    LLMProvider,
    LLMRequest,
    LLMResult,
    Usage,
    api_key,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"


class AnthropicLLM(LLMProvider):
    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name, self.settings = name, settings
        self.base_url = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key(name, settings) or ""
        self.version = str(settings.options.get("anthropic_version", API_VERSION))
        self.client = httpx.Client(timeout=settings.timeout_seconds)

    def body(self, req: LLMRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": req.model,
            "max_tokens": req.max_tokens,
            "temperature": min(req.temperature, 1.0),  # Anthropic's range is 0..1
            "messages": [{"role": m.role, "content": m.content} for m in req.messages],
        }
        if req.system:
            body["system"] = req.system
        if req.schema is not None:
            body["tools"] = [
                {
                    "name": req.schema_name,
                    "description": "Return the answer by calling this tool with the structured result.",
                    "input_schema": req.schema,
                }
            ]
            body["tool_choice"] = {"type": "tool", "name": req.schema_name}
        return body

    def generate(self, request: LLMRequest, *, timeout: float) -> LLMResult:
        timeout = min(timeout, self.settings.timeout_seconds)
        started = time.perf_counter()
        resp = self.client.post(
            f"{self.base_url}/v1/messages",
            json=self.body(request),
            headers={
                "x-api-key": self.api_key,
                "anthropic-version": self.version,
                "content-type": "application/json",
            },
            timeout=timeout,
        )
        resp.raise_for_status()  # httpx.HTTPStatusError carries the response: classify() reads it
        data = resp.json()
        text_parts: list[str] = []
        parsed: Any = None
        for block in data.get("content") or []:
            if block.get("type") == "tool_use" and parsed is None:
                parsed = block.get("input")
            elif block.get("type") == "text":
                text_parts.append(block.get("text") or "")
        stop = data.get("stop_reason") or "end_turn"
        finish = {"max_tokens": LENGTH, "refusal": REFUSAL}.get(stop, STOP)
        usage = data.get("usage") or {}
        cached = int(usage.get("cache_read_input_tokens") or 0)
        prompt = (
            int(usage.get("input_tokens") or 0) + cached + int(usage.get("cache_creation_input_tokens") or 0)
        )
        text = json.dumps(parsed, ensure_ascii=False) if parsed is not None else "".join(text_parts)
        return LLMResult(
            text=text,
            finish_reason=finish,
            refusal=("".join(text_parts) or "refused") if finish == REFUSAL else None,
            parsed=parsed,
            usage=Usage(
                prompt_tokens=prompt,
                completion_tokens=int(usage.get("output_tokens") or 0),
                cached_tokens=cached,
            ),
            model=str(data.get("model") or request.model),
            provider=self.name,
            latency_ms=(time.perf_counter() - started) * 1000,
            response_id=data.get("id"),
        )
