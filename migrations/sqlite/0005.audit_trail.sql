-- The audit trail: triggers record every insert, update and delete of users,
-- conversations, memory entries and dashboards, with who did it (the transaction's actor,
-- read with stratus_get(), which stratus_sql registers on its connections); audit_log
-- becomes append-only, and audit_seals holds its hash chain.
-- depends: 0004.metrics_covering_indexes

-- INSERT and DELETE keep the whole row, UPDATE only the columns that changed. Changes to
-- bookkeeping columns alone (counters, last-seen times, updated_at) write nothing.
CREATE TRIGGER users_audit_insert
AFTER INSERT ON users
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), NEW.user_id, 'INSERT', 'users', NEW.user_id, NULL,
        json_object(
            'user_id', NEW.user_id,
            'name', NEW.name,
            'email', NEW.email,
            'role', NEW.role,
            'licenses', json(NEW.licenses),
            'experience_level', NEW.experience_level,
            'preferences', json(NEW.preferences),
            'created_at', NEW.created_at,
            'last_active', NEW.last_active
        ),
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;

CREATE TRIGGER users_audit_delete
AFTER DELETE ON users
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), OLD.user_id, 'DELETE', 'users', OLD.user_id, json_object(
            'user_id', OLD.user_id,
            'name', OLD.name,
            'email', OLD.email,
            'role', OLD.role,
            'licenses', json(OLD.licenses),
            'experience_level', OLD.experience_level,
            'preferences', json(OLD.preferences),
            'created_at', OLD.created_at,
            'last_active', OLD.last_active
        ),
        NULL,
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;

CREATE TRIGGER users_audit_update
AFTER UPDATE ON users
WHEN OLD.user_id IS NOT NEW.user_id
    OR OLD.name IS NOT NEW.name
    OR OLD.email IS NOT NEW.email
    OR OLD.role IS NOT NEW.role
    OR OLD.licenses IS NOT NEW.licenses
    OR OLD.experience_level IS NOT NEW.experience_level
    OR OLD.preferences IS NOT NEW.preferences
    OR OLD.created_at IS NOT NEW.created_at
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), NEW.user_id, 'UPDATE', 'users', NEW.user_id,
        (
            SELECT json_group_object(key, CASE WHEN is_json THEN json(value) ELSE value END)
            FROM (SELECT 'user_id' AS key, OLD.user_id AS value, 0 AS is_json WHERE OLD.user_id IS NOT NEW.user_id
            UNION ALL SELECT 'name' AS key, OLD.name AS value, 0 AS is_json WHERE OLD.name IS NOT NEW.name
            UNION ALL SELECT 'email' AS key, OLD.email AS value, 0 AS is_json WHERE OLD.email IS NOT NEW.email
            UNION ALL SELECT 'role' AS key, OLD.role AS value, 0 AS is_json WHERE OLD.role IS NOT NEW.role
            UNION ALL SELECT 'licenses' AS key, OLD.licenses AS value, 1 AS is_json WHERE OLD.licenses IS NOT NEW.licenses
            UNION ALL SELECT 'experience_level' AS key, OLD.experience_level AS value, 0 AS is_json WHERE OLD.experience_level IS NOT NEW.experience_level
            UNION ALL SELECT 'preferences' AS key, OLD.preferences AS value, 1 AS is_json WHERE OLD.preferences IS NOT NEW.preferences
            UNION ALL SELECT 'created_at' AS key, OLD.created_at AS value, 0 AS is_json WHERE OLD.created_at IS NOT NEW.created_at)
        ),
        (
            SELECT json_group_object(key, CASE WHEN is_json THEN json(value) ELSE value END)
            FROM (SELECT 'user_id' AS key, NEW.user_id AS value, 0 AS is_json WHERE OLD.user_id IS NOT NEW.user_id
            UNION ALL SELECT 'name' AS key, NEW.name AS value, 0 AS is_json WHERE OLD.name IS NOT NEW.name
            UNION ALL SELECT 'email' AS key, NEW.email AS value, 0 AS is_json WHERE OLD.email IS NOT NEW.email
            UNION ALL SELECT 'role' AS key, NEW.role AS value, 0 AS is_json WHERE OLD.role IS NOT NEW.role
            UNION ALL SELECT 'licenses' AS key, NEW.licenses AS value, 1 AS is_json WHERE OLD.licenses IS NOT NEW.licenses
            UNION ALL SELECT 'experience_level' AS key, NEW.experience_level AS value, 0 AS is_json WHERE OLD.experience_level IS NOT NEW.experience_level
            UNION ALL SELECT 'preferences' AS key, NEW.preferences AS value, 1 AS is_json WHERE OLD.preferences IS NOT NEW.preferences
            UNION ALL SELECT 'created_at' AS key, NEW.created_at AS value, 0 AS is_json WHERE OLD.created_at IS NOT NEW.created_at)
        ),
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;

