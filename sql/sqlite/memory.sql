-- name: store_memory :one -> MemoryEntry
-- Store a memory under (user, key): a second store replaces type, value, importance and
-- expiry, keeps the access count, and moves updated_at.
INSERT INTO memory_entries (
    memory_id, user_id, memory_type, key, value, importance_score, expires_at,
    created_at, updated_at
)
VALUES (
    :memory_id, :user_id, :memory_type, :key, :value, :importance_score, :expires_at,
    now_utc(), now_utc()
)
ON CONFLICT (user_id, key) DO UPDATE
SET memory_type = excluded.memory_type,
    value = excluded.value,
    importance_score = excluded.importance_score,
    expires_at = excluded.expires_at,
    updated_at = excluded.updated_at
RETURNING memory_id, user_id, memory_type, key, value, importance_score, access_count,
          created_at, updated_at, last_accessed_at, expires_at;

-- name: get_memory :one -> MemoryEntry
-- Read an unexpired memory and count the access, in one statement.
UPDATE memory_entries
SET access_count = access_count + 1,
    last_accessed_at = now_utc()
WHERE user_id = :user_id
  AND key = :key
  AND (expires_at IS NULL OR expires_at > now_utc())
RETURNING memory_id, user_id, memory_type, key, value, importance_score, access_count,
          created_at, updated_at, last_accessed_at, expires_at;

-- name: count_accesses :execrows
-- Add accesses served from a cache: :batch is a JSON array of {memory_id, n, at}.
UPDATE memory_entries
SET access_count = access_count + b.n,
    last_accessed_at = max(coalesce(last_accessed_at, b.at), b.at)
FROM (
    SELECT json_extract(value, '$.memory_id') AS memory_id,
           json_extract(value, '$.n') AS n,
           json_extract(value, '$.at') AS at
    FROM json_each(:batch)
) AS b
WHERE memory_entries.memory_id = b.memory_id;

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
    WHERE expires_at <= now_utc()
    LIMIT :batch_size
);

-- name: search_memories :many -> ScoredMemoryEntry
-- A user's unexpired memories matching any of :terms (a JSON array of words), best first.
-- relevance: FTS5 match (accents ignored, each word a prefix), 0.5 + 0.5 * bm25 mapped
-- to [0, 1). score = relevance * importance_score * decay, decay = h / (h + age in days)
-- with a half-life h of 1 (short_term), 7 (medium_term) or 90 (long_term) days; critical: 1.
WITH matched AS (
    SELECT s.memory_id, bm25(memory_entries_fts) AS rank
    FROM memory_entries_fts
    JOIN memory_search_ids AS s ON s.search_id = memory_entries_fts.rowid
    WHERE memory_entries_fts MATCH (
        SELECT group_concat('"' || t.value || '"*', ' OR ') FROM json_each(:terms) AS t
    )
),
scored AS (
    SELECT m.memory_id, m.user_id, m.memory_type, m.key, m.value, m.importance_score,
           m.access_count, m.created_at, m.updated_at, m.last_accessed_at, m.expires_at,
           (0.5 + 0.5 * (-r.rank) / (1.0 - r.rank)) * m.importance_score * CASE m.memory_type
               WHEN 'critical' THEN 1.0
               ELSE (CASE m.memory_type WHEN 'short_term' THEN 1.0
                                        WHEN 'medium_term' THEN 7.0 ELSE 90.0 END)
                    / ((CASE m.memory_type WHEN 'short_term' THEN 1.0
                                           WHEN 'medium_term' THEN 7.0 ELSE 90.0 END)
                       + max(julianday(now_utc())
                             - julianday(max(coalesce(m.last_accessed_at, m.updated_at),
                                             m.updated_at)), 0))
           END AS score
    FROM matched AS r
    JOIN memory_entries AS m ON m.memory_id = r.memory_id
    WHERE m.user_id = :user_id
      AND (m.expires_at IS NULL OR m.expires_at > now_utc())
      AND (:memory_types IS NULL
           OR m.memory_type IN (SELECT t.value FROM json_each(:memory_types) AS t))
)
SELECT memory_id, user_id, memory_type, key, value, importance_score, access_count,
       created_at, updated_at, last_accessed_at, expires_at, score
FROM scored
ORDER BY score DESC, importance_score DESC, updated_at DESC, memory_id
LIMIT :limit;
