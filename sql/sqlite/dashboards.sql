-- name: create_dashboard :one -> Dashboard
-- Create a dashboard; its name is unique per user.
INSERT INTO dashboards (dashboard_id, user_id, name, created_at, updated_at)
VALUES (:dashboard_id, :user_id, :name, now_utc(), now_utc())
RETURNING dashboard_id, user_id, name, created_at, updated_at;

-- name: get_dashboard :one -> Dashboard
-- One dashboard by id.
SELECT dashboard_id, user_id, name, created_at, updated_at
FROM dashboards
WHERE dashboard_id = :dashboard_id;

-- name: get_dashboard_by_name :one -> Dashboard
-- A user's dashboard by name.
SELECT dashboard_id, user_id, name, created_at, updated_at
FROM dashboards
WHERE user_id = :user_id
  AND name = :name;

-- name: list_dashboards :many -> Dashboard
-- A user's dashboards by name (binary order, as Postgres's COLLATE "C").
SELECT dashboard_id, user_id, name, created_at, updated_at
FROM dashboards
WHERE user_id = :user_id
ORDER BY name, dashboard_id;

-- name: list_all_dashboards :many -> Dashboard
-- Every user's dashboards, by name, at most :limit (under row-level security, those the
-- actor may read).
SELECT dashboard_id, user_id, name, created_at, updated_at
FROM dashboards
ORDER BY name, dashboard_id
LIMIT :limit;

-- name: rename_dashboard :one -> Dashboard
-- Rename a dashboard.
UPDATE dashboards
SET name = :name, updated_at = now_utc()
WHERE dashboard_id = :dashboard_id
RETURNING dashboard_id, user_id, name, created_at, updated_at;

-- name: delete_dashboard :execrows
-- Delete a dashboard; its samples stay, detached (dashboard_id set to NULL).
DELETE FROM dashboards
WHERE dashboard_id = :dashboard_id;
