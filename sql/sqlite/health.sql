-- name: server_version :scalar
-- The SQLite library's version.
SELECT sqlite_version();
