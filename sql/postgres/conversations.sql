-- name: create_conversation :one -> Conversation
-- Open a conversation for a user.
INSERT INTO conversations (conversation_id, user_id, title, context, created_at, updated_at)
VALUES (:conversation_id, :user_id, :title, :context, now(), now())
RETURNING conversation_id, user_id, title, status, context, summary, message_count,
          total_tokens, created_at, updated_at;

-- name: get_conversation :one -> Conversation
-- One conversation by id, whatever its status.
SELECT conversation_id, user_id, title, status, context, summary, message_count,
       total_tokens, created_at, updated_at
FROM conversations
WHERE conversation_id = :conversation_id;

-- name: list_conversations :many -> Conversation
-- A user's conversations but the deleted ones, most recently updated first, after a cursor.
SELECT conversation_id, user_id, title, status, context, summary, message_count,
       total_tokens, created_at, updated_at
FROM conversations
WHERE user_id = :user_id
  AND status <> 'deleted'
  AND (:status::conversation_status IS NULL OR status = :status::conversation_status)
  AND (:after_time::timestamptz IS NULL
       OR (updated_at, conversation_id) < (:after_time::timestamptz, :after_id::uuid))
ORDER BY updated_at DESC, conversation_id DESC
LIMIT :limit;

-- name: list_deleted_conversations :many -> Conversation
-- A user's deleted conversations, most recently updated first, after a cursor.
SELECT conversation_id, user_id, title, status, context, summary, message_count,
       total_tokens, created_at, updated_at
FROM conversations
WHERE user_id = :user_id
  AND status = 'deleted'
  AND (:after_time::timestamptz IS NULL
       OR (updated_at, conversation_id) < (:after_time::timestamptz, :after_id::uuid))
ORDER BY updated_at DESC, conversation_id DESC
LIMIT :limit;

-- name: archive_conversation :one -> Conversation
-- Archive a conversation that is not deleted.
UPDATE conversations
SET status = 'archived', updated_at = now()
WHERE conversation_id = :conversation_id
  AND status <> 'deleted'
RETURNING conversation_id, user_id, title, status, context, summary, message_count,
          total_tokens, created_at, updated_at;

-- name: delete_conversation :one -> Conversation
-- Mark a conversation deleted: it keeps its rows but leaves every listing.
UPDATE conversations
SET status = 'deleted', updated_at = now()
WHERE conversation_id = :conversation_id
RETURNING conversation_id, user_id, title, status, context, summary, message_count,
          total_tokens, created_at, updated_at;

-- name: add_message :one -> Message
-- Add a message to a conversation that is not deleted; the counting trigger bumps its
-- conversation's counters in the same statement.
INSERT INTO messages (
    message_id, conversation_id, user_id, agent_name, message_type, content, metadata,
    tokens_used, response_time, created_at
)
SELECT :message_id, c.conversation_id, :user_id, :agent_name, :message_type, :content,
       :metadata, :tokens_used, :response_time, now()
FROM conversations AS c
WHERE c.conversation_id = :conversation_id
  AND c.status <> 'deleted'
RETURNING message_id, conversation_id, user_id, agent_name, message_type, content, metadata,
          tokens_used, response_time, created_at;

-- name: list_messages :many -> Message
-- A conversation's live messages, newest first, before a cursor.
SELECT message_id, conversation_id, user_id, agent_name, message_type, content, metadata,
       tokens_used, response_time, created_at
FROM messages
WHERE conversation_id = :conversation_id
  AND (:before_time::timestamptz IS NULL
       OR (created_at, message_id) < (:before_time::timestamptz, :before_id::uuid))
ORDER BY created_at DESC, message_id DESC
LIMIT :limit;

-- name: list_archived_messages :many -> Message
-- A conversation's archived messages, newest first, before a cursor.
SELECT message_id, conversation_id, user_id, agent_name, message_type, content, metadata,
       tokens_used, response_time, created_at
