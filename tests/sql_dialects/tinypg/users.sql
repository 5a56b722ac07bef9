-- A dialect of the tests, based on postgres: only get_user differs.

-- name: get_user :one -> User
-- One user by id (at most one row, said twice).
SELECT user_id, name, email, role, licenses, experience_level, preferences,
       created_at, last_active
FROM users
WHERE user_id = :user_id
LIMIT 1;
