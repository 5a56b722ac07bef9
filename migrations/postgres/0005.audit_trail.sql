-- The audit trail: triggers record every insert, update and delete of users,
-- conversations, memory entries and dashboards, with who did it (the transaction's actor);
-- audit_log becomes append-only, and audit_seals holds its hash chain.
-- depends: 0004.metrics_covering_indexes

-- Every audited table has the owner's user_id, recorded as the row's subject. Arguments:
-- the primary key column; columns whose changes alone are bookkeeping, not
-- worth a row (counters, last-seen times); columns derived from others, left out.
-- INSERT and DELETE keep the whole row, UPDATE only the columns that changed, and an
-- UPDATE that changes nothing else writes nothing.
CREATE FUNCTION audit_row_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bookkeeping text[] := string_to_array(TG_ARGV[1], ',');
    derived text[] := string_to_array(TG_ARGV[2], ',');
    record_id uuid;
    subject_id uuid;
    before jsonb;
    after jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        record_id := (to_jsonb(OLD) ->> TG_ARGV[0])::uuid;
        subject_id := OLD.user_id;
    ELSE
        record_id := (to_jsonb(NEW) ->> TG_ARGV[0])::uuid;
        subject_id := NEW.user_id;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        before := to_jsonb(OLD) - derived;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        after := to_jsonb(NEW) - derived;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        SELECT jsonb_object_agg(o.key, o.value), jsonb_object_agg(o.key, n.value)
        INTO before, after
        FROM jsonb_each(before) AS o
        JOIN jsonb_each(after) AS n ON n.key = o.key
        WHERE o.value IS DISTINCT FROM n.value
          AND NOT o.key = ANY (bookkeeping);
        IF before IS NULL THEN
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO audit_log (
        user_id, subject_id, action, table_name, record_id, old_values, new_values,
        ip_address, user_agent
    )
    VALUES (
        nullif(current_setting('stratus.actor_user_id', true), '')::uuid,
        subject_id,
        TG_OP,
        TG_TABLE_NAME,
        record_id,
        before,
        after,
        nullif(current_setting('stratus.actor_ip', true), '')::inet,
        nullif(current_setting('stratus.actor_user_agent', true), '')
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER users_audit
    AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION audit_row_change('user_id', 'last_active', '');
CREATE TRIGGER conversations_audit
    AFTER INSERT OR UPDATE OR DELETE ON conversations
    FOR EACH ROW EXECUTE FUNCTION audit_row_change(
        'conversation_id', 'message_count,total_tokens,updated_at', ''
    );
CREATE TRIGGER memory_entries_audit
    AFTER INSERT OR UPDATE OR DELETE ON memory_entries
    FOR EACH ROW EXECUTE FUNCTION audit_row_change(
        'memory_id', 'access_count,last_accessed_at,updated_at', 'search_text,search_vector'
    );
CREATE TRIGGER dashboards_audit
    AFTER INSERT OR UPDATE OR DELETE ON dashboards
    FOR EACH ROW EXECUTE FUNCTION audit_row_change('dashboard_id', 'updated_at', '');

-- The hash chain over audit_log: each seal covers a run of rows by id, keeps each row's
-- SHA-256, and chains its digest to the previous seal's.
CREATE TABLE audit_seals (
    seal_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_audit_id  bigint NOT NULL,
    last_audit_id   bigint NOT NULL CHECK (last_audit_id >= first_audit_id),
    row_digests     jsonb NOT NULL CHECK (jsonb_typeof(row_digests) = 'array'),
    previous_digest text,
    digest          text NOT NULL CHECK (length(digest) = 64),
    sealed_at       timestamptz NOT NULL DEFAULT now()
);

-- Nobody changes or removes audit rows or seals; only an erasure (which sets
-- stratus.audit_redaction in its own transaction) may rewrite them, and it reseals.
CREATE FUNCTION audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('stratus.audit_redaction', true) = 'on' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_seals_append_only
    BEFORE UPDATE OR DELETE ON audit_seals
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_seals_no_truncate
    BEFORE TRUNCATE ON audit_seals
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log, audit_seals FROM PUBLIC;
