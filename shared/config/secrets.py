"""Secrets read at run time (Lambda init) from Secrets Manager or SSM, never baked into a template.

``SECRET_IDS`` holds ``VAR=secret-id`` pairs (the template carries only names/ARNs):
``TELEGRAM_BOT_TOKEN=hybrid/prod/telegram-bot-token,OPENAI_API_KEY=ssm:/hybrid/prod/openai-api-key``.
Each value is fetched once per Lambda environment and put into the process environment, so every
module reads it through ``shared.config.env`` like any other setting. A variable already set is left
alone (local runs and tests). ``DATABASE_URL`` may point at an RDS-managed JSON secret
(``username``/``password``/``host``/``port``/``dbname``); the URL is built from it, with the host taken
from ``DATABASE_HOST`` (the RDS Proxy endpoint) when set. A secret that cannot be read stops start-up
with an error naming the variable and the secret id — never its value.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from shared.config import env


class SecretUnavailable(env.MissingSetting):
    """A secret named in SECRET_IDS could not be read at start-up."""

    def __init__(self, variable: str, secret_id: str, reason: str) -> None:
        RuntimeError.__init__(
            self,
            f"{variable} could not be loaded from secret {secret_id!r}: {reason}. "
            f"Create the secret or fix SECRET_IDS.",
        )
        self.variable = variable
        self.secret_id = secret_id


def parse_secret_ids(spec: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        var, sep, secret_id = item.partition("=")
        if not sep or not var.strip() or not secret_id.strip():
            raise ValueError(f"SECRET_IDS entry {item!r} is not VAR=secret-id")
        pairs[var.strip()] = secret_id.strip()
    return pairs


def _fetch(secret_id: str) -> str:
    import boto3  # lazily: only deployed functions read secrets

    if secret_id.startswith("ssm:"):
        resp = boto3.client("ssm").get_parameter(Name=secret_id[4:], WithDecryption=True)
        return str(resp["Parameter"]["Value"])
    resp = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)
    if "SecretString" not in resp:
        raise ValueError("the secret has no string value")
    return str(resp["SecretString"])


def database_url_from_secret(value: str) -> str:
    """A URL as is; an RDS JSON secret becomes ``postgresql://user:pass@host:port/db?sslmode=require``."""
    text = value.strip()
    if not text.startswith("{"):
        return text
    data: dict[str, Any] = json.loads(text)
    host = env.DATABASE_HOST.get() or data.get("host")
    if not host or "username" not in data or "password" not in data:
        raise ValueError("the database secret needs username, password and a host (or DATABASE_HOST)")
    user, password = quote(str(data["username"]), safe=""), quote(str(data["password"]), safe="")
    port = int(data.get("port") or 5432)
    dbname = quote(str(env.DATABASE_NAME.get() or data.get("dbname") or "hybrid"), safe="")
    return f"postgresql://{user}:{password}@{host}:{port}/{dbname}?sslmode=require"


def load_secrets(spec: str | None = None) -> list[str]:
    """Fetch every secret named in ``SECRET_IDS`` into the environment; returns the variables set."""
    pairs = parse_secret_ids(env.SECRET_IDS.get(spec) or "")
    loaded: list[str] = []
    for var, secret_id in pairs.items():
        if os.environ.get(var):
            continue
        try:
            value = _fetch(secret_id)
            if var == "DATABASE_URL":
                value = database_url_from_secret(value)
        except Exception as exc:  # botocore errors, bad JSON: the message names the secret, not its value
            code = (
                getattr(exc, "response", {}).get("Error", {}).get("Code")
                if hasattr(exc, "response")
                else None
            )
            raise SecretUnavailable(var, secret_id, code or exc.__class__.__name__) from None
        if not value:
            raise SecretUnavailable(var, secret_id, "the secret is empty")
        os.environ[var] = value
        loaded.append(var)
    return loaded
