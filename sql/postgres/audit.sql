-- name: list_audit :many -> AuditEntry
-- Audit rows, newest first, filtered by table, record, actor, subject and time; before an id.
SELECT audit_id, user_id, subject_id, action, table_name, record_id, old_values, new_values,
       "timestamp",
       host(ip_address) AS ip_address, user_agent
FROM audit_log
WHERE (:table_name::text IS NULL OR table_name = :table_name::text)
  AND (:record_id::uuid IS NULL OR record_id = :record_id::uuid)
  AND (:user_id::uuid IS NULL OR user_id = :user_id::uuid)
  AND (:subject_id::uuid IS NULL OR subject_id = :subject_id::uuid)
  AND (:since::timestamptz IS NULL OR "timestamp" >= :since::timestamptz)
  AND (:before_id::bigint IS NULL OR audit_id < :before_id::bigint)
ORDER BY audit_id DESC
LIMIT :limit;

-- name: audit_rows_after :many -> AuditEntry
-- Audit rows after an id and up to another, oldest first (to be sealed).
SELECT audit_id, user_id, subject_id, action, table_name, record_id, old_values, new_values,
       "timestamp",
       host(ip_address) AS ip_address, user_agent
FROM audit_log
WHERE audit_id > :after_id
  AND audit_id <= :through_id
ORDER BY audit_id
LIMIT :limit;

-- name: audit_rows_between :many -> AuditEntry
-- Audit rows from one id to another, oldest first (to verify a seal).
SELECT audit_id, user_id, subject_id, action, table_name, record_id, old_values, new_values,
       "timestamp",
       host(ip_address) AS ip_address, user_agent
FROM audit_log
WHERE audit_id BETWEEN :first_id AND :last_id
ORDER BY audit_id;

-- name: last_seal :one -> AuditSeal
-- The newest seal of the audit chain.
SELECT seal_id, first_audit_id, last_audit_id, row_digests, previous_digest, digest, sealed_at
FROM audit_seals
ORDER BY seal_id DESC
LIMIT 1;

-- name: list_seals :many -> AuditSeal
-- Every seal from an id on, oldest first.
SELECT seal_id, first_audit_id, last_audit_id, row_digests, previous_digest, digest, sealed_at
FROM audit_seals
WHERE seal_id >= :from_seal_id
ORDER BY seal_id;

-- name: add_seal :one -> AuditSeal
-- Append a seal to the chain.
INSERT INTO audit_seals (first_audit_id, last_audit_id, row_digests, previous_digest, digest)
VALUES (:first_audit_id, :last_audit_id, :row_digests, :previous_digest, :digest)
RETURNING seal_id, first_audit_id, last_audit_id, row_digests, previous_digest, digest,
          sealed_at;

-- name: rewrite_seal :execrows
-- Store a seal recomputed after a redaction (which alone may rewrite seals).
UPDATE audit_seals
SET row_digests = :row_digests,
    previous_digest = :previous_digest,
    digest = :digest
WHERE seal_id = :seal_id;

-- name: maintain :scalar writes
-- Create the monthly audit_log partitions up to :months_ahead months from now.
SELECT audit_log_add_partitions(:months_ahead);

-- name: prune :scalar writes
-- Drop the monthly audit_log partitions that end on or before :before (and their seals).
SELECT audit_log_drop_partitions(:before);

-- name: count_prune_anchors :scalar
-- How many PRUNE rows name this digest as the start of the kept chain.
SELECT count(*)
FROM audit_log
WHERE action = 'PRUNE'
  AND new_values ->> 'anchor' = :digest;

-- name: audit_id_horizon :scalar
-- The last audit id handed out, committed or not.
SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('audit_log', 'audit_id')::regclass), 0);

-- name: open_transactions :scalar
-- The ids of the transactions in progress now (a JSON array).
SELECT coalesce(jsonb_agg(x::text), '[]')
FROM pg_snapshot_xip(pg_current_snapshot()) AS x;

-- name: count_still_open :scalar
-- How many of these transactions are still in progress.
SELECT count(*)
FROM jsonb_array_elements_text(:xids::jsonb) AS x
WHERE pg_xact_status(x::xid8) = 'in progress';

-- name: lock_audit_chain :exec
-- One sealer at a time: seals and reseals of the chain take turns (until the transaction ends).
SELECT pg_advisory_xact_lock(7425316001);

-- name: end_audit_redaction :exec
-- Take back the permission to rewrite audit rows and seals.
SELECT set_config('stratus.audit_redaction', '', true);

-- name: audit_caused_by_user :many -> AuditEntry
-- Audit rows a user caused that still hold network details, oldest first.
SELECT audit_id, user_id, subject_id, action, table_name, record_id, old_values, new_values,
       "timestamp", host(ip_address) AS ip_address, user_agent
FROM audit_log
WHERE user_id = :user_id
  AND (ip_address IS NOT NULL OR user_agent IS NOT NULL)
ORDER BY audit_id;
