-- name: actor_role :scalar
-- The role of a scoped transaction's actor, read before row-level security applies.
SELECT role::text FROM users WHERE user_id = :user_id;