CREATE TRIGGER conversations_audit_insert
AFTER INSERT ON conversations
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), NEW.user_id, 'INSERT', 'conversations', NEW.conversation_id, NULL,
        json_object(
            'conversation_id', NEW.conversation_id,
            'user_id', NEW.user_id,
            'title', NEW.title,
            'status', NEW.status,
            'context', json(NEW.context),
            'summary', NEW.summary,
            'message_count', NEW.message_count,
            'total_tokens', NEW.total_tokens,
            'created_at', NEW.created_at,
            'updated_at', NEW.updated_at
        ),
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;

CREATE TRIGGER conversations_audit_delete
AFTER DELETE ON conversations
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), OLD.user_id, 'DELETE', 'conversations', OLD.conversation_id, json_object(
            'conversation_id', OLD.conversation_id,
            'user_id', OLD.user_id,
            'title', OLD.title,
            'status', OLD.status,
            'context', json(OLD.context),
            'summary', OLD.summary,
            'message_count', OLD.message_count,
            'total_tokens', OLD.total_tokens,
            'created_at', OLD.created_at,
            'updated_at', OLD.updated_at
        ),
        NULL,
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;

CREATE TRIGGER conversations_audit_update
AFTER UPDATE ON conversations
WHEN OLD.conversation_id IS NOT NEW.conversation_id
    OR OLD.user_id IS NOT NEW.user_id
    OR OLD.title IS NOT NEW.title
    OR OLD.status IS NOT NEW.status
    OR OLD.context IS NOT NEW.context
    OR OLD.summary IS NOT NEW.summary
    OR OLD.created_at IS NOT NEW.created_at
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), NEW.user_id, 'UPDATE', 'conversations', NEW.conversation_id,
        (
            SELECT json_group_object(key, CASE WHEN is_json THEN json(value) ELSE value END)
            FROM (SELECT 'conversation_id' AS key, OLD.conversation_id AS value, 0 AS is_json WHERE OLD.conversation_id IS NOT NEW.conversation_id
            UNION ALL SELECT 'user_id' AS key, OLD.user_id AS value, 0 AS is_json WHERE OLD.user_id IS NOT NEW.user_id
            UNION ALL SELECT 'title' AS key, OLD.title AS value, 0 AS is_json WHERE OLD.title IS NOT NEW.title
            UNION ALL SELECT 'status' AS key, OLD.status AS value, 0 AS is_json WHERE OLD.status IS NOT NEW.status
            UNION ALL SELECT 'context' AS key, OLD.context AS value, 1 AS is_json WHERE OLD.context IS NOT NEW.context
            UNION ALL SELECT 'summary' AS key, OLD.summary AS value, 0 AS is_json WHERE OLD.summary IS NOT NEW.summary
            UNION ALL SELECT 'created_at' AS key, OLD.created_at AS value, 0 AS is_json WHERE OLD.created_at IS NOT NEW.created_at)
        ),
        (
            SELECT json_group_object(key, CASE WHEN is_json THEN json(value) ELSE value END)
            FROM (SELECT 'conversation_id' AS key, NEW.conversation_id AS value, 0 AS is_json WHERE OLD.conversation_id IS NOT NEW.conversation_id
            UNION ALL SELECT 'user_id' AS key, NEW.user_id AS value, 0 AS is_json WHERE OLD.user_id IS NOT NEW.user_id
            UNION ALL SELECT 'title' AS key, NEW.title AS value, 0 AS is_json WHERE OLD.title IS NOT NEW.title
            UNION ALL SELECT 'status' AS key, NEW.status AS value, 0 AS is_json WHERE OLD.status IS NOT NEW.status
            UNION ALL SELECT 'context' AS key, NEW.context AS value, 1 AS is_json WHERE OLD.context IS NOT NEW.context
            UNION ALL SELECT 'summary' AS key, NEW.summary AS value, 0 AS is_json WHERE OLD.summary IS NOT NEW.summary
            UNION ALL SELECT 'created_at' AS key, NEW.created_at AS value, 0 AS is_json WHERE OLD.created_at IS NOT NEW.created_at)
        ),
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;

