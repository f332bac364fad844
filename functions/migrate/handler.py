"""Lambda: one-off administrative invokes that need the database, which only the VPC reaches.

- ``{"action": "migrate"}``: apply pending migrations (after a deploy);
- ``{"action": "workers.add", "name": "gpu-1", "kinds": ["embed"]}``: create (or re-key) a pull worker;
  the token is in the invoke response only, once (only its hash is stored, it is never logged);
- ``{"action": "workers.revoke", "name": "gpu-1"}``: revoke a worker's token.
"""

from typing import Any

from shared.api.lambda_events import BadEvent, lambda_task
from shared.db.connection import resolve_url
from shared.db.migrate import migrate

ACTIONS = ("migrate", "workers.add", "workers.revoke")


def _name(event: dict[str, Any]) -> str:
    name = event.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 64:
        raise BadEvent(f'{event["action"]} needs "name": a worker name of 1-64 characters')
    return name.strip()


def _kinds(event: dict[str, Any]) -> list[str] | None:
    kinds = event.get("kinds")
    if kinds is None:
        return None  # every kind
    if not isinstance(kinds, list) or not all(isinstance(k, str) and k.strip() for k in kinds):
        raise BadEvent('"kinds" must be a list of task kinds (or left out for every kind)')
    return [k.strip() for k in kinds] or None


def _rate(event: dict[str, Any]) -> int:
    rate = event.get("rate_limit_per_minute", 600)
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
        raise BadEvent('"rate_limit_per_minute" must be a positive integer')
    return rate


def add_worker(event: dict[str, Any]) -> dict[str, Any]:
    import psycopg

    from shared.compute.workers import add_worker as add

    name, kinds, rate = _name(event), _kinds(event), _rate(event)
    with psycopg.connect(resolve_url()) as conn:
        worker, token = add(conn, name, kinds=kinds, rate_limit_per_minute=rate)
    return {
        "statusCode": 200,
        "worker": {"name": worker.name, "kinds": list(worker.kinds) if worker.kinds else None},
        "rate_limit_per_minute": worker.rate_limit_per_minute,
        "token": token,  # shown once: only its SHA-256 is stored
    }


def revoke_worker(event: dict[str, Any]) -> dict[str, Any]:
    import psycopg

    from shared.compute.workers import revoke_worker as revoke

    name = _name(event)
    with psycopg.connect(resolve_url()) as conn:
        revoked = revoke(conn, name)
    if not revoked:
        return {"statusCode": 404, "error": "worker-not-found", "detail": f"no live worker named {name!r}"}
    return {"statusCode": 200, "revoked": name}


@lambda_task("migrate")
def handler(event: Any, context: Any) -> dict[str, Any]:
    action = event.get("action") if isinstance(event, dict) else None
    if action == "migrate":
        return {"statusCode": 200, "applied": migrate(resolve_url())}
    if action == "workers.add":
        return add_worker(event)
    if action == "workers.revoke":
        return revoke_worker(event)
    raise BadEvent(f"unknown action {action!r}: expected one of {', '.join(ACTIONS)}")