FROM messages_archive
WHERE conversation_id = :conversation_id
  AND (:before_time::timestamptz IS NULL
       OR (created_at, message_id) < (:before_time::timestamptz, :before_id::uuid))
ORDER BY created_at DESC, message_id DESC
LIMIT :limit;

-- name: set_summary :one -> Conversation
-- Set the summary of a conversation that is not deleted (and lock it for compaction).
UPDATE conversations
SET summary = :summary, updated_at = now()
WHERE conversation_id = :conversation_id
  AND status <> 'deleted'
RETURNING conversation_id, user_id, title, status, context, summary, message_count,
          total_tokens, created_at, updated_at;

-- name: archive_old_messages :execrows
-- Copy every message but the newest :keep_last of a conversation into the archive.
INSERT INTO messages_archive (
    message_id, conversation_id, user_id, agent_name, message_type, content, metadata,
    tokens_used, response_time, created_at, archived_at
)
SELECT m.message_id, m.conversation_id, m.user_id, m.agent_name, m.message_type, m.content,
       m.metadata, m.tokens_used, m.response_time, m.created_at, now()
FROM messages AS m
WHERE m.conversation_id = :conversation_id
  AND m.message_id NOT IN (
      SELECT k.message_id
      FROM messages AS k
      WHERE k.conversation_id = :conversation_id
      ORDER BY k.created_at DESC, k.message_id DESC
      LIMIT :keep_last
  );

-- name: delete_archived_messages :execrows
-- Remove from the live history the messages of a conversation that are in the archive.
DELETE FROM messages AS m
USING messages_archive AS a
WHERE m.conversation_id = :conversation_id
  AND a.conversation_id = :conversation_id
  AND a.message_id = m.message_id;

-- name: usage_stats :many -> UsageDay
-- One row per UTC day from :since to :until: conversations started, messages (live and
-- archived), tokens, mean and p95 response time, distinct users with messages.
WITH days AS (
    SELECT d::date AS day
    FROM generate_series(:since::date, :until::date, interval '1 day') AS d
),
started AS (
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
    FROM conversations
    WHERE created_at >= (:since::date)::timestamp AT TIME ZONE 'UTC'
      AND created_at < (:until::date + 1)::timestamp AT TIME ZONE 'UTC'
      AND (:user_id::uuid IS NULL OR user_id = :user_id::uuid)
    GROUP BY 1
),
all_messages AS (
    SELECT user_id, tokens_used, response_time, created_at FROM messages
    UNION ALL
    SELECT user_id, tokens_used, response_time, created_at FROM messages_archive
),
activity AS (
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
           count(*) AS messages,
           sum(tokens_used) AS tokens,
           avg(response_time) AS mean_response_time,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY response_time) AS p95_response_time,
           count(DISTINCT user_id) AS active_users
    FROM all_messages
    WHERE created_at >= (:since::date)::timestamp AT TIME ZONE 'UTC'
      AND created_at < (:until::date + 1)::timestamp AT TIME ZONE 'UTC'
      AND (:user_id::uuid IS NULL OR user_id = :user_id::uuid)
    GROUP BY 1
)
SELECT days.day,
       coalesce(started.n, 0) AS conversations_started,
       coalesce(activity.messages, 0) AS messages,
       coalesce(activity.tokens, 0) AS tokens,
       activity.mean_response_time,
       activity.p95_response_time,
       coalesce(activity.active_users, 0) AS active_users
FROM days
LEFT JOIN started ON started.day = days.day
LEFT JOIN activity ON activity.day = days.day
ORDER BY days.day;

-- name: purge_conversations :execrows
-- Delete up to :batch_size conversations untouched for :days days (messages go with them).
DELETE FROM conversations
WHERE conversation_id IN (
    SELECT conversation_id
    FROM conversations
    WHERE updated_at < now() - make_interval(days => :days)
    LIMIT :batch_size
);