CREATE TRIGGER memory_entries_audit_insert
AFTER INSERT ON memory_entries
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), NEW.user_id, 'INSERT', 'memory_entries', NEW.memory_id, NULL,
        json_object(
            'memory_id', NEW.memory_id,
            'user_id', NEW.user_id,
            'memory_type', NEW.memory_type,
            'key', NEW.key,
            'value', json(NEW.value),
            'importance_score', NEW.importance_score,
            'access_count', NEW.access_count,
            'created_at', NEW.created_at,
            'updated_at', NEW.updated_at,
            'last_accessed_at', NEW.last_accessed_at,
            'expires_at', NEW.expires_at
        ),
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;

CREATE TRIGGER memory_entries_audit_delete
AFTER DELETE ON memory_entries
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), OLD.user_id, 'DELETE', 'memory_entries', OLD.memory_id, json_object(
            'memory_id', OLD.memory_id,
            'user_id', OLD.user_id,
            'memory_type', OLD.memory_type,
            'key', OLD.key,
            'value', json(OLD.value),
            'importance_score', OLD.importance_score,
            'access_count', OLD.access_count,
            'created_at', OLD.created_at,
            'updated_at', OLD.updated_at,
            'last_accessed_at', OLD.last_accessed_at,
            'expires_at', OLD.expires_at
        ),
        NULL,
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;

CREATE TRIGGER memory_entries_audit_update
AFTER UPDATE ON memory_entries
WHEN OLD.memory_id IS NOT NEW.memory_id
    OR OLD.user_id IS NOT NEW.user_id
    OR OLD.memory_type IS NOT NEW.memory_type
    OR OLD.key IS NOT NEW.key
    OR OLD.value IS NOT NEW.value
    OR OLD.importance_score IS NOT NEW.importance_score
    OR OLD.created_at IS NOT NEW.created_at
    OR OLD.expires_at IS NOT NEW.expires_at
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), NEW.user_id, 'UPDATE', 'memory_entries', NEW.memory_id,
        (
            SELECT json_group_object(key, CASE WHEN is_json THEN json(value) ELSE value END)
            FROM (SELECT 'memory_id' AS key, OLD.memory_id AS value, 0 AS is_json WHERE OLD.memory_id IS NOT NEW.memory_id
            UNION ALL SELECT 'user_id' AS key, OLD.user_id AS value, 0 AS is_json WHERE OLD.user_id IS NOT NEW.user_id
            UNION ALL SELECT 'memory_type' AS key, OLD.memory_type AS value, 0 AS is_json WHERE OLD.memory_type IS NOT NEW.memory_type
            UNION ALL SELECT 'key' AS key, OLD.key AS value, 0 AS is_json WHERE OLD.key IS NOT NEW.key
            UNION ALL SELECT 'value' AS key, OLD.value AS value, 1 AS is_json WHERE OLD.value IS NOT NEW.value
            UNION ALL SELECT 'importance_score' AS key, OLD.importance_score AS value, 0 AS is_json WHERE OLD.importance_score IS NOT NEW.importance_score
            UNION ALL SELECT 'created_at' AS key, OLD.created_at AS value, 0 AS is_json WHERE OLD.created_at IS NOT NEW.created_at
            UNION ALL SELECT 'expires_at' AS key, OLD.expires_at AS value, 0 AS is_json WHERE OLD.expires_at IS NOT NEW.expires_at)
        ),
        (
            SELECT json_group_object(key, CASE WHEN is_json THEN json(value) ELSE value END)
            FROM (SELECT 'memory_id' AS key, NEW.memory_id AS value, 0 AS is_json WHERE OLD.memory_id IS NOT NEW.memory_id
            UNION ALL SELECT 'user_id' AS key, NEW.user_id AS value, 0 AS is_json WHERE OLD.user_id IS NOT NEW.user_id
            UNION ALL SELECT 'memory_type' AS key, NEW.memory_type AS value, 0 AS is_json WHERE OLD.memory_type IS NOT NEW.memory_type
            UNION ALL SELECT 'key' AS key, NEW.key AS value, 0 AS is_json WHERE OLD.key IS NOT NEW.key
            UNION ALL SELECT 'value' AS key, NEW.value AS value, 1 AS is_json WHERE OLD.value IS NOT NEW.value
            UNION ALL SELECT 'importance_score' AS key, NEW.importance_score AS value, 0 AS is_json WHERE OLD.importance_score IS NOT NEW.importance_score
            UNION ALL SELECT 'created_at' AS key, NEW.created_at AS value, 0 AS is_json WHERE OLD.created_at IS NOT NEW.created_at
            UNION ALL SELECT 'expires_at' AS key, NEW.expires_at AS value, 0 AS is_json WHERE OLD.expires_at IS NOT NEW.expires_at)
        ),
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;

