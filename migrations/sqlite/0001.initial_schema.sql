-- The product schema: users, conversations, messages, agent memory, audit log, dashboards
-- and metrics, with their constraints and indexes.
-- depends:

-- Conventions: STRICT tables; UUIDs as canonical 36-character text; timestamps as UTC
-- ISO-8601 text with microseconds ('2026-11-21T09:30:00.123456Z', which sorts as time
-- does); JSON as text; enums as text with a CHECK. Column defaults are a fallback for rows
-- written outside stratus_sql, which always supplies these values itself.

CREATE TABLE users (
    user_id          TEXT NOT NULL PRIMARY KEY CHECK (length(user_id) = 36),
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email            TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    role             TEXT NOT NULL CHECK (role IN (
        'pilot', 'copilot', 'student_pilot', 'instructor', 'mechanic', 'dispatcher',
        'air_traffic_controller', 'admin'
    )),
    licenses         TEXT NOT NULL DEFAULT '[]' CHECK (json_type(licenses) = 'array'),
    experience_level TEXT CHECK (length(experience_level) BETWEEN 1 AND 50),
    preferences      TEXT NOT NULL DEFAULT '{}' CHECK (json_type(preferences) = 'object'),
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    last_active      TEXT
) STRICT;
-- Emails are unique whatever their case.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_role_idx ON users (role, user_id);

CREATE TABLE conversations (
    conversation_id TEXT NOT NULL PRIMARY KEY CHECK (length(conversation_id) = 36),
    user_id         TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    title           TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    status          TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'archived', 'deleted')),
    context         TEXT NOT NULL DEFAULT '{}' CHECK (json_type(context) = 'object'),
    summary         TEXT,
    message_count   INTEGER NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    total_tokens    INTEGER NOT NULL DEFAULT 0 CHECK (total_tokens >= 0),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
) STRICT;
-- A user's conversations, most recently updated first, without the deleted ones.
CREATE INDEX conversations_user_live_idx
    ON conversations (user_id, updated_at DESC, conversation_id DESC)
    WHERE status <> 'deleted';
-- Every conversation of a user (cascades, usage statistics by creation day).
CREATE INDEX conversations_user_created_idx ON conversations (user_id, created_at);

CREATE TABLE messages (
    message_id      TEXT NOT NULL PRIMARY KEY CHECK (length(message_id) = 36),
    conversation_id TEXT NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    agent_name      TEXT CHECK (length(agent_name) BETWEEN 1 AND 100),
    message_type    TEXT NOT NULL CHECK (message_type IN ('user_input', 'agent_response', 'system')),
    content         TEXT NOT NULL CHECK (length(content) >= 1),
    metadata        TEXT NOT NULL DEFAULT '{}' CHECK (json_type(metadata) = 'object'),
    tokens_used     INTEGER NOT NULL DEFAULT 0 CHECK (tokens_used >= 0),
    -- Seconds. SQLite stores NaN as NULL; 9e999 is infinity.
    response_time   REAL CHECK (response_time >= 0 AND response_time < 9e999),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
) STRICT;
-- Keyset pages of a conversation, newest first.
CREATE INDEX messages_conversation_idx
    ON messages (conversation_id, created_at DESC, message_id DESC);
CREATE INDEX messages_user_created_idx ON messages (user_id, created_at);

