"""A light prompt orchestrator: plan → subtasks (concurrently, under a limit) → assembly.

The planner profile's output must hold ``subtasks``: a list of objects with an ``id`` (a plain
string or number) and whatever fields the worker profile's template declares. Each subtask is one
``worker`` generation whose variables are the subtask's fields plus ``request`` (the original input
as text) and ``subtask`` (the subtask as JSON). A subtask that fails is retried alone, in a later
round; a finished one is never run again. The assembler (if any) gets ``request`` and ``results``
(JSON of ``[{"id", "output"}]``); without one the output is ``{"plan", "results"}``.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from shared.genlayers.profiles import CompiledProfile, InputInvalid, get_profile
from shared.genlayers.structured import GenerationError

if TYPE_CHECKING:
    from shared.genlayers.service import Context, GenerationResult, Generator


class PlanInvalid(GenerationError):
    slug, title = "invalid-plan", "The plan was invalid"


class SubtasksFailed(GenerationError):
    slug, title = "subtasks-failed", "Some subtasks failed"


def _subtasks(plan: Any, limit: int) -> list[dict[str, Any]]:
    items = plan.get("subtasks") if isinstance(plan, dict) else None
    if not isinstance(items, list) or not items:
        raise PlanInvalid("the planner's output has no non-empty 'subtasks' list")
    if len(items) > limit:
        raise PlanInvalid(f"the plan has {len(items)} subtasks; the profile allows at most {limit}")
    seen: set[str] = set()
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise PlanInvalid(f"subtask {i} is not an object")
        sid = str(item.get("id", i))
        if sid in seen:
            raise PlanInvalid(f"subtask id {sid!r} is not unique")
        seen.add(sid)
        out.append({**item, "id": sid})
    return out


def run_plan(
    gen: Generator, compiled: CompiledProfile, data: str | dict[str, Any], ctx: Context
) -> GenerationResult:
    from shared.genlayers.service import Context, GenerationResult

    plan_cfg = compiled.profile.plan
    assert plan_cfg is not None
    cfg = gen.config()
    sub_ctx = Context(ctx.user_id, ctx.session_id, ctx.feature or compiled.profile.feature)
    request_text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    result = GenerationResult(compiled.name, None)

    planner = get_profile(plan_cfg.planner, cfg)
    planned = gen.generate_one(planner, planner.variables_for(data), sub_ctx, cfg)
    _absorb(result, planned)
    subtasks = _subtasks(planned.output, plan_cfg.max_subtasks)
    worker = get_profile(plan_cfg.worker, cfg)

    done: dict[str, Any] = {}
    failures: dict[str, str] = {}
    pending = list(subtasks)
    for _round in range(plan_cfg.subtask_retries + 1):
        if not pending:
            break
        failures = {}

        def one(task: dict[str, Any]) -> GenerationResult:
            values = {k: v for k, v in task.items() if isinstance(v, str | int | float | bool)}
            values.update({"request": request_text, "subtask": json.dumps(task, ensure_ascii=False)})
            return gen.generate_one(worker, worker.variables_for(values), sub_ctx, cfg)

        with ThreadPoolExecutor(max_workers=min(plan_cfg.max_concurrency, len(pending))) as pool:
            futures = [(task, pool.submit(one, task)) for task in pending]
            for task, fut in futures:
                try:
                    sub = fut.result()
                except InputInvalid as exc:  # the plan does not fit the worker: not worth a retry
                    raise PlanInvalid(f"subtask {task['id']!r} does not fit the worker: {exc}") from exc
                except GenerationError as exc:
                    failures[task["id"]] = exc.detail
                    _absorb_failed(result, exc)
                    continue
                _absorb(result, sub)
                done[task["id"]] = sub.output
        pending = [t for t in subtasks if t["id"] not in done]
    if pending:
        raise SubtasksFailed(
            f"{len(pending)} of {len(subtasks)} subtasks failed after {plan_cfg.subtask_retries + 1} rounds",
            failed=failures,
        )
    ordered = [{"id": t["id"], "output": done[t["id"]]} for t in subtasks]
    result.steps = {"subtasks": len(subtasks), "plan": planned.output}
    if plan_cfg.assembler is None:
        result.output = {"plan": planned.output, "results": ordered}
        return result
    assembler = get_profile(plan_cfg.assembler, cfg)
    values = {"request": request_text, "results": json.dumps(ordered, ensure_ascii=False)}
    final = gen.generate_one(assembler, assembler.variables_for(values), sub_ctx, cfg)
    _absorb(result, final)
    result.output, result.provider, result.model = final.output, final.provider, final.model
    return result


def _absorb(into: GenerationResult, part: GenerationResult) -> None:
    into.calls.extend(part.calls)
    into.cost_usd += part.cost_usd
    into.attempts += part.attempts
    into.sources.extend(part.sources)


def _absorb_failed(into: GenerationResult, exc: GenerationError) -> None:
    into.calls.extend(exc.calls)
    into.cost_usd += exc.cost_usd
