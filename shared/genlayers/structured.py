"""Structured output: validate a reply against the profile's JSON Schema; an invalid reply is retried
with a narrow hint (the failing paths and messages only, never the whole schema again).

Refusals, length cut-offs and content filtering are distinct errors and are not retried (the same
prompt would meet the same end). Every attempt's result is handed to ``on_attempt`` so its tokens are
counted whether or not it was usable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from shared.providers.llm import CONTENT_FILTER, LENGTH, REFUSAL, LLMResult, Message

MAX_HINT_ERRORS = 8


class GenerationError(Exception):
    status = 502
    slug = "generation-failed"
    title = "Generation failed"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail, self.extra = detail, extra
        self.calls: list[Any] = []  # provider calls made before the failure (their tokens were billed)
        self.cost_usd = 0.0


class OutputInvalid(GenerationError):
    slug, title = "invalid-model-output", "The model's output was invalid"


class Refused(GenerationError):
    status, slug, title = 422, "model-refused", "The model refused"


class Truncated(GenerationError):
    slug, title = "output-truncated", "The model's output was cut off"


class ContentFiltered(GenerationError):
    status, slug, title = 422, "content-filtered", "The provider's content filter stopped the output"


def _strip_fences(text: str) -> str:
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        if t.rstrip().endswith("```"):
            t = t.rstrip()[:-3]
    return t.strip()


def _path(error: Any) -> str:
    path = getattr(error, "json_path", None)
    if path:
        return str(path)
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def check(text: str, parsed: Any, validator: Any) -> tuple[Any, list[str], bool]:
    """``(value, problems, is_json)``: problems are ``"<path>: <message>"`` lines, empty when valid."""
    value = parsed
    if value is None:
        try:
            value = json.loads(_strip_fences(text))
        except ValueError as exc:
            return None, [f"not valid JSON: {exc}"], False
    if validator is None:
        return value, [], True
    problems = []
    for err in sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path]):
        msg = err.message if len(err.message) <= 200 else err.message[:199] + "…"
        problems.append(f"{_path(err)}: {msg}")
    return value, problems, True


def hint(problems: list[str], *, is_json: bool) -> str:
    if not is_json:
        return (
            f"Your previous reply was {problems[0]}. Reply with only the JSON object, "
            "no prose and no code fences."
        )
    lines = "\n".join(f"- {p}" for p in problems[:MAX_HINT_ERRORS])
    more = len(problems) - MAX_HINT_ERRORS
    tail = f"\n(and {more} more of the same kind)" if more > 0 else ""
    return (
        "Your previous reply did not match the required JSON schema. Fix only these problems and "
        f"reply with the complete corrected JSON object:\n{lines}{tail}"
    )


def run(
    call: Callable[[tuple[Message, ...]], LLMResult],
    messages: tuple[Message, ...],
    *,
    validator: Any,
    retries: int,
    on_attempt: Callable[[LLMResult], None],
    extra_check: Callable[[Any], list[str]] | None = None,
) -> tuple[Any, LLMResult, int]:
    """Call, validate, and retry with a narrow hint up to ``retries`` more times.

    Returns ``(value, last_result, attempts)``; raises ``OutputInvalid``, ``Refused``, ``Truncated``
    or ``ContentFiltered``. Provider errors from ``call`` propagate unchanged.
    """
    conversation = messages
    problems: list[str] = []
    for attempt in range(1, retries + 2):
        result = call(conversation)
        on_attempt(result)
        if result.finish_reason == REFUSAL:
            raise Refused(f"the model refused: {(result.refusal or '')[:300]}", attempts=attempt)
        if result.finish_reason == CONTENT_FILTER:
            raise ContentFiltered("the provider's content filter stopped the reply", attempts=attempt)
        if result.finish_reason == LENGTH:
            raise Truncated(
                "the reply was cut off at the profile's max_tokens before the JSON was complete",
                attempts=attempt,
            )
        value, problems, is_json = check(result.text, result.parsed, validator)
        if not problems and extra_check is not None:
            problems = extra_check(value)
        if not problems:
            return value, result, attempt
        conversation = (
            *conversation,
            Message("assistant", result.text[:4000]),
            Message("user", hint(problems, is_json=is_json)),
        )
    what = "not valid JSON" if problems and problems[0].startswith("not valid JSON") else "schema-invalid"
    first = problems[0] if problems else ""
    raise OutputInvalid(
        f"the provider returned {what} output after {retries + 1} attempts: {first}",
        attempts=retries + 1,
        errors=problems[:MAX_HINT_ERRORS],
    )
