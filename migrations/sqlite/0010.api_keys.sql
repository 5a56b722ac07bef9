-- Per-user API keys, stored only as the SHA-256 of the key (the key itself is shown once,
-- when it is made), with audit triggers like those of dashboards in 0005, so making and
-- revoking keys is in the trail (the hash left out of it).
-- depends: 0009.metrics_rollups

CREATE TABLE api_keys (
    key_id     TEXT NOT NULL PRIMARY KEY CHECK (length(key_id) = 36),
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    key_hash   BLOB NOT NULL CHECK (length(key_hash) = 32),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    revoked_at TEXT
) STRICT;
-- A user's keys, oldest first.
CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at);

CREATE TRIGGER api_keys_audit_insert
AFTER INSERT ON api_keys
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), NEW.user_id, 'INSERT', 'api_keys', NEW.key_id, NULL,
        json_object(
            'key_id', NEW.key_id,
            'user_id', NEW.user_id,
            'created_at', NEW.created_at,
            'revoked_at', NEW.revoked_at
        ),
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;

CREATE TRIGGER api_keys_audit_delete
AFTER DELETE ON api_keys
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), OLD.user_id, 'DELETE', 'api_keys', OLD.key_id, json_object(
            'key_id', OLD.key_id,
            'user_id', OLD.user_id,
            'created_at', OLD.created_at,
            'revoked_at', OLD.revoked_at
        ),
        NULL,
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;

CREATE TRIGGER api_keys_audit_update
AFTER UPDATE ON api_keys
WHEN OLD.key_id IS NOT NEW.key_id
    OR OLD.user_id IS NOT NEW.user_id
    OR OLD.created_at IS NOT NEW.created_at
    OR OLD.revoked_at IS NOT NEW.revoked_at
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), NEW.user_id, 'UPDATE', 'api_keys', NEW.key_id,
        (
            SELECT json_group_object(key, value)
            FROM (SELECT 'key_id' AS key, OLD.key_id AS value WHERE OLD.key_id IS NOT NEW.key_id
            UNION ALL SELECT 'user_id' AS key, OLD.user_id AS value WHERE OLD.user_id IS NOT NEW.user_id
            UNION ALL SELECT 'created_at' AS key, OLD.created_at AS value WHERE OLD.created_at IS NOT NEW.created_at
            UNION ALL SELECT 'revoked_at' AS key, OLD.revoked_at AS value WHERE OLD.revoked_at IS NOT NEW.revoked_at)
        ),
        (
            SELECT json_group_object(key, value)
            FROM (SELECT 'key_id' AS key, NEW.key_id AS value WHERE OLD.key_id IS NOT NEW.key_id
            UNION ALL SELECT 'user_id' AS key, NEW.user_id AS value WHERE OLD.user_id IS NOT NEW.user_id
            UNION ALL SELECT 'created_at' AS key, NEW.created_at AS value WHERE OLD.created_at IS NOT NEW.created_at
            UNION ALL SELECT 'revoked_at' AS key, NEW.revoked_at AS value WHERE OLD.revoked_at IS NOT NEW.revoked_at)
        ),
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;
