-- Back to one audit_log table, rows and ids kept.
DROP FUNCTION audit_log_drop_partitions(date);
ALTER TABLE audit_log RENAME TO audit_log_partitioned;
ALTER INDEX audit_log_record_idx RENAME TO audit_log_partitioned_record_idx;
ALTER INDEX audit_log_user_idx RENAME TO audit_log_partitioned_user_idx;
ALTER INDEX audit_log_timestamp_idx RENAME TO audit_log_partitioned_timestamp_idx;
ALTER INDEX audit_log_subject_idx RENAME TO audit_log_partitioned_subject_idx;
ALTER TABLE audit_log_partitioned RENAME CONSTRAINT audit_log_pkey TO audit_log_partitioned_pkey;
ALTER SEQUENCE audit_log_audit_id_seq RENAME TO audit_log_partitioned_audit_id_seq;
CREATE TABLE audit_log (
    audit_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
INSERT INTO audit_log (
    audit_id, user_id, subject_id, action, table_name, record_id, old_values, new_values,
    "timestamp", ip_address, user_agent
)
OVERRIDING SYSTEM VALUE
SELECT audit_id, user_id, subject_id, action, table_name, record_id, old_values, new_values,
       "timestamp", ip_address, user_agent
FROM audit_log_partitioned
ORDER BY audit_id;
DO $$
BEGIN
    PERFORM setval(
        pg_get_serial_sequence('audit_log', 'audit_id'),
        (SELECT coalesce(max(audit_id), 0) + 1 FROM audit_log),
        false
    );
END
$$;
-- Keep whatever was granted on the old table (the application login's privileges).
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT grantee, privilege_type
        FROM information_schema.role_table_grants
        WHERE table_schema = 'public'
          AND table_name = 'audit_log_partitioned'
          AND grantee <> (SELECT tableowner FROM pg_tables WHERE tablename = 'audit_log_partitioned')
    LOOP
        EXECUTE format(
            'GRANT %s ON audit_log TO %s',
            g.privilege_type,
            CASE WHEN g.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(g.grantee) END
        );
    END LOOP;
END
$$;
DROP TABLE audit_log_partitioned;
DROP FUNCTION audit_log_add_partitions(integer, timestamptz);
CREATE INDEX audit_log_record_idx ON audit_log (table_name, record_id, audit_id);
CREATE INDEX audit_log_user_idx ON audit_log (user_id, audit_id);
CREATE INDEX audit_log_subject_idx ON audit_log (subject_id, audit_id);
CREATE INDEX audit_log_timestamp_idx ON audit_log ("timestamp");
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger
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
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
GRANT INSERT ON audit_log TO stratus_scoped;
