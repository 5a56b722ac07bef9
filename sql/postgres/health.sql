-- name: server_version :scalar
-- The server's version.
SELECT current_setting('server_version');
