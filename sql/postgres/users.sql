-- name: create_user :one -> User
-- Insert a user; the email is unique whatever its case.
INSERT INTO users (
    user_id, name, email, role, licenses, experience_level, preferences, created_at
)
VALUES (:user_id, :name, :email, :role, :licenses, :experience_level, :preferences, now())
RETURNING user_id, name, email, role, licenses, experience_level, preferences,
          created_at, last_active;

-- name: get_user :one -> User
-- One user by id.
SELECT user_id, name, email, role, licenses, experience_level, preferences,
       created_at, last_active
FROM users
WHERE user_id = :user_id;

-- name: get_user_by_email :one -> User
-- One user by email, folded by the caller as it was when stored (served by users_email_key).
SELECT user_id, name, email, role, licenses, experience_level, preferences,
       created_at, last_active
FROM users
WHERE email = :email;

-- name: update_preferences :one -> User
-- Merge a JSON merge patch (RFC 7396) into a user's preferences.
UPDATE users
SET preferences = jsonb_merge_patch(preferences, :changes)
WHERE user_id = :user_id
RETURNING user_id, name, email, role, licenses, experience_level, preferences,
          created_at, last_active;

-- name: list_users :many -> User
-- Users in id (creation) order after a cursor, optionally of one role or holding one licence.
SELECT user_id, name, email, role, licenses, experience_level, preferences,
       created_at, last_active
FROM users
WHERE (:role::user_role IS NULL OR role = :role::user_role)
  AND (:license::text IS NULL OR licenses @> jsonb_build_array(:license::text))
  AND (:after::uuid IS NULL OR user_id > :after::uuid)
ORDER BY user_id
LIMIT :limit;

-- name: touch_last_active :execrows
-- Mark a user active now.
UPDATE users
SET last_active = now()
WHERE user_id = :user_id;