CREATE TRIGGER dashboards_audit_insert
AFTER INSERT ON dashboards
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), NEW.user_id, 'INSERT', 'dashboards', NEW.dashboard_id, NULL,
        json_object(
            'dashboard_id', NEW.dashboard_id,
            'user_id', NEW.user_id,
            'name', NEW.name,
            'created_at', NEW.created_at,
            'updated_at', NEW.updated_at
        ),
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;

CREATE TRIGGER dashboards_audit_delete
AFTER DELETE ON dashboards
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), OLD.user_id, 'DELETE', 'dashboards', OLD.dashboard_id, json_object(
            'dashboard_id', OLD.dashboard_id,
            'user_id', OLD.user_id,
            'name', OLD.name,
            'created_at', OLD.created_at,
            'updated_at', OLD.updated_at
        ),
        NULL,
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;

CREATE TRIGGER dashboards_audit_update
AFTER UPDATE ON dashboards
WHEN OLD.dashboard_id IS NOT NEW.dashboard_id
    OR OLD.user_id IS NOT NEW.user_id
    OR OLD.name IS NOT NEW.name
    OR OLD.created_at IS NOT NEW.created_at
BEGIN
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        "timestamp", ip_address, user_agent
    )
    VALUES (
        stratus_get('actor_user_id'), NEW.user_id, 'UPDATE', 'dashboards', NEW.dashboard_id,
        (
            SELECT json_group_object(key, CASE WHEN is_json THEN json(value) ELSE value END)
            FROM (SELECT 'dashboard_id' AS key, OLD.dashboard_id AS value, 0 AS is_json WHERE OLD.dashboard_id IS NOT NEW.dashboard_id
            UNION ALL SELECT 'user_id' AS key, OLD.user_id AS value, 0 AS is_json WHERE OLD.user_id IS NOT NEW.user_id
            UNION ALL SELECT 'name' AS key, OLD.name AS value, 0 AS is_json WHERE OLD.name IS NOT NEW.name
            UNION ALL SELECT 'created_at' AS key, OLD.created_at AS value, 0 AS is_json WHERE OLD.created_at IS NOT NEW.created_at)
        ),
        (
            SELECT json_group_object(key, CASE WHEN is_json THEN json(value) ELSE value END)
            FROM (SELECT 'dashboard_id' AS key, NEW.dashboard_id AS value, 0 AS is_json WHERE OLD.dashboard_id IS NOT NEW.dashboard_id
            UNION ALL SELECT 'user_id' AS key, NEW.user_id AS value, 0 AS is_json WHERE OLD.user_id IS NOT NEW.user_id
            UNION ALL SELECT 'name' AS key, NEW.name AS value, 0 AS is_json WHERE OLD.name IS NOT NEW.name
            UNION ALL SELECT 'created_at' AS key, NEW.created_at AS value, 0 AS is_json WHERE OLD.created_at IS NOT NEW.created_at)
        ),
        now_utc(), stratus_get('actor_ip'), stratus_get('actor_user_agent')
    );
END;

-- The hash chain over audit_log: each seal covers a run of rows by id, keeps each row's
-- SHA-256, and chains its digest to the previous seal's.
CREATE TABLE audit_seals (
    seal_id         INTEGER PRIMARY KEY AUTOINCREMENT,
    first_audit_id  INTEGER NOT NULL,
    last_audit_id   INTEGER NOT NULL CHECK (last_audit_id >= first_audit_id),
    row_digests     TEXT NOT NULL CHECK (json_type(row_digests) = 'array'),
    previous_digest TEXT,
    digest          TEXT NOT NULL CHECK (length(digest) = 64),
    sealed_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
) STRICT;

-- Nobody changes or removes audit rows or seals; only an erasure (which sets
-- audit_redaction in its own transaction) may rewrite them, and it reseals.
CREATE TRIGGER audit_log_no_update
BEFORE UPDATE ON audit_log
WHEN stratus_get('audit_redaction') IS NOT 'on'
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete
BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_seals_no_update
BEFORE UPDATE ON audit_seals
WHEN stratus_get('audit_redaction') IS NOT 'on'
BEGIN
    SELECT RAISE(ABORT, 'audit_seals is append-only');
END;

CREATE TRIGGER audit_seals_no_delete
BEFORE DELETE ON audit_seals
BEGIN
    SELECT RAISE(ABORT, 'audit_seals is append-only');
END;
