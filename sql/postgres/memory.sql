-- name: store_memory :one -> MemoryEntry
-- Store a memory under (user, key): a second store replaces type, value, importance and
-- expiry, keeps the access count, and moves updated_at.
INSERT INTO memory_entries (
    memory_id, user_id, memory_type, key, value, importance_score, expires_at,
    created_at, updated_at
)
VALUES (
    :memory_id, :user_id, :memory_type, :key, :value, :importance_score, :expires_at,
    now(), now()
)
ON CONFLICT (user_id, key) DO UPDATE
SET memory_type = EXCLUDED.memory_type,
    value = EXCLUDED.value,
    importance_score = EXCLUDED.importance_score,
    expires_at = EXCLUDED.expires_at,
    updated_at = EXCLUDED.updated_at
RETURNING memory_id, user_id, memory_type, key, value, importance_score, access_count,
          created_at, updated_at, last_accessed_at, expires_at;

-- name: get_memory :one -> MemoryEntry
-- Read an unexpired memory and count the access, in one statement.
UPDATE memory_entries
SET access_count = access_count + 1,
    last_accessed_at = now()
WHERE user_id = :user_id
  AND key = :key
  AND (expires_at IS NULL OR expires_at > now())
RETURNING memory_id, user_id, memory_type, key, value, importance_score, access_count,
          created_at, updated_at, last_accessed_at, expires_at;

-- name: count_accesses :execrows
-- Add accesses served from a cache: :batch is a JSON array of {memory_id, n, at}.
UPDATE memory_entries AS m
SET access_count = m.access_count + b.n,
    last_accessed_at = greatest(m.last_accessed_at, b.at)
FROM jsonb_to_recordset(:batch::jsonb) AS b (memory_id uuid, n integer, at timestamptz)
WHERE m.memory_id = b.memory_id;

-- name: forget_memory :execrows
-- Delete a memory, expired or not.
DELETE FROM memory_entries
WHERE user_id = :user_id
  AND key = :key;

-- name: purge_expired :execrows
-- Delete up to :batch_size expired memories (served by memory_entries_expires_idx).
DELETE FROM memory_entries
WHERE memory_id IN (
    SELECT memory_id
    FROM memory_entries
    WHERE expires_at <= now()
    LIMIT :batch_size
);

-- name: search_memories :many -> ScoredMemoryEntry
-- A user's unexpired memories matching any of :terms (a JSON array of words), best first.
-- relevance: a full-text match (Portuguese stems, accents ignored, each word a prefix)
-- scores 0.5 + 0.5 * ts_rank_cd normalized to [0, 1); when those are fewer than :limit,
-- entries matching only by trigram word similarity (typos) score that similarity.
-- score = relevance * importance_score * decay, decay = h / (h + age in days) with a
-- half-life h of 1 (short_term), 7 (medium_term) or 90 (long_term) days; critical: 1.
WITH query AS (
    SELECT to_tsquery('portuguese', stratus_unaccent(string_agg(t.word || ':*', ' | '))) AS tsq,
           lower(stratus_unaccent(string_agg(t.word, ' '))) AS text
    FROM jsonb_array_elements_text(:terms::jsonb) AS t (word)
),
-- One user's entries are few (thousands at most): reading them by user and testing each
-- beats intersecting the global text indexes, whose matches span every user.
mine AS MATERIALIZED (
    SELECT memory_id, user_id, memory_type, key, value, importance_score, access_count,
           created_at, updated_at, last_accessed_at, expires_at, search_text, search_vector
    FROM memory_entries
    WHERE user_id = :user_id
      AND (expires_at IS NULL OR expires_at > now())
      AND (:memory_types::jsonb IS NULL
           OR memory_type::text IN (SELECT jsonb_array_elements_text(:memory_types::jsonb)))
),
-- Words found as words (Portuguese stems, prefixes) first; near spellings (trigram word
-- similarity, the costly test) only when those are fewer than asked for.
exact AS (
    SELECT m.memory_id, m.user_id, m.memory_type, m.key, m.value, m.importance_score,
           m.access_count, m.created_at, m.updated_at, m.last_accessed_at, m.expires_at,
           0.5 + 0.5 * ts_rank_cd(m.search_vector, q.tsq, 32) AS relevance
    FROM mine AS m
    CROSS JOIN query AS q
    WHERE m.search_vector @@ q.tsq
),
near AS (
    SELECT m.memory_id, m.user_id, m.memory_type, m.key, m.value, m.importance_score,
           m.access_count, m.created_at, m.updated_at, m.last_accessed_at, m.expires_at,
           word_similarity(q.text, m.search_text) AS relevance
    FROM mine AS m
    CROSS JOIN query AS q
    WHERE (SELECT count(*) FROM exact) < :limit
      AND NOT m.search_vector @@ q.tsq
      AND q.text <% m.search_text
),
matched AS (
    SELECT memory_id, user_id, memory_type, key, value, importance_score, access_count,
           created_at, updated_at, last_accessed_at, expires_at, relevance,
           greatest(
               extract(EPOCH FROM now() - greatest(last_accessed_at, updated_at)) / 86400, 0
           ) AS age_days
    FROM (
        SELECT memory_id, user_id, memory_type, key, value, importance_score, access_count,
           created_at, updated_at, last_accessed_at, expires_at, relevance
        FROM exact
        UNION ALL
        SELECT memory_id, user_id, memory_type, key, value, importance_score, access_count,
           created_at, updated_at, last_accessed_at, expires_at, relevance
        FROM near
    ) AS found
),
scored AS (
    SELECT memory_id, user_id, memory_type, key, value, importance_score, access_count,
           created_at, updated_at, last_accessed_at, expires_at,
           relevance * importance_score * CASE memory_type
               WHEN 'critical' THEN 1.0
               WHEN 'short_term' THEN 1.0 / (1.0 + age_days)
               WHEN 'medium_term' THEN 7.0 / (7.0 + age_days)
               ELSE 90.0 / (90.0 + age_days)
           END AS score
    FROM matched
)
SELECT memory_id, user_id, memory_type, key, value, importance_score, access_count,
       created_at, updated_at, last_accessed_at, expires_at, score::double precision
FROM scored
ORDER BY score DESC, importance_score DESC, updated_at DESC, memory_id
LIMIT :limit;
