-- memory37: knowledge memory. Documents → chunks → embeddings per (chunk, model), full-text columns,
-- and the scopes a document can belong to: shared, one user's, or one campaign's (members see it).
--
-- Dense vectors are stored as `vector` without a fixed dimension so two models (say MiniLM-384 and
-- bge-m3-1024) coexist while a corpus is re-embedded. Each model gets its own partial HNSW index on the
-- dimension-typed cast, created by the ETL after the model's first bulk load:
--   CREATE INDEX ... USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE model = 'all-MiniLM-L6-v2'

CREATE TABLE memory_campaigns (
    id             bigserial PRIMARY KEY,
    name           text NOT NULL,
    owner_user_id  bigint REFERENCES users(id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memory_campaign_members (
    campaign_id  bigint NOT NULL REFERENCES memory_campaigns(id) ON DELETE CASCADE,
    user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role         text NOT NULL DEFAULT 'player',
    added_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, user_id)
);
CREATE INDEX memory_campaign_members_user_idx ON memory_campaign_members (user_id, campaign_id);

CREATE TABLE memory_documents (
    id             bigserial PRIMARY KEY,
    domain         text NOT NULL,
    source         text NOT NULL,            -- the file (or object key) the document was read from
    source_id      text NOT NULL,            -- stable id inside the domain and scope: JSONL id or relative path
    title          text NOT NULL,
    lang           text NOT NULL,
    ts_config      regconfig NOT NULL,       -- text search configuration of lang (english, russian, simple)
    tags           text[] NOT NULL DEFAULT '{}',
    meta           jsonb NOT NULL DEFAULT '{}',
    visibility     text NOT NULL,
    owner_user_id  bigint REFERENCES users(id) ON DELETE CASCADE,
    campaign_id    bigint REFERENCES memory_campaigns(id) ON DELETE CASCADE,
    content_hash   text NOT NULL,            -- of everything that shapes the chunks: set last, in the same tx
    doc_date       timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT memory_documents_scope CHECK (
        (visibility = 'shared'   AND owner_user_id IS NULL     AND campaign_id IS NULL) OR
        (visibility = 'user'     AND owner_user_id IS NOT NULL AND campaign_id IS NULL) OR
        (visibility = 'campaign' AND campaign_id IS NOT NULL)
    ),
    CONSTRAINT memory_documents_identity
        UNIQUE NULLS NOT DISTINCT (domain, visibility, owner_user_id, campaign_id, source_id)
);
CREATE INDEX memory_documents_domain_idx ON memory_documents (domain, visibility);
CREATE INDEX memory_documents_owner_idx ON memory_documents (owner_user_id) WHERE owner_user_id IS NOT NULL;
CREATE INDEX memory_documents_campaign_idx ON memory_documents (campaign_id) WHERE campaign_id IS NOT NULL;
CREATE INDEX memory_documents_tags_idx ON memory_documents USING gin (tags);
CREATE INDEX memory_documents_date_idx ON memory_documents (doc_date);
CREATE INDEX memory_documents_source_idx ON memory_documents (domain, source);

CREATE TABLE memory_chunks (
    id            bigserial PRIMARY KEY,
    document_id   bigint NOT NULL REFERENCES memory_documents(id) ON DELETE CASCADE,
    position      integer NOT NULL,
    heading       text NOT NULL DEFAULT '',  -- "Title › Section › Subsection", prefixed to the text for embedding
    text          text NOT NULL,
    token_count   integer NOT NULL,
    content_hash  text NOT NULL,             -- of the text that is embedded (heading path + text)
    ts_config     regconfig NOT NULL,        -- the document's configuration (a generated column needs it here)
    tsv           tsvector GENERATED ALWAYS AS (
                      setweight(to_tsvector(ts_config, heading), 'A') || to_tsvector(ts_config, text)
                  ) STORED,
    tsv_simple    tsvector GENERATED ALWAYS AS (
                      to_tsvector('simple'::regconfig, heading || ' ' || text)
                  ) STORED
);
CREATE INDEX memory_chunks_document_idx ON memory_chunks (document_id, position);
CREATE INDEX memory_chunks_hash_idx ON memory_chunks (content_hash);
CREATE INDEX memory_chunks_tsv_idx ON memory_chunks USING gin (tsv);
CREATE INDEX memory_chunks_tsv_simple_idx ON memory_chunks USING gin (tsv_simple);

-- One row per embedding model that has vectors; the ETL records the HNSW index it built for the model.
CREATE TABLE memory_models (
    model       text PRIMARY KEY,
    dimension   integer NOT NULL CHECK (dimension BETWEEN 1 AND 16000),
    index_name  text,
    indexed_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memory_embeddings (
    chunk_id     bigint NOT NULL REFERENCES memory_chunks(id) ON DELETE CASCADE,
    model        text NOT NULL REFERENCES memory_models(model),
    document_id  bigint NOT NULL REFERENCES memory_documents(id) ON DELETE CASCADE,  -- for cheap filtering
    embedding    vector NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chunk_id, model)
);
CREATE INDEX memory_embeddings_document_idx ON memory_embeddings (document_id, model);

-- Document frequency of every lexeme of memory_chunks.tsv, refreshed by the ETL after bulk loads. The
-- keyword search matches only the query's rarer lexemes (at most keyword.max_ranked_rows rows together),
-- so a question with a very common word does not rank half the corpus. Missing lexemes count as rare.
CREATE TABLE memory_lexemes (
    lexeme  text PRIMARY KEY,
    ndoc    integer NOT NULL
);
CREATE TABLE memory_lexeme_totals (
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),
    chunks        bigint NOT NULL,
    refreshed_at  timestamptz NOT NULL DEFAULT now()
);

-- The unstemmed lexemes of `names` (capitalised words of a query) that are not a stop word in any of
-- `cfgs`: matched against tsv_simple so names hit even where a stemmer would mangle them. Query text only
-- ever reaches this as a bound parameter parsed by to_tsvector: quotes, backslashes and SQL are words.
CREATE FUNCTION memory_name_lexemes(names text, cfgs regconfig[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(lexeme ORDER BY lexeme), '{}')
    FROM unnest(tsvector_to_array(to_tsvector('simple'::regconfig, names))) AS lexeme
    WHERE char_length(lexeme) > 1
      AND NOT EXISTS (SELECT 1 FROM unnest(cfgs) AS c WHERE numnode(plainto_tsquery(c, lexeme)) = 0)
$$;
