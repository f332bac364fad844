"""``hybrid costs --by feature|domain|user --since ...`` and ``hybrid generate --profile P --input ...``."""

from __future__ import annotations

import argparse
import json
import sys

from shared.cli.main import command


def _costs(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from shared.db.connection import get_database
    from shared.genlayers.ledger import cost_report
    from shared.genlayers.timeparse import parse_since

    try:
        since = parse_since(args.since)
    except ValueError as exc:
        print(f"hybrid costs: {exc}", file=sys.stderr)
        return 2
    with get_database().connection() as conn:
        report = cost_report(conn, by=args.by, since=since, until=datetime.now(UTC))
    if not args.json:
        print(f"{'key':<32} {'calls':>7} {'prompt':>10} {'completion':>10} {'cached':>9} {'usd':>12}")
        for r in report["rows"]:
            print(
                f"{str(r['key'])[:32]:<32} {r['calls']:>7} {r['prompt_tokens']:>10} "
                f"{r['completion_tokens']:>10} {r['cached_tokens']:>9} {r['cost_usd']:>12.6f}"
            )
    print(json.dumps(report))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from shared.genlayers.router import to_problem
    from shared.genlayers.service import Context, get_generator

    data = json.loads(args.input) if args.json_input else args.input
    try:
        result = get_generator().generate(args.profile, data, Context(session_id=args.session_id))
    except Exception as exc:
        try:
            problem = to_problem(exc)
        except Exception:
            raise exc from None
        print(json.dumps({"status": problem.status, "detail": problem.detail}), file=sys.stderr)
        return 1
    print(json.dumps({"output": result.output, "usage": result.usage_dict(), "cached": result.cached}))
    return 0


@command
def _register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("costs", help="cost report from the usage ledger")
    p.add_argument(
        "--by",
        choices=["feature", "domain", "user", "session", "provider", "model", "kind", "day"],
        default="feature",
    )
    p.add_argument("--since", default="7d", help="ISO date/datetime or a span: 30m, 24h, 7d (default 7d)")
    p.add_argument("--json", action="store_true", help="print only the JSON report")
    p.set_defaults(func=_costs)
    p = sub.add_parser("generate", help="run one generation profile (no user; session limits apply)")
    p.add_argument("--profile", required=True)
    p.add_argument("--input", required=True, help="the input text (or a JSON object with --json-input)")
    p.add_argument("--json-input", action="store_true")
    p.add_argument("--session-id", default=None)
    p.set_defaults(func=_generate)
