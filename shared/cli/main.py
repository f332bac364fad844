"""The ``hybrid`` command. Every subcommand honours ``DATABASE_URL``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from shared.config import env

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def command(register: Callable[[argparse._SubParsersAction], None]) -> Callable[..., None]:
    _COMMANDS.append(register)
    return register


def _db_url() -> str:
    from shared.db.connection import resolve_url

    return resolve_url()


# --- db ----------------------------------------------------------------------
def _db(args: argparse.Namespace) -> int:
    from shared.db import embedded

    if args.action == "url":
        print(_db_url())
    elif args.action == "start":
        print(embedded.url())
    elif args.action == "stop":
        if env.DATABASE_URL.get():
            print("DATABASE_URL is set; nothing embedded to stop", file=sys.stderr)
            return 1
        embedded.stop()
        print("stopped")
    return 0


@command
def _register_db(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="the database in use (embedded unless DATABASE_URL is set)")
    p.add_argument("action", choices=["url", "start", "stop"])
    p.set_defaults(func=_db)


# --- migrate -----------------------------------------------------------------
def _migrate(args: argparse.Namespace) -> int:
    from shared.db.migrate import migrate

    applied = migrate(_db_url())
    print(json.dumps({"applied": applied}))
    return 0


@command
def _register_migrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("migrate", help="apply pending migrations")
    p.set_defaults(func=_migrate)


# --- local tokens ------------------------------------------------------------
def _require_local(what: str) -> None:
    if env.ENVIRONMENT.get() != "local":
        raise SystemExit(f"{what} is for local development only (HYBRID_ENV={env.ENVIRONMENT.get()})")


def _dev_token(args: argparse.Namespace) -> int:
    _require_local("dev-token")
    from shared.auth.service import admin_ids, get_token_service
    from shared.auth.users import ensure_user
    from shared.db.connection import get_database

    with get_database().connection() as conn:
        user_id = ensure_user(conn, args.telegram_id)
    roles = ("admin",) if args.admin or args.telegram_id in admin_ids() else ()
    token, _ = get_token_service().issue(
        user_id=user_id, telegram_id=args.telegram_id, roles=roles, ttl_seconds=args.ttl
    )
    print(token)
    return 0


def _dev_init_data(args: argparse.Namespace) -> int:
    _require_local("dev-init-data")
    import time

    from shared.auth.service import get_verifier
    from shared.auth.telegram import sign_init_data

    verifier = get_verifier()
    if not verifier.bot_token:
        raise SystemExit("no bot token configured to sign with")
    user = {"id": args.telegram_id, "first_name": args.first_name, "username": f"user{args.telegram_id}"}
    print(
        sign_init_data(
            {
                "auth_date": str(int(time.time())),
                "query_id": "local",
                "user": json.dumps(user, separators=(",", ":")),
            },
            verifier.bot_token,
        )
    )
    return 0


@command
def _register_tokens(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dev-token", help="(local only) print an access token for a Telegram id")
    p.add_argument("--telegram-id", type=int, required=True)
    p.add_argument("--ttl", type=int, default=None, help="lifetime in seconds (default: config)")
    p.add_argument("--admin", action="store_true", help="include the admin role")
    p.set_defaults(func=_dev_token)
    p = sub.add_parser("dev-init-data", help="(local only) print initData signed with the local bot token")
    p.add_argument("--telegram-id", type=int, required=True)
    p.add_argument("--first-name", default="Dev")
    p.set_defaults(func=_dev_init_data)


# --- serve -------------------------------------------------------------------
def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from shared.db import embedded
    from shared.db.migrate import migrate

    server = None
    if not env.DATABASE_URL.get():
        server = embedded.start(cleanup_mode="stop")
        os.environ["DATABASE_URL"] = str(server.get_uri())
        print("embedded PostgreSQL:", os.environ["DATABASE_URL"], flush=True)
    applied = migrate(os.environ["DATABASE_URL"])
    print("migrations applied:", applied or "none pending", flush=True)
    for hook in _SERVE_HOOKS:
        hook(args)
    print(f"serving on http://{args.host}:{args.port} (docs at /docs)", flush=True)
    uvicorn.run(
        "shared.api.app:create_app", factory=True, host=args.host, port=args.port, log_level="info", workers=1
    )
    return 0


# Capabilities that prepare the local stack (sample knowledge, the drain loop) register here.
_SERVE_HOOKS: list[Callable[[argparse.Namespace], None]] = []


@command
def _register_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the local stack: embedded Postgres, migrations, every route")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-sample", action="store_true", help="skip ingesting the sample knowledge")
    p.set_defaults(func=_serve)


# Each capability keeps its subcommands in its own module, registered with ``@command`` on import.
CLI_MODULES: tuple[str, ...] = ("shared.genlayers.cli", "shared.memory37.cli", "shared.compute.cli")


def serve_hook(hook: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    """Register a step ``hybrid serve`` runs after migrations (sample knowledge, background loops)."""
    if hook not in _SERVE_HOOKS:
        _SERVE_HOOKS.append(hook)
    return hook


def build_parser() -> argparse.ArgumentParser:
    import importlib

    for module in CLI_MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(prog="hybrid", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for register in _COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from shared.config.env import MissingSetting
    from shared.config.store import ConfigError
    from shared.db.connection import DatabaseUnavailable
    from shared.db.embedded import EmbeddedPostgresError
    from shared.db.migrate import MigrationError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (MissingSetting, ConfigError, EmbeddedPostgresError, MigrationError, DatabaseUnavailable) as exc:
        print(f"hybrid: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
