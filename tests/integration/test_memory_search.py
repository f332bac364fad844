"""Hybrid search on the real database: isolation, Russian and English, filters, bad input over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from shared.memory37.etl import ingest_path
from shared.memory37.search import search_memory
from shared.providers.rerank import Reranker, RerankResult
from tests.fakes.embedder import HashEmbedder

EMB = HashEmbedder()


def page(folder: Path, name: str, body: str, **front: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fm = "".join(f"{k}: {v}\n" for k, v in front.items())
    (folder / name).write_text((f"---\n{fm}---\n" if fm else "") + body, "utf-8")


@pytest.fixture(scope="module")
def world(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Shared lore, two users' private notes, a campaign whose only member is alice."""
    root = tmp_path_factory.mktemp("memory")
    with psycopg.connect(db_url, autocommit=True) as conn:
        alice, bob, carol = (
            conn.execute("INSERT INTO users (telegram_id) VALUES (%s) RETURNING id", (t,)).fetchone()[0]  # type: ignore[index]
            for t in (9001, 9002, 9003)
        )
        campaign = conn.execute(
            "INSERT INTO memory_campaigns (name) VALUES ('Salt') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO memory_campaign_members (campaign_id, user_id) VALUES (%s, %s)", (campaign, alice)
        )
        page(
            root / "shared",
            "dragons.md",
            "# Dragons\n\nA red dragon sleeps under the volcano. Dragons hoard gold.",
            tags="[creature, fire]",
            date="2024-01-10",
        )
        page(
            root / "shared",
            "eels.md",
            "# Eels\n\nThe marsh eels are harvested in autumn by the reed villages.",
            tags="[creature, marsh]",
            date="2024-03-10",
        )
        page(
            root / "shared",
            "drakon.md",
            "# Драконы\n\nКрасные драконы спят под горой и охраняют золото.",
            lang="ru",
            tags="[creature]",
            date="2024-02-10",
        )
        page(
            root / "shared",
            "quotes.md",
            "# Quotes\n\nO'Brien said: back\\slash and 'single' \"double\" quotes; DROP TABLE users;",
            tags="[misc]",
        )
        page(root / "alice", "secret.md", "# Alice notes\n\nThe password to the vault is heliotrope.")
        page(root / "bob", "secret.md", "# Bob notes\n\nThe vault password is marigold.")
        page(
            root / "campaign",
            "episode1.md",
            "# Episode 1\n\nThe party found the vault key in the heliotrope garden.",
        )
        ingest_path(conn, domain="lore", source=root / "shared", embedder=EMB)
        ingest_path(
            conn, domain="lore", source=root / "alice", embedder=EMB, visibility="user", owner_user_id=alice
        )
        ingest_path(
            conn, domain="lore", source=root / "bob", embedder=EMB, visibility="user", owner_user_id=bob
        )
        ingest_path(conn, domain="episodes", source=root / "campaign", embedder=EMB, campaign_id=campaign)
    return {"alice": alice, "bob": bob, "carol": carol, "campaign": campaign}


@pytest.fixture()
def conn(db_url: str, world: dict[str, Any]) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


def ids(
    conn: psycopg.Connection,
    user: int | None,
    query: str,
    domains: tuple[str, ...] = ("lore", "episodes"),
    **kw: Any,
) -> list[str]:
    hits = search_memory(conn, user_id=user, domains=list(domains), query=query, top_k=20, embedder=EMB, **kw)
    return [f"{h.domain}/{h.visibility}/{h.doc_id}" for h in hits]


