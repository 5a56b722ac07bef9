-- The product schema: users, conversations, messages, agent memory, audit log, dashboards
-- and metrics, with their enums, constraints and indexes.
-- depends:

-- Per-database extensions, created only if absent. The rollback leaves them in place: they
-- may have been there before, and dropping them needs their owner.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

CREATE TYPE user_role AS ENUM (
    'pilot', 'copilot', 'student_pilot', 'instructor', 'mechanic', 'dispatcher',
    'air_traffic_controller', 'admin'
);
CREATE TYPE conversation_status AS ENUM ('active', 'archived', 'deleted');
CREATE TYPE message_type AS ENUM ('user_input', 'agent_response', 'system');
CREATE TYPE memory_type AS ENUM ('short_term', 'medium_term', 'long_term', 'critical');

-- RFC 7396 JSON merge patch: objects merge key by key, recursively; a null value removes
-- the key; anything else replaces. The same semantics as SQLite's json_patch().
CREATE FUNCTION jsonb_merge_patch(target jsonb, patch jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF jsonb_typeof(patch) IS DISTINCT FROM 'object' THEN
        RETURN patch;
    END IF;
    IF jsonb_typeof(target) IS DISTINCT FROM 'object' THEN
        target := '{}';
    END IF;
    RETURN (
        SELECT coalesce(jsonb_object_agg(merged.key, merged.value), '{}')
        FROM (
            SELECT t.key, t.value
            FROM jsonb_each(target) AS t
            WHERE NOT patch ? t.key
            UNION ALL
            SELECT p.key, jsonb_merge_patch(target -> p.key, p.value)
            FROM jsonb_each(patch) AS p
            WHERE jsonb_typeof(p.value) <> 'null'
        ) AS merged
    );
END
$$;

CREATE TABLE users (
    user_id          uuid PRIMARY KEY,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email            text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    role             user_role NOT NULL,
    licenses         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(licenses) = 'array'),
    experience_level text CHECK (length(experience_level) BETWEEN 1 AND 50),
    preferences      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(preferences) = 'object'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_active      timestamptz
);
-- Emails are unique whatever their case.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_role_idx ON users (role, user_id);
-- Serves `licenses @> '["IFR"]'`.
CREATE INDEX users_licenses_idx ON users USING gin (licenses jsonb_path_ops);

CREATE TABLE conversations (
    conversation_id uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 500),
    status          conversation_status NOT NULL DEFAULT 'active',
    context         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(context) = 'object'),
    summary         text,
    message_count   integer NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    total_tokens    bigint NOT NULL DEFAULT 0 CHECK (total_tokens >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- A user's conversations, most recently updated first, without the deleted ones.
CREATE INDEX conversations_user_live_idx
    ON conversations (user_id, updated_at DESC, conversation_id DESC)
    WHERE status <> 'deleted';
-- Every conversation of a user (cascades, usage statistics by creation day).
CREATE INDEX conversations_user_created_idx ON conversations (user_id, created_at);

CREATE TABLE messages (
    message_id      uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    agent_name      text CHECK (length(agent_name) BETWEEN 1 AND 100),
    message_type    message_type NOT NULL,
    content         text NOT NULL CHECK (length(content) >= 1),
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    tokens_used     integer NOT NULL DEFAULT 0 CHECK (tokens_used >= 0),
    -- Seconds; NaN and infinity sort above every number, so `< 'Infinity'` rejects both.
    response_time   double precision CHECK (response_time >= 0 AND response_time < 'Infinity'),
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- Keyset pages of a conversation, newest first.
CREATE INDEX messages_conversation_idx
    ON messages (conversation_id, created_at DESC, message_id DESC);
CREATE INDEX messages_user_created_idx ON messages (user_id, created_at);

CREATE TABLE memory_entries (
    memory_id        uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    memory_type      memory_type NOT NULL,
    key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    value            jsonb NOT NULL,
    importance_score double precision NOT NULL CHECK (importance_score BETWEEN 0 AND 1),
    access_count     integer NOT NULL DEFAULT 0 CHECK (access_count >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_accessed_at timestamptz,
    expires_at       timestamptz,
    CONSTRAINT memory_entries_user_key UNIQUE (user_id, key)
);
-- Purging expired entries reads only the entries that can expire.
CREATE INDEX memory_entries_expires_idx ON memory_entries (expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE audit_log (
    audit_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Who acted (the transaction's actor), and whose data the row is about.
    user_id     uuid,
    subject_id  uuid,
    action      text NOT NULL CHECK (action ~ '^[A-Z_]{1,20}$'),
    table_name  text NOT NULL CHECK (length(table_name) BETWEEN 1 AND 63),
    record_id   uuid,
    old_values  jsonb,
    new_values  jsonb,
    "timestamp" timestamptz NOT NULL DEFAULT now(),
    ip_address  inet,
    user_agent  text CHECK (length(user_agent) <= 1000)
);
CREATE INDEX audit_log_record_idx ON audit_log (table_name, record_id, audit_id);
CREATE INDEX audit_log_user_idx ON audit_log (user_id, audit_id);
CREATE INDEX audit_log_subject_idx ON audit_log (subject_id, audit_id);
CREATE INDEX audit_log_timestamp_idx ON audit_log ("timestamp");

CREATE TABLE dashboards (
    dashboard_id uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT dashboards_user_name_key UNIQUE (user_id, name),
    -- Referenced by metrics, so that a sample's dashboard is always its own user's.
    CONSTRAINT dashboards_id_user_key UNIQUE (dashboard_id, user_id)
);

CREATE TABLE metrics (
    metric_id          uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    -- A sample outlives its dashboard (it still counts in the user's series), and can only
    -- name a dashboard of its own user.
    dashboard_id       uuid,
    ia_efficiency      double precision NOT NULL CHECK (ia_efficiency BETWEEN 0 AND 1),
    model_accuracy     double precision NOT NULL CHECK (model_accuracy BETWEEN 0 AND 1),
    processing_time_ms double precision NOT NULL
        CHECK (processing_time_ms >= 0 AND processing_time_ms < 'Infinity'),
    memory_usage_mb    double precision NOT NULL
        CHECK (memory_usage_mb >= 0 AND memory_usage_mb < 'Infinity'),
    error_rate         double precision NOT NULL CHECK (error_rate BETWEEN 0 AND 1),
    "timestamp"        timestamptz NOT NULL DEFAULT now(),
    periodo            text CHECK (length(periodo) BETWEEN 1 AND 16),
    CONSTRAINT metrics_dashboard_fkey FOREIGN KEY (dashboard_id, user_id)
        REFERENCES dashboards (dashboard_id, user_id) ON DELETE SET NULL (dashboard_id)
);
CREATE INDEX metrics_user_time_idx ON metrics (user_id, "timestamp");
CREATE INDEX metrics_dashboard_time_idx ON metrics (dashboard_id, "timestamp")
    WHERE dashboard_id IS NOT NULL;
CREATE INDEX metrics_time_idx ON metrics ("timestamp");
