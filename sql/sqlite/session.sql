-- name: actor_role :scalar
-- The role of a scoped transaction's actor (scoped transactions need PostgreSQL; this keeps
-- the dialects' statements in step).
SELECT role FROM users WHERE user_id = :user_id;