def test_each_user_sees_shared_own_and_campaign_documents_only(conn, world) -> None:
    q = "vault password heliotrope marigold key"
    alice, bob, carol = (set(ids(conn, world[u], q)) for u in ("alice", "bob", "carol"))
    assert {"lore/user/secret.md", "episodes/campaign/episode1.md"} <= alice
    assert not any("marigold" in x for x in alice)
    alice_hits = search_memory(
        conn, user_id=world["alice"], domains=["lore", "episodes"], query=q, top_k=20, embedder=EMB
    )
    assert all("marigold" not in h.text for h in alice_hits)
    bob_hits = search_memory(
        conn, user_id=world["bob"], domains=["lore", "episodes"], query=q, top_k=20, embedder=EMB
    )
    assert any("marigold" in h.text for h in bob_hits)
    assert all("heliotrope" not in h.text for h in bob_hits)
    assert "episodes/campaign/episode1.md" not in bob
    assert all("/shared/" in x for x in carol)
    assert all("/shared/" in x for x in ids(conn, None, q))  # the CLI's view: shared only


def test_isolation_holds_on_the_exact_and_the_keyword_only_paths(conn, world) -> None:
    # a selective filter forces the exact dense search; keyword mode skips the vector side entirely
    for mode in ("hybrid", "keyword", "dense"):
        got = ids(conn, world["bob"], "heliotrope vault", mode=mode)
        assert all("heliotrope" not in x for x in got)
        hits = search_memory(
            conn,
            user_id=world["bob"],
            domains=["lore", "episodes"],
            query="heliotrope vault",
            top_k=20,
            embedder=EMB,
            mode=mode,
            filters={"visibility": ["user", "campaign"]},
        )
        assert all(h.visibility == "user" and "marigold" in h.text for h in hits)


def test_russian_stemming_finds_declined_forms(conn) -> None:
    hits = search_memory(
        conn, user_id=None, domains=["lore"], query="дракон охраняет", top_k=5, embedder=EMB, mode="keyword"
    )
    assert hits and hits[0].doc_id == "drakon.md" and hits[0].lang == "ru"
    hits = search_memory(
        conn, user_id=None, domains=["lore"], query="горы", top_k=5, embedder=EMB, mode="keyword"
    )
    assert [h.doc_id for h in hits] == ["drakon.md"]
    hits = search_memory(
        conn,
        user_id=None,
        domains=["lore"],
        query="what do dragons hoard?",
        top_k=5,
        embedder=EMB,
        mode="keyword",
    )
    assert hits[0].doc_id == "dragons.md"  # English stemming: dragons → dragon, hoard


def test_quotes_backslashes_and_sql_are_searched_as_text(conn) -> None:
    for q in [
        "O'Brien",
        "back\\slash",
        "'; DROP TABLE users; --",
        '"double" quotes',
        "\\",
        "'",
        "a & b | !c <-> d:*",
        "SELECT * FROM memory_documents WHERE 1=1",
    ]:
        search_memory(conn, user_id=None, domains=["lore"], query=q, top_k=5, embedder=EMB)
    hits = search_memory(
        conn,
        user_id=None,
        domains=["lore"],
        query="O'Brien backslash DROP TABLE",
        top_k=3,
        embedder=EMB,
        mode="keyword",
    )
    assert hits and hits[0].doc_id == "quotes.md"
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 3  # type: ignore[index]


def test_filters_tags_lang_and_dates(conn) -> None:
    q = "creature"
    any_fire = ids(conn, None, q, ("lore",), filters={"tags_any": ["fire", "marsh"]})
    assert set(any_fire) == {"lore/shared/dragons.md", "lore/shared/eels.md"}
    assert ids(conn, None, q, ("lore",), filters={"tags_all": ["creature", "fire"]}) == [
        "lore/shared/dragons.md"
    ]
    assert ids(conn, None, q, ("lore",), filters={"lang": "ru"}) == ["lore/shared/drakon.md"]
    got = ids(conn, None, q, ("lore",), filters={"date_from": "2024-02-01", "date_to": "2024-02-28"})
    assert got == ["lore/shared/drakon.md"]


def test_a_filtered_query_returns_k_hits_when_k_rows_match(conn) -> None:
    hits = search_memory(
        conn,
        user_id=None,
        domains=["lore"],
        query="zzz unrelated words",
        top_k=3,
        embedder=EMB,
        filters={"tags_any": ["creature"]},
    )
    assert len(hits) == 3


