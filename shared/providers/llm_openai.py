"""OpenAI through the official SDK: ``chat.completions`` (``response_format`` json_schema, strict) or
``responses`` (``text.format`` json_schema, strict), chosen per profile.

The SDK's own retries are off (``max_retries=0``): ``shared.providers.resilience`` owns retries,
backoff and fallback, so attempts never multiply. Every call carries its own timeout.
"""

from __future__ import annotations

import time
from typing import Any

from shared.config import env
from shared.config.models import ProviderSettings
from shared.providers.llm import (
    CONTENT_FILTER,
    LENGTH,
    REFUSAL,
    STOP,
    LLMProvider,
    LLMRequest,
    LLMResult,
    Usage,
    api_key,
)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


class OpenAILLM(LLMProvider):
    default_base_url: str | None = None
    supports_responses = True

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        import openai  # lazily: only generation paths pay for the SDK import

        self.name, self.settings = name, settings
        base_url = settings.base_url or self._env_base_url() or self.default_base_url
        self.client = openai.OpenAI(
            api_key=api_key(name, settings) or "unused",
            base_url=base_url,
            max_retries=0,  # deliberate: our resilience layer retries
            timeout=settings.timeout_seconds,
        )
        self.response_format_mode = str(settings.options.get("response_format", "json_schema"))

    def _env_base_url(self) -> str | None:
        return env.OPENAI_BASE_URL.get() if self.settings.type == "openai" else None

    # --- request shapes ----------------------------------------------------------
    def _json_schema(self, req: LLMRequest) -> dict[str, Any]:
        return {"name": req.schema_name, "schema": req.schema, "strict": req.strict}

    def _chat_kwargs(self, req: LLMRequest) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        if req.system:
            messages.append({"role": "system", "content": req.system})
        messages += [{"role": m.role, "content": m.content} for m in req.messages]
        kwargs: dict[str, Any] = {
            "model": req.model,
            "messages": messages,
            "temperature": req.temperature,
            self.settings.options.get("max_tokens_param", "max_completion_tokens"): req.max_tokens,
        }
        if req.schema is not None:
            if self.response_format_mode == "json_object":
                kwargs["response_format"] = {"type": "json_object"}
            else:
                kwargs["response_format"] = {"type": "json_schema", "json_schema": self._json_schema(req)}
        return kwargs

    def generate(self, request: LLMRequest, *, timeout: float) -> LLMResult:
        timeout = min(timeout, self.settings.timeout_seconds)
        started = time.perf_counter()
        if request.api == "responses" and self.supports_responses:
            result = self._responses(request, timeout)
        else:
            result = self._chat(request, timeout)
        result.latency_ms = (time.perf_counter() - started) * 1000
        result.provider = self.name
        return result

    def _chat(self, req: LLMRequest, timeout: float) -> LLMResult:
        resp = self.client.chat.completions.create(**self._chat_kwargs(req), timeout=timeout)
        return self.chat_result(resp, req)

    def chat_result(self, resp: Any, req: LLMRequest) -> LLMResult:
        """An ``LLMResult`` from a chat completion (an SDK object, or the dict of a Batch API line)."""
        if isinstance(resp, dict):
            from openai.types.chat import ChatCompletion

            resp = ChatCompletion.model_validate(resp)
        choice = resp.choices[0] if resp.choices else None
        message = _get(choice, "message")
        refusal = _get(message, "refusal")
        raw_finish = _get(choice, "finish_reason") or "stop"
        finish = {"length": LENGTH, "content_filter": CONTENT_FILTER}.get(raw_finish, STOP)
        if refusal:
            finish = REFUSAL
        usage = resp.usage
        details = _get(usage, "prompt_tokens_details")
        return LLMResult(
            text=_get(message, "content") or "",
            finish_reason=finish,
            refusal=refusal,
            usage=Usage(
                prompt_tokens=int(_get(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(_get(usage, "completion_tokens", 0) or 0),
                cached_tokens=int(_get(details, "cached_tokens", 0) or 0),
            ),
            model=resp.model or req.model,
            provider=self.name,
            response_id=resp.id,
        )

    def _responses(self, req: LLMRequest, timeout: float) -> LLMResult:
        kwargs: dict[str, Any] = {
            "model": req.model,
            "input": [{"role": m.role, "content": m.content} for m in req.messages],
            "temperature": req.temperature,
            "max_output_tokens": req.max_tokens,
        }
        if req.system:
            kwargs["instructions"] = req.system
        if req.schema is not None:
            kwargs["text"] = {"format": {"type": "json_schema", **self._json_schema(req)}}
        resp = self.client.responses.create(**kwargs, timeout=timeout)
        texts: list[str] = []
        refusal: str | None = None
        for item in resp.output or []:
            if _get(item, "type") != "message":
                continue
            for part in _get(item, "content") or []:
                kind = _get(part, "type")
                if kind == "output_text":
                    texts.append(_get(part, "text") or "")
                elif kind == "refusal":
                    refusal = _get(part, "refusal") or "refused"
        finish = STOP
        if resp.status == "incomplete":
            reason = _get(resp.incomplete_details, "reason")
            finish = CONTENT_FILTER if reason == "content_filter" else LENGTH
        if refusal:
            finish = REFUSAL
        usage = resp.usage
        details = _get(usage, "input_tokens_details")
        return LLMResult(
            text="".join(texts),
            finish_reason=finish,
            refusal=refusal,
            usage=Usage(
                prompt_tokens=int(_get(usage, "input_tokens", 0) or 0),
                completion_tokens=int(_get(usage, "output_tokens", 0) or 0),
                cached_tokens=int(_get(details, "cached_tokens", 0) or 0),
            ),
            model=resp.model or req.model,
            response_id=resp.id,
        )