CREATE TABLE memory_entries (
    memory_id        TEXT NOT NULL PRIMARY KEY CHECK (length(memory_id) = 36),
    user_id          TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    memory_type      TEXT NOT NULL
        CHECK (memory_type IN ('short_term', 'medium_term', 'long_term', 'critical')),
    key              TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    value            TEXT NOT NULL CHECK (json_valid(value)),
    importance_score REAL NOT NULL CHECK (importance_score BETWEEN 0 AND 1),
    access_count     INTEGER NOT NULL DEFAULT 0 CHECK (access_count >= 0),
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    last_accessed_at TEXT,
    expires_at       TEXT
) STRICT;
-- Unique constraints are named unique indexes here, so that errors name them as Postgres does.
CREATE UNIQUE INDEX memory_entries_user_key ON memory_entries (user_id, key);
-- Purging expired entries reads only the entries that can expire.
CREATE INDEX memory_entries_expires_idx ON memory_entries (expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE audit_log (
    audit_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Who acted (the transaction's actor), and whose data the row is about.
    user_id     TEXT CHECK (length(user_id) = 36),
    subject_id  TEXT CHECK (length(subject_id) = 36),
    action      TEXT NOT NULL
        CHECK (length(action) BETWEEN 1 AND 20 AND action NOT GLOB '*[^A-Z_]*'),
    table_name  TEXT NOT NULL CHECK (length(table_name) BETWEEN 1 AND 63),
    record_id   TEXT CHECK (length(record_id) = 36),
    old_values  TEXT CHECK (old_values IS NULL OR json_valid(old_values)),
    new_values  TEXT CHECK (new_values IS NULL OR json_valid(new_values)),
    "timestamp" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    ip_address  TEXT CHECK (length(ip_address) BETWEEN 2 AND 45),
    user_agent  TEXT CHECK (length(user_agent) <= 1000)
) STRICT;
CREATE INDEX audit_log_record_idx ON audit_log (table_name, record_id, audit_id);
CREATE INDEX audit_log_user_idx ON audit_log (user_id, audit_id);
CREATE INDEX audit_log_subject_idx ON audit_log (subject_id, audit_id);
CREATE INDEX audit_log_timestamp_idx ON audit_log ("timestamp");

CREATE TABLE dashboards (
    dashboard_id TEXT NOT NULL PRIMARY KEY CHECK (length(dashboard_id) = 36),
    user_id      TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
) STRICT;
CREATE UNIQUE INDEX dashboards_user_name_key ON dashboards (user_id, name);

CREATE TABLE metrics (
    metric_id          TEXT NOT NULL PRIMARY KEY CHECK (length(metric_id) = 36),
    user_id            TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    -- A sample outlives its dashboard: it still counts in the user's series.
    dashboard_id       TEXT REFERENCES dashboards (dashboard_id) ON DELETE SET NULL,
    ia_efficiency      REAL NOT NULL CHECK (ia_efficiency BETWEEN 0 AND 1),
    model_accuracy     REAL NOT NULL CHECK (model_accuracy BETWEEN 0 AND 1),
    processing_time_ms REAL NOT NULL CHECK (processing_time_ms >= 0 AND processing_time_ms < 9e999),
    memory_usage_mb    REAL NOT NULL CHECK (memory_usage_mb >= 0 AND memory_usage_mb < 9e999),
    error_rate         REAL NOT NULL CHECK (error_rate BETWEEN 0 AND 1),
    "timestamp"        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    periodo            TEXT CHECK (length(periodo) BETWEEN 1 AND 16)
) STRICT;
CREATE INDEX metrics_user_time_idx ON metrics (user_id, "timestamp");
CREATE INDEX metrics_dashboard_time_idx ON metrics (dashboard_id, "timestamp")
    WHERE dashboard_id IS NOT NULL;
CREATE INDEX metrics_time_idx ON metrics ("timestamp");
-- A sample can only name a dashboard of its own user (SQLite cannot set one column of a
-- two-column foreign key to NULL, which Postgres does with a composite key).
CREATE TRIGGER metrics_dashboard_owner_insert
BEFORE INSERT ON metrics
WHEN NEW.dashboard_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM dashboards WHERE dashboard_id = NEW.dashboard_id AND user_id = NEW.user_id
)
BEGIN
    SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: the dashboard is not the user''s');
END;
CREATE TRIGGER metrics_dashboard_owner_update
BEFORE UPDATE OF dashboard_id, user_id ON metrics
WHEN NEW.dashboard_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM dashboards WHERE dashboard_id = NEW.dashboard_id AND user_id = NEW.user_id
)
BEGIN
    SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: the dashboard is not the user''s');
END;
