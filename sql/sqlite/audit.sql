-- name: list_audit :many -> AuditEntry
-- Audit rows, newest first, filtered by table, record, actor, subject and time; before an id.
SELECT audit_id, user_id, subject_id, action, table_name, record_id, old_values, new_values,
       "timestamp",
       ip_address, user_agent
FROM audit_log
WHERE (:table_name IS NULL OR table_name = :table_name)
  AND (:record_id IS NULL OR record_id = :record_id)
  AND (:user_id IS NULL OR user_id = :user_id)
  AND (:subject_id IS NULL OR subject_id = :subject_id)
  AND (:since IS NULL OR "timestamp" >= :since)
  AND (:before_id IS NULL OR audit_id < :before_id)
ORDER BY audit_id DESC
LIMIT :limit;

-- name: audit_rows_after :many -> AuditEntry
-- Audit rows after an id and up to another, oldest first (to be sealed).
SELECT audit_id, user_id, subject_id, action, table_name, record_id, old_values, new_values,
       "timestamp",
       ip_address, user_agent
FROM audit_log
WHERE audit_id > :after_id
  AND audit_id <= :through_id
ORDER BY audit_id
LIMIT :limit;

-- name: audit_rows_between :many -> AuditEntry
-- Audit rows from one id to another, oldest first (to verify a seal).
SELECT audit_id, user_id, subject_id, action, table_name, record_id, old_values, new_values,
       "timestamp",
       ip_address, user_agent
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

-- name: maintain :scalar
-- SQLite keeps audit_log in one table: there are no partitions to create.
SELECT 0 * :months_ahead;

-- name: prune :scalar
-- SQLite keeps audit_log in one table; audit.prune refuses it before running this.
SELECT 0 WHERE :before IS NULL;

-- name: count_prune_anchors :scalar
-- How many PRUNE rows name this digest as the start of the kept chain.
SELECT count(*)
FROM audit_log
WHERE action = 'PRUNE'
  AND json_extract(new_values, '$.anchor') = :digest;

-- name: audit_id_horizon :scalar
-- The last audit id written (inside a write transaction, no other writer can be open).
SELECT coalesce(max(audit_id), 0)
FROM audit_log;

-- name: open_transactions :scalar
-- SQLite lets one writer in at a time: no other transaction can hold audit rows (a JSON array).
SELECT '[]';

-- name: count_still_open :scalar
-- No transaction of another writer is ever in progress beside a sealer's.
SELECT 0 * json_array_length(:xids);

-- name: lock_audit_chain :exec
-- Seals take turns already: every write transaction starts with BEGIN IMMEDIATE.
SELECT 1;

-- name: end_audit_redaction :exec writes
-- Take back the permission to rewrite audit rows and seals.
SELECT stratus_set('audit_redaction', '');

-- name: audit_caused_by_user :many -> AuditEntry
-- Audit rows a user caused that still hold network details, oldest first.
SELECT audit_id, user_id, subject_id, action, table_name, record_id, old_values, new_values,
       "timestamp", ip_address, user_agent
FROM audit_log
WHERE user_id = :user_id
  AND (ip_address IS NOT NULL OR user_agent IS NOT NULL)
ORDER BY audit_id;