class ReverseReranker(Reranker):
    model = "reverse"

    def rerank(self, query: str, documents, top_n=None):  # type: ignore[no-untyped-def]
        n = len(documents)
        return [RerankResult(index=i, score=1 - i / n) for i in reversed(range(n))]


def test_explain_and_rerank(conn) -> None:
    plain = search_memory(
        conn, user_id=None, domains=["lore"], query="red dragon gold", top_k=3, embedder=EMB, explain=True
    )
    assert plain[0].fused_score and (plain[0].dense_rank or plain[0].keyword_rank)
    d = plain[0].to_dict(explain=True)
    assert {
        "doc_id",
        "chunk_id",
        "title",
        "text",
        "score",
        "dense_rank",
        "keyword_rank",
        "fused_score",
    } <= d.keys()
    assert "dense_rank" not in plain[0].to_dict()
    reranked = search_memory(
        conn,
        user_id=None,
        domains=["lore"],
        query="red dragon gold",
        top_k=3,
        embedder=EMB,
        reranker=ReverseReranker(),
    )
    assert reranked[0].rerank_score is not None
    assert [h.chunk_id for h in reranked] != [h.chunk_id for h in plain]


# --- HTTP ------------------------------------------------------------------------------------------------
@pytest.fixture()
def client(app_env: str, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from shared.api.app import create_app
    from shared.providers import factory

    monkeypatch.setattr(factory, "build_embedder", lambda name=None: EMB)
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


def token(user_id: int, telegram_id: int) -> dict[str, str]:
    from shared.auth.service import get_token_service

    tok, _ = get_token_service().issue(user_id=user_id, telegram_id=telegram_id)
    return {"Authorization": f"Bearer {tok}"}


def test_api_search_is_authenticated_and_isolated(client: TestClient, world) -> None:
    body = {"domain": ["lore", "episodes"], "query": "vault password", "top_k": 10}
    assert client.post("/v1/memory/search", json=body).status_code == 401
    resp = client.post("/v1/memory/search", json=body | {"explain": True}, headers=token(world["bob"], 9002))
    assert resp.status_code == 200, resp.text
    hits = resp.json()["hits"]
    assert hits and all("heliotrope" not in h["text"] for h in hits)
    assert {
        "doc_id",
        "chunk_id",
        "title",
        "text",
        "score",
        "dense_rank",
        "keyword_rank",
        "fused_score",
    } <= hits[0].keys()
    alice = client.post("/v1/memory/search", json=body, headers=token(world["alice"], 9001)).json()["hits"]
    assert any("heliotrope" in h["text"] for h in alice) and all("marigold" not in h["text"] for h in alice)


@pytest.mark.parametrize(
    "patch",
    [
        {"query": ""},
        {"query": "   "},
        {"query": "x" * 10_000},
        {"domain": "nope"},
        {"top_k": 0},
        {"top_k": 101},
        {"top_k": "ten"},
        {"filters": {"tags_any": "not-a-list"}},
        {"filters": {"unknown": 1}},
        {"filters": {"date_from": "yesterday"}},
        {"filters": "tags=x"},
        {"surprise": True},
    ],
)
def test_api_bad_input_is_422_problem_json(client: TestClient, world, patch: dict[str, Any]) -> None:
    body = {"domain": "lore", "query": "dragon", "top_k": 5} | patch
    resp = client.post("/v1/memory/search", json=body, headers=token(world["carol"], 9003))
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert {"type", "title", "status", "detail"} <= problem.keys() and problem["status"] == 422
    assert "x" * 100 not in resp.text  # the input is not echoed


def test_api_searches_sql_and_quotes_as_text(client: TestClient, world) -> None:
    for q in ["'; DROP TABLE users; --", "back\\slash \"double\" 'single'", "O'Brien"]:
        resp = client.post(
            "/v1/memory/search", json={"domain": "lore", "query": q}, headers=token(world["carol"], 9003)
        )
        assert resp.status_code == 200, resp.text
