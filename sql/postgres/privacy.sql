-- name: user_conversations :many -> Conversation
-- Every conversation of a user, whatever its status, oldest first.
SELECT conversation_id, user_id, title, status, context, summary, message_count,
       total_tokens, created_at, updated_at
FROM conversations
WHERE user_id = :user_id
ORDER BY created_at, conversation_id;

-- name: user_messages :many -> Message
-- Every live message a user wrote or that is in their conversations, oldest first.
SELECT message_id, conversation_id, user_id, agent_name, message_type, content, metadata,
       tokens_used, response_time, created_at
FROM messages
WHERE user_id = :user_id
   OR conversation_id IN (SELECT conversation_id FROM conversations WHERE user_id = :user_id)
ORDER BY created_at, message_id;

-- name: user_archived_messages :many -> Message
-- Every archived message a user wrote or that is in their conversations, oldest first.
SELECT message_id, conversation_id, user_id, agent_name, message_type, content, metadata,
       tokens_used, response_time, created_at
FROM messages_archive
WHERE user_id = :user_id
   OR conversation_id IN (SELECT conversation_id FROM conversations WHERE user_id = :user_id)
ORDER BY created_at, message_id;

-- name: user_memories :many -> MemoryEntry
-- Every memory of a user, expired ones included.
SELECT memory_id, user_id, memory_type, key, value, importance_score, access_count,
       created_at, updated_at, last_accessed_at, expires_at
FROM memory_entries
WHERE user_id = :user_id
ORDER BY created_at, memory_id;

-- name: user_metrics :many -> Metric
-- Every metric sample of a user, oldest first.
SELECT metric_id, user_id, dashboard_id, ia_efficiency, model_accuracy, processing_time_ms,
       memory_usage_mb, error_rate, "timestamp", periodo
FROM metrics
WHERE user_id = :user_id
ORDER BY "timestamp", metric_id;

-- name: user_rollups :many -> MetricRollup
-- Every hourly metric rollup of a user (theirs and their dashboards'), oldest first.
SELECT user_id, dashboard_id, hour, samples,
       ia_efficiency_sum, ia_efficiency_min, ia_efficiency_max,
       model_accuracy_sum, model_accuracy_min, model_accuracy_max,
       processing_time_ms_sum, processing_time_ms_min, processing_time_ms_max,
       memory_usage_mb_sum, memory_usage_mb_min, memory_usage_mb_max,
       error_rate_sum, error_rate_min, error_rate_max,
       (SELECT jsonb_object_agg(k.bin, k.n) FROM unnest(sketch_bins, sketch_counts) AS k (bin, n)) AS sketch
FROM metrics_hourly
WHERE user_id = :user_id
ORDER BY hour, dashboard_id;

-- name: audit_about_user :many -> AuditEntry
-- Audit rows about a user's data (they are its subject), oldest first.
SELECT audit_id, user_id, subject_id, action, table_name, record_id, old_values, new_values,
       "timestamp", host(ip_address) AS ip_address, user_agent
FROM audit_log
WHERE subject_id = :user_id
ORDER BY audit_id;

-- name: record_audit_event :exec
-- Record an event on a user that no trigger sees (EXPORT, ERASE), with the actor.
INSERT INTO audit_log (
    user_id, subject_id, action, table_name, record_id, new_values, "timestamp", ip_address,
    user_agent
)
VALUES (nullif(current_setting('stratus.actor_user_id', true), '')::uuid, :user_id, :action, 'users', :user_id, :details, now(), nullif(current_setting('stratus.actor_ip', true), '')::inet, nullif(current_setting('stratus.actor_user_agent', true), ''));

-- name: allow_audit_redaction :exec
-- Let this transaction rewrite audit rows and seals (erasure only).
SELECT set_config('stratus.audit_redaction', 'on', true);

-- name: forget_user_rollups :exec writes
-- Recompute the organisation's rollups of the hours the user had samples in from everyone
-- else's (delete_orphan_rollups, here a no-op, and delete_user_rollups follow).
SELECT metrics_forget_user_rollups(:user_id);

-- name: delete_orphan_rollups :execrows
-- Delete the organisation's rollups of the hours in which no one but the user had samples.
DELETE FROM metrics_hourly
WHERE user_id IS NULL
  AND hour IN (
      SELECT hour FROM metrics_hourly WHERE user_id = :user_id AND dashboard_id IS NULL
  )
  AND hour NOT IN (
      SELECT hour FROM metrics_hourly
      WHERE user_id <> :user_id AND dashboard_id IS NULL
        AND hour IN (
            SELECT hour FROM metrics_hourly WHERE user_id = :user_id AND dashboard_id IS NULL
        )
  );

-- name: delete_user_rollups :execrows
-- Delete the user's hourly rollups (theirs and their dashboards'); forget_user_rollups has
-- rewritten the organisation's.
DELETE FROM metrics_hourly
WHERE user_id = :user_id;

