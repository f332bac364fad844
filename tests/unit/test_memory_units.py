"""memory37 pieces without a database: chunking, parsing, fusion, filters, keyword planning."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from shared.config.models import ChunkingSettings, MemorySection
from shared.memory37.chunking import chunk_document, count_tokens
from shared.memory37.parsers import SourceDocument, SourceError, parse_file
from shared.memory37.search import (
    InvalidQuery,
    SearchFilters,
    fuse,
    keyword_query,
    tsquery_literal,
    validate_request,
)

CFG = MemorySection()


def test_markdown_chunks_follow_headings_and_skip_fenced_code() -> None:
    text = (
        "# Town\n\nIntro line.\n\n## History\n\nOld. Very old.\n\n"
        "```\n# not a heading\n```\n\n### Founding\n\nYear one."
    )
    chunks = chunk_document("Town", text, ChunkingSettings(max_tokens=50, overlap_tokens=5, min_tokens=1))
    headings = [c.heading for c in chunks]
    assert headings == ["Town", "Town › History", "Town › History › Founding"]
    assert "# not a heading" in chunks[1].text
    assert chunks[2].embed_text.startswith("Town › History › Founding\n\n")
    assert [c.position for c in chunks] == [0, 1, 2]


def test_long_sections_are_packed_under_max_tokens_with_overlap() -> None:
    sentences = [f"Sentence number {i} talks about the salt marsh and its tides." for i in range(40)]
    settings = ChunkingSettings(max_tokens=60, overlap_tokens=15, min_tokens=5)
    chunks = chunk_document("T", " ".join(sentences), settings)
    assert len(chunks) > 5
    assert all(c.token_count <= 60 + 5 for c in chunks)
    for a, b in itertools.pairwise(chunks):
        last_sentence = a.text.split(". ")[-1]
        assert last_sentence.rstrip(".") in b.text  # consecutive chunks share the boundary sentence
    assert count_tokens("Hello, world!") == 4


def test_a_single_huge_sentence_is_cut_into_windows() -> None:
    chunks = chunk_document("T", "word " * 500, ChunkingSettings(max_tokens=100, overlap_tokens=10))
    assert len(chunks) >= 5 and all(c.token_count <= 100 for c in chunks)


def test_front_matter_title_tags_lang_and_date(tmp_path: Path) -> None:
    f = tmp_path / "a.md"
    f.write_text(
        "---\ntags: [x, y]\nlang: ru\ndate: 2024-05-01\nauthor: me\n---\n# Заголовок\n\nТекст.\n", "utf-8"
    )
    (doc,) = list(parse_file(f, tmp_path))
    assert isinstance(doc, SourceDocument)
    assert (doc.title, doc.tags, doc.lang, doc.source_id) == ("Заголовок", ["x", "y"], "ru", "a.md")
    assert doc.date is not None and doc.date.year == 2024 and doc.meta == {"author": "me"}


def test_jsonl_bad_lines_are_reported_with_their_line_and_the_rest_parsed(tmp_path: Path) -> None:
    f = tmp_path / "k.jsonl"
    lines = [
        json.dumps({"id": "a", "title": "A", "text": "alpha", "tags": ["t"], "lang": "en", "meta": {}}),
        "{not json",
        json.dumps({"id": "b", "text": ""}),
        json.dumps({"id": "c", "text": "gamma", "colour": "red"}),
        json.dumps(["not", "an", "object"]),
        "",
        json.dumps({"id": "d", "text": "delta", "meta": {"date": "2023-01-02"}}),
    ]
    f.write_text("\n".join(lines), "utf-8")
    out = list(parse_file(f, tmp_path))
    docs = [o for o in out if isinstance(o, SourceDocument)]
    errors = [o for o in out if isinstance(o, SourceError)]
    assert [d.source_id for d in docs] == ["a", "d"]
    assert [e.line for e in errors] == [2, 3, 4, 5]
    assert "text" in errors[1].error and "colour" in errors[2].error


def test_unreadable_and_non_utf8_files_become_errors(tmp_path: Path) -> None:
    f = tmp_path / "bad.md"
    f.write_bytes(b"# T\n\n\xff\xfe broken")
    (err,) = list(parse_file(f, tmp_path))
    assert isinstance(err, SourceError) and "UTF-8" in err.error


def test_weighted_rrf_rewards_agreement() -> None:
    fused = dict(fuse([1, 2, 3], [3, 4], CFG))
    assert max(fused, key=lambda k: fused[k]) == 3
    weighted = MemorySection.model_validate({"fusion": {"dense_weight": 0.0, "keyword_weight": 1.0}})
    assert [cid for cid, _ in fuse([1, 2], [2, 9], weighted)][:2] == [2, 9]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": ""}, "empty"),
        ({"query": "   "}, "empty"),
        ({"query": "x" * 10_000}, "longer"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 101}, "top_k"),
        ({"filters": {"tags_any": "x"}}, "tags_any"),
        ({"filters": {"colour": "red"}}, "colour"),
        ({"filters": {"date_from": "2024-05-02", "date_to": "2024-05-01"}}, "after"),
    ],
)
def test_bad_requests_are_refused(kwargs: dict, message: str) -> None:
    args = {"domains": ["lore"], "query": "q", "top_k": 10, "filters": None} | kwargs
    with pytest.raises(InvalidQuery, match=message):
        validate_request(cfg=CFG, **args)


def test_unknown_domain_names_the_configured_ones() -> None:
    with pytest.raises(ValueError, match="configured domains: episodes, lore, srd"):
        validate_request(domains=["nope"], query="q", top_k=1, filters=None, cfg=CFG)


def test_bare_dates_cover_whole_days() -> None:
    f = SearchFilters.model_validate({"date_from": "2024-05-01", "date_to": "2024-05-01", "lang": "ru"})
    assert f.date_from is not None and f.date_to is not None and f.lang == ["ru"]
    assert (f.date_to - f.date_from).total_seconds() == pytest.approx(86400, abs=1)


def test_tsquery_literals_escape_quotes_and_backslashes() -> None:
    assert tsquery_literal("o'brien") == "'o''brien'"
    assert tsquery_literal("a\\b") == "'a\\\\b'"


def test_keyword_plan_keeps_the_rarest_words_within_the_budget() -> None:
    cfg = MemorySection.model_validate({"keyword": {"max_ranked_rows": 100}})
    plan = keyword_query([["lang", "common", 5000], ["lang", "rare", 10], ["lang", "mid", 80]], "q", cfg)
    assert plan is not None
    params = plan[2]
    assert params["tq"] == "'rare' | 'mid'"
    # every word is common: all of them are required instead
    plan = keyword_query([["lang", "a", 5000], ["lang", "b", 4000]], "q", cfg)
    assert plan is not None and plan[2]["tq"] == "'a' & 'b'"
    assert keyword_query([], "q", cfg) is None
    websearch = keyword_query(None, '"tide bell" -fog', cfg)
    assert websearch is not None and "websearch_to_tsquery" in repr(websearch[0])


def test_tied_scores_share_their_average_rank() -> None:
    from shared.memory37.search import tied_ranks

    ranks = tied_ranks([(-0.9, 7), (-0.5, 1), (-0.5, 2), (-0.5, 3), (-0.1, 4)])
    assert ranks == {7: 1.0, 1: 3.0, 2: 3.0, 3: 3.0, 4: 5.0}
    # a chunk in both lists first; then, on equal scores, the keyword match before the dense one
    fused = fuse({10: 1.0, 11: 2.0}, {12: 1.0, 11: 20.0}, CFG)
    assert [cid for cid, _ in fused][:2] == [11, 12]
    assert fuse({1: 1.0}, {2: 1.0}, CFG)[0][0] == 2  # equal scores: the keyword match first
