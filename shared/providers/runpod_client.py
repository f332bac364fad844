"""A small client for RunPod serverless endpoints (``/runsync``, ``/run``, ``/status``, ``/cancel``).

Uses httpx only (no runpod SDK import), so Lambda functions can call RunPod without the heavy SDK.

URLs are ``{base_url}/{endpoint_id}/<route>``. With ``endpoint_id=""`` the base URL is taken as
the endpoint root itself, which is how the runpod SDK's local API server is addressed
(``python handler.py --rp_serve_api --rp_api_host 127.0.0.1 --rp_api_port N`` serves ``/run``,
``/runsync`` and ``/status/{id}`` at its root). A base URL may also contain ``{endpoint_id}``.

Errors:
  * HTTP errors raise ``httpx.HTTPStatusError`` (``.response.status_code`` is what
    ``shared.providers.resilience.classify`` reads: 5xx/429/401/4xx map to their failure kinds).
  * A job that ends FAILED (or CANCELLED / TIMED_OUT) raises ``RunPodJobFailed`` with the job's error.
  * A job that does not finish within the timeout raises ``RunPodTimeout`` (a ``TimeoutError``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_BASE_URL = "https://api.runpod.ai/v2"
FINAL_OK = "COMPLETED"
FINAL_BAD = frozenset({"FAILED", "CANCELLED", "TIMED_OUT"})
PENDING = frozenset({"IN_QUEUE", "IN_PROGRESS"})


class RunPodJobFailed(RuntimeError):
    """The job reached a final state other than COMPLETED; ``error`` is the worker's message."""

    def __init__(self, job_id: str | None, status: str, error: Any) -> None:
        self.job_id, self.status, self.error = job_id, status, error
        self.message = error_message(error)
        super().__init__(f"RunPod job {job_id or '?'} {status}: {self.message}")


def error_message(error: Any) -> str:
    """The human part of a job error: the SDK wraps handler exceptions as a JSON string with
    ``error_type`` / ``error_message`` / ``error_traceback``; a handler may also return a plain string."""
    if isinstance(error, str):
        try:
            parsed = json.loads(error)
        except ValueError:
            return error
        error = parsed
    if isinstance(error, dict):
        message = error.get("error_message") or error.get("message") or error.get("error")
        if message:
            return str(message)
    return str(error)


class RunPodTimeout(TimeoutError):
    """The job did not finish within the time allowed."""


@dataclass(frozen=True)
class RunPodJob:
    id: str
    status: str
    output: Any = None
    error: Any = None

    @property
    def done(self) -> bool:
        return self.status == FINAL_OK or self.status in FINAL_BAD


