"""``hybrid tasks ...``, ``hybrid workers ...``, ``hybrid drain``, ``hybrid worker``; the local drain loop."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from shared.cli.main import command, serve_hook
from shared.config import env


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str))


def _fail(message: str) -> int:
    print(f"hybrid: error: {message}", file=sys.stderr)
    return 2


# --- tasks ---------------------------------------------------------------------------------------
def _tasks(args: argparse.Namespace) -> int:
    from shared.compute import queue
    from shared.db.connection import get_database

    try:
        with get_database().connection() as conn:
            if args.action == "enqueue":
                try:
                    payload = json.loads(args.payload)
                except ValueError as exc:
                    return _fail(f"--payload is not valid JSON: {exc}")
                task = queue.enqueue(
                    conn,
                    kind=args.kind,
                    payload=payload,
                    priority=args.priority,
                    idempotency_key=args.key,
                    max_attempts=args.max_attempts,
                    callback_url=args.callback_url,
                )
                _print(task.to_dict())
            elif args.action == "stats":
                _print(queue.stats(conn))
            elif args.action == "get":
                found = queue.get_task(conn, args.id)
                if found is None:
                    return _fail(f"task {args.id} does not exist")
                _print(found.to_dict())
            elif args.action == "requeue":
                _print(queue.requeue(conn, args.id).to_dict())
            elif args.action == "cancel":
                _print(queue.cancel(conn, args.id).to_dict())
    except queue.QueueError as exc:
        return _fail(str(exc))
    return 0


@command
def _register_tasks(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tasks", help="the compute_tasks queue")
    actions = p.add_subparsers(dest="action", required=True)
    e = actions.add_parser("enqueue", help="add a task; prints it as one JSON object")
    e.add_argument("--kind", required=True)
    e.add_argument("--payload", required=True, help="a JSON object")
    e.add_argument("--priority", choices=["low", "high"], default="low")
    e.add_argument("--key", default=None, help="idempotency key: the same key returns the existing task")
    e.add_argument("--max-attempts", type=int, default=None)
    e.add_argument("--callback-url", default=None, help="POSTed (HMAC-signed) when the task finishes")
    actions.add_parser("stats", help="counts by status and kind, oldest pending age (JSON)")
    for name, text in (
        ("get", "print one task"),
        ("requeue", "bring a dead / failed / cancelled task back"),
        ("cancel", "cancel a waiting task"),
    ):
        a = actions.add_parser(name, help=text)
        a.add_argument("id", type=int)
    p.set_defaults(func=_tasks)


# --- workers -------------------------------------------------------------------------------------
def _workers(args: argparse.Namespace) -> int:
    from shared.compute import workers
    from shared.compute.kinds import compute_settings, known_kinds
    from shared.db.connection import get_database

    with get_database().connection() as conn:
        if args.action == "add":
            kinds = [k for k in (args.kinds or "").split(",") if k] or None
            unknown = sorted(set(kinds or ()) - set(known_kinds()))
            if unknown:
                return _fail(f"unknown task kind(s): {', '.join(unknown)}")
            rate = args.rate_limit or compute_settings().worker_rate_limit_per_minute
            worker, token = workers.add_worker(conn, args.name, kinds=kinds, rate_limit_per_minute=rate)
            kinds_text = ",".join(worker.kinds) if worker.kinds else "all kinds"
            print(
                f"worker {worker.name} ({kinds_text}, {rate}/min); the token is shown once:", file=sys.stderr
            )
            print(token)
        elif args.action == "revoke":
            if not workers.revoke_worker(conn, args.name):
                return _fail(f"no active worker named {args.name!r}")
            _print({"revoked": args.name})
        elif args.action == "list":
            _print(workers.list_workers(conn))
    return 0


@command
def _register_workers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("workers", help="pull-worker tokens")
    actions = p.add_subparsers(dest="action", required=True)
    a = actions.add_parser("add", help="create a worker (re-keys an existing one); prints its token once")
    a.add_argument("name")
    a.add_argument("--kinds", default=None, help="comma-separated kinds it may take (default: all)")
    a.add_argument("--rate-limit", type=int, default=None, help="requests per minute")
    r = actions.add_parser("revoke", help="revoke a worker's token")
    r.add_argument("name")
    actions.add_parser("list", help="workers (token prefixes only)")
    p.set_defaults(func=_workers)


# --- drain ---------------------------------------------------------------------------------------
def did_work(summary: dict[str, Any]) -> bool:
    """Whether a tick summary reports anything done, expired, delivered or failed."""
    counters = [*summary["runpod"].values(), *summary.get("callbacks", {}).values()]
    counters += [n for per_kind in summary["inline"].values() for n in per_kind.values()]
    return bool(summary["expired"] or summary["errors"] or any(counters))


def drain_loop(stop: threading.Event, *, interval: float | None = None, max_seconds: float = 50.0) -> None:
    """Tick until ``stop`` is set (``hybrid drain`` and the local server's background thread)."""
    from shared.compute.drain import run_tick
    from shared.compute.kinds import compute_settings
    from shared.observability.logging import get_logger

    while not stop.is_set():
        try:
            summary = run_tick(max_seconds=max_seconds)
            if did_work(summary):  # an idle tick every few seconds is not worth a log line
                get_logger().info("drain tick", extra={"summary": summary})
        except Exception as exc:  # the loop outlives a bad tick (database restarting, ...)
            get_logger().warning("drain tick failed", extra={"error": f"{type(exc).__name__}: {exc}"})
        stop.wait(interval or compute_settings().drain_local_interval_seconds)


def _drain(args: argparse.Namespace) -> int:
    from shared.compute.drain import run_tick

    if args.once:
        _print(run_tick(max_seconds=args.max_seconds))
        return 0
    stop = threading.Event()
    try:
        drain_loop(stop, interval=args.interval, max_seconds=args.max_seconds)
    except KeyboardInterrupt:
        stop.set()
    return 0


@command
def _register_drain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("drain", help="run the scheduled drain of compute_tasks")
    p.add_argument("--once", action="store_true", help="one tick, print its summary as JSON")
    p.add_argument("--interval", type=float, default=None, help="seconds between ticks (default: config)")
    p.add_argument("--max-seconds", type=float, default=50.0, help="time bound of one tick")
    p.set_defaults(func=_drain)


@serve_hook
def _start_local_drain(args: argparse.Namespace) -> None:
    """``make run``: drain in a background thread, as EventBridge would schedule it in production."""
    thread = threading.Thread(
        target=drain_loop, args=(threading.Event(),), kwargs={"max_seconds": 20.0}, name="drain", daemon=True
    )
    thread.start()
    print("compute drain: local loop started", flush=True)


# --- worker --------------------------------------------------------------------------------------
def _worker(args: argparse.Namespace) -> int:
    from shared.compute.worker import PullWorker, load_executor

    token = env.HYBRID_WORKER_TOKEN.get(args.token)
    if not token:
        return _fail("no worker token: pass --token or set HYBRID_WORKER_TOKEN (hybrid workers add NAME)")
    worker = PullWorker(
        base_url=env.HYBRID_API_URL.get(args.url) or "http://127.0.0.1:8000",
        token=token,
        kind=args.kind,
        batch=args.batch,
        lease_seconds=args.lease_seconds,
        executor=load_executor(args.executor),
        poll_interval=args.poll_interval,
        grace_seconds=args.grace_seconds,
        name=args.kind,
    )
    worker.install_signal_handlers()
    print(f"pull worker for kind {args.kind} on {worker.client.base_url}", file=sys.stderr, flush=True)
    stats = worker.run(exit_when_idle=args.exit_when_idle)
    _print({k: v for k, v in vars(stats).items() if k != "errors"} | {"last_errors": stats.errors[-3:]})
    return 0


@command
def _register_worker(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run a pull worker against the worker API")
    p.add_argument("--kind", required=True)
    p.add_argument("--url", default=None, help="API base URL (default HYBRID_API_URL or 127.0.0.1:8000)")
    p.add_argument("--token", default=None, help="worker token (default HYBRID_WORKER_TOKEN)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lease-seconds", type=int, default=60)
    p.add_argument("--executor", default=None, help="module:function(kind, payload); default the GPU engine")
    p.add_argument("--poll-interval", type=float, default=2.0)
    p.add_argument("--grace-seconds", type=float, default=20.0, help="on SIGTERM, time to finish a task")
    p.add_argument("--exit-when-idle", action="store_true", help="stop when no task is waiting")
    p.set_defaults(func=_worker)