-- name: delete_user_metrics :execrows
-- Delete a user's metric samples.
DELETE FROM metrics
WHERE user_id = :user_id;

-- name: delete_user_api_keys :execrows
-- Delete a user's API keys.
DELETE FROM api_keys
WHERE user_id = :user_id;

-- name: delete_user_dashboards :execrows
-- Delete a user's dashboards.
DELETE FROM dashboards
WHERE user_id = :user_id;

-- name: delete_user_memories :execrows
-- Delete a user's memories.
DELETE FROM memory_entries
WHERE user_id = :user_id;

-- name: delete_user_conversations :execrows
-- Delete a user's conversations, and with them their messages, live and archived.
DELETE FROM conversations
WHERE user_id = :user_id;

-- name: anonymize_user :execrows
-- Replace a user's personal data; the row stays, so references to the id stay valid.
UPDATE users
SET name = 'Usuário removido',
    email = 'erased.' || :user_id::text || '@erased.invalid',
    licenses = '[]',
    experience_level = NULL,
    preferences = '{}'
WHERE user_id = :user_id;

-- name: redact_audit_about_user :execrows
-- Blank the personal fields of the audit rows about a user's data, and the network details
-- of those rows caused by them or by no known actor (a sign-up); another actor's (an
-- administrator's) own details stay.
UPDATE audit_log
SET old_values = jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(
           old_values, '{name}', '"[erased]"', false), '{email}', '"[erased]"', false),
           '{licenses}', '"[erased]"', false), '{preferences}', '"[erased]"', false),
           '{experience_level}', '"[erased]"', false), '{title}', '"[erased]"', false),
           '{context}', '"[erased]"', false), '{summary}', '"[erased]"', false),
           '{key}', '"[erased]"', false), '{value}', '"[erased]"', false),
    new_values = jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(
           new_values, '{name}', '"[erased]"', false), '{email}', '"[erased]"', false),
           '{licenses}', '"[erased]"', false), '{preferences}', '"[erased]"', false),
           '{experience_level}', '"[erased]"', false), '{title}', '"[erased]"', false),
           '{context}', '"[erased]"', false), '{summary}', '"[erased]"', false),
           '{key}', '"[erased]"', false), '{value}', '"[erased]"', false),
    ip_address = CASE WHEN user_id IS NULL OR user_id = :user_id THEN NULL ELSE ip_address END,
    user_agent = CASE WHEN user_id IS NULL OR user_id = :user_id THEN NULL ELSE user_agent END
WHERE subject_id = :user_id;

-- name: forget_actor_network :execrows
-- Blank the network details of every audit row a user caused, about anyone's data.
UPDATE audit_log
SET ip_address = NULL,
    user_agent = NULL
WHERE user_id = :user_id
  AND (ip_address IS NOT NULL OR user_agent IS NOT NULL);

-- name: delete_user_messages :execrows
-- Delete the messages a user wrote in other people's conversations, live and archived.
DELETE FROM messages
WHERE user_id = :user_id;

-- name: delete_user_archived_messages :execrows
-- Delete the archived messages a user wrote in other people's conversations.
DELETE FROM messages_archive
WHERE user_id = :user_id;

-- name: lock_user :one -> User
-- A user's row, locked until the transaction ends: child rows cannot be added meanwhile.
SELECT user_id, name, email, role, licenses, experience_level, preferences,
       created_at, last_active
FROM users
WHERE user_id = :user_id
FOR UPDATE;

-- name: compact_search_index :exec
-- Nothing to rewrite here: deleted rows' search columns go with the rows (VACUUM reclaims).
SELECT 1;

-- name: flush_erased_pages :scalar
-- Nothing to flush from here: PostgreSQL's WAL and dead tuples are the server's (README).
SELECT 0;
