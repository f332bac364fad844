"""RunPod serverless worker: bge-m3 embeddings (dense + sparse) and bge reranking.

    python gpu_handlers/embedding/handler.py --test_input "$(cat gpu_handlers/embedding/test_input.json)"
    python gpu_handlers/embedding/handler.py --rp_serve_api --rp_api_host 127.0.0.1 --rp_api_port 8010

Models load once, when the worker starts (before the first job). Bad input makes the job FAILED with
a message naming the field; the worker keeps serving.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

try:
    from gpu_handlers.embedding.engine import JobInputError, ModelUnavailable, get_engine, run_job
except ModuleNotFoundError:  # run as a script from a checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from gpu_handlers.embedding.engine import JobInputError, ModelUnavailable, get_engine, run_job

# One job at a time per worker, deliberately: the handler is synchronous and GPU-bound, a job is
# already batched internally by token budget, and two jobs sharing one GPU only add memory pressure
# and tail latency. Scale out with more workers (max workers), not with concurrency inside one.
# HANDLER_CONCURRENCY raises it (e.g. for a large GPU serving many tiny jobs).
CONCURRENCY = max(1, int(os.environ.get("HANDLER_CONCURRENCY") or 1))

# The SDK logs every job's input and output at DEBUG, its default level: user texts and megabytes of
# floats in the logs. INFO unless the deployment asks otherwise (RUNPOD_LOG_LEVEL / --rp_log_level).
os.environ.setdefault("RUNPOD_LOG_LEVEL", "INFO")


def handler(job: dict[str, Any]) -> dict[str, Any]:
    try:
        return run_job(job.get("input"))
    except (JobInputError, ModelUnavailable) as exc:
        # Returning {"error": ...} makes the SDK mark the job FAILED with exactly this message
        # and no output: never half a result.
        return {"error": str(exc)}


def concurrency_modifier(current_concurrency: int) -> int:
    del current_concurrency
    return CONCURRENCY


def main() -> None:
    import runpod

    get_engine()  # load the models now, at worker start, not on the first job
    runpod.serverless.start({"handler": handler, "concurrency_modifier": concurrency_modifier})


if __name__ == "__main__":
    main()
