"""SECRET_IDS parsing and the database secret → URL rule (shared/config/secrets.py)."""

from __future__ import annotations

import json

import psycopg.conninfo
import pytest

from shared.config.secrets import database_url_from_secret, parse_secret_ids


def test_secret_ids_are_var_equals_id_pairs() -> None:
    spec = " DATABASE_URL=hybrid/prod/database , OPENAI_API_KEY=ssm:/hybrid/prod/openai ,"
    assert parse_secret_ids(spec) == {
        "DATABASE_URL": "hybrid/prod/database",
        "OPENAI_API_KEY": "ssm:/hybrid/prod/openai",
    }
    assert parse_secret_ids("") == {}
    for bad in ("DATABASE_URL", "=x", "X="):
        with pytest.raises(ValueError, match="VAR=secret-id"):
            parse_secret_ids(bad)


def test_an_rds_json_secret_becomes_a_tls_url_through_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_HOST", "hybrid-prod.proxy-abc.eu-central-1.rds.amazonaws.com")
    monkeypatch.delenv("DATABASE_NAME", raising=False)
    secret = json.dumps(
        {"username": "hybrid_app", "password": "p@ss:w/rd?", "host": "cluster-writer", "port": 5432}
    )
    url = database_url_from_secret(secret)
    parts = psycopg.conninfo.conninfo_to_dict(url)
    assert parts["host"] == "hybrid-prod.proxy-abc.eu-central-1.rds.amazonaws.com"
    assert parts["password"] == "p@ss:w/rd?" and parts["user"] == "hybrid_app"
    assert parts["dbname"] == "hybrid" and parts["sslmode"] == "require"
    assert database_url_from_secret("postgresql://a:b@h/db") == "postgresql://a:b@h/db"
    with pytest.raises(ValueError, match="username, password"):
        database_url_from_secret('{"username": "x"}')