class RunPodClient:
    def __init__(
        self,
        endpoint_id: str,
        *,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 30.0,
        poll_interval: float = 0.25,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if "{endpoint_id}" in base:
            self.endpoint_url = base.replace("{endpoint_id}", endpoint_id)
        else:
            self.endpoint_url = f"{base}/{endpoint_id}" if endpoint_id else base
        self.endpoint_id = endpoint_id
        self.timeout = float(timeout)
        self.poll_interval = poll_interval
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(headers=headers, timeout=self.timeout, transport=transport)
        # RunPod answers GET /status; the SDK's local API server only accepts POST there.
        self._status_method = "GET"

    # -- plumbing -------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RunPodClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never shows the key
        return f"RunPodClient({self.endpoint_url!r})"

    def _request(self, method: str, route: str, *, timeout: float, json: Any = None) -> Any:
        url = f"{self.endpoint_url}/{route}"
        try:
            response = self._http.request(method, url, json=json, timeout=max(timeout, 0.001))
        except httpx.TimeoutException as exc:
            raise RunPodTimeout(f"RunPod {route.split('/')[0]} timed out after {timeout:.2f}s") from exc
        response.raise_for_status()
        try:
            return response.json()
        except ValueError as exc:
            raise httpx.HTTPStatusError(
                f"RunPod {route} answered non-JSON: {response.text[:200]!r}",
                request=response.request,
                response=response,
            ) from exc

    @staticmethod
    def _job(body: Any) -> RunPodJob:
        if not isinstance(body, dict) or "status" not in body:
            raise RunPodJobFailed(None, "INVALID", f"unexpected RunPod answer: {str(body)[:200]}")
        return RunPodJob(
            id=str(body.get("id", "")),
            status=str(body["status"]),
            output=body.get("output"),
            error=body.get("error"),
        )

    # -- API ------------------------------------------------------------------
    def runsync(self, job_input: dict[str, Any], *, timeout: float | None = None) -> Any:
        """Run a job and wait for it; returns the job's output.

        ``timeout`` is the whole budget in seconds (the online router passes what it has left).
        If RunPod answers IN_QUEUE/IN_PROGRESS (a long job), ``/status`` is polled within the budget.
        """
        budget = self.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + budget
        job = self._job(self._request("POST", "runsync", timeout=budget, json={"input": job_input}))
        while job.status in PENDING:
            left = deadline - time.monotonic()
            if left <= 0 or not job.id:
                raise RunPodTimeout(f"RunPod job {job.id or '?'} still {job.status} after {budget:.2f}s")
            time.sleep(min(self.poll_interval, left))
            job = self.status(job.id, timeout=max(deadline - time.monotonic(), 0.001))
        return self._result(job)

    def run(self, job_input: dict[str, Any], *, webhook: str | None = None) -> str:
        """Queue a job asynchronously; returns its id."""
        body: dict[str, Any] = {"input": job_input}
        if webhook:
            body["webhook"] = webhook
        job = self._job(self._request("POST", "run", timeout=self.timeout, json=body))
        if not job.id:
            raise RunPodJobFailed(None, job.status, "RunPod /run answered without a job id")
        return job.id

    def status(self, job_id: str, *, timeout: float | None = None) -> RunPodJob:
        budget = self.timeout if timeout is None else float(timeout)
        try:
            body = self._request(self._status_method, f"status/{job_id}", timeout=budget)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 405 or self._status_method == "POST":
                raise
            self._status_method = "POST"
            body = self._request("POST", f"status/{job_id}", timeout=budget)
        job = self._job(body)
        return job if job.id else RunPodJob(job_id, job.status, job.output, job.error)

    def wait(self, job_id: str, *, timeout: float | None = None) -> Any:
        """Poll ``/status`` until the job finishes; returns its output or raises."""
        budget = self.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + budget
        while True:
            job = self.status(job_id, timeout=max(deadline - time.monotonic(), 0.001))
            if job.done:
                return self._result(job)
            left = deadline - time.monotonic()
            if left <= 0:
                raise RunPodTimeout(f"RunPod job {job_id} still {job.status} after {budget:.2f}s")
            time.sleep(min(self.poll_interval, left))

    def cancel(self, job_id: str) -> None:
        self._request("POST", f"cancel/{job_id}", timeout=self.timeout)

    @staticmethod
    def _result(job: RunPodJob) -> Any:
        if job.status == FINAL_OK:
            return job.output
        raise RunPodJobFailed(job.id, job.status, job.error)


# --------------------------------------------------------------------------- adapter helpers
def resolve_endpoint(
    *,
    base_url: str | None,
    api_key: str | None,
    options: dict[str, Any] | None,
    default_endpoint_env: str,
    provider: str,
) -> tuple[str, str, str | None]:
    """``(endpoint_id, base_url, api_key)`` for a RunPod adapter from its provider settings.

    The endpoint id comes from ``options.endpoint_id``, else the variable named by
    ``options.endpoint_id_env`` (default ``default_endpoint_env``). A custom ``base_url`` (the SDK's
    local API server) may go without an endpoint id and without a key; the real API needs both.
    Raises ``ValueError`` naming the variable to set.
    """
    import os

    opts = dict(options or {})
    env_name = str(opts.get("endpoint_id_env") or default_endpoint_env)
    endpoint_id = str(opts.get("endpoint_id") or os.environ.get(env_name) or "")
    url = (base_url or DEFAULT_BASE_URL).rstrip("/")
    if url == DEFAULT_BASE_URL:
        if not endpoint_id:
            raise ValueError(
                f"{env_name} is not set: the RunPod endpoint id of provider {provider!r}. "
                f"Set the environment variable {env_name} (or options.endpoint_id)."
            )
        if not api_key:
            raise ValueError(
                f"RUNPOD_API_KEY is not set: the API key of provider {provider!r}. "
                "Set the environment variable RUNPOD_API_KEY (or the provider's api_key_env)."
            )
    return endpoint_id, url, api_key


def client_for_provider(
    *, name: str, base_url: str | None, api_key: str | None, options: dict[str, Any] | None, timeout: float
) -> RunPodClient:
    """The client of a RunPod adapter from its provider settings (``RUNPOD_API_KEY`` when no key is given).

    Raises ``ValueError`` naming the setting that is missing.
    """
    from shared.config import env

    endpoint_id, url, key = resolve_endpoint(
        base_url=base_url,
        api_key=env.RUNPOD_API_KEY.get(api_key),
        options=options,
        default_endpoint_env=env.RUNPOD_EMBED_ENDPOINT_ID.name,
        provider=name,
    )
    return RunPodClient(endpoint_id, api_key=key, base_url=url, timeout=timeout)


def http_status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None
