-- audit_log becomes range-partitioned by month, so that old months can be dropped whole
-- (stratus-sql audit prune). audit_log_add_partitions() creates the months to come; it runs
-- here, in `stratus-sql migrate` and in `stratus-sql maintain`.
-- depends: 0006.row_level_security

ALTER TABLE audit_log RENAME TO audit_log_unpartitioned;
ALTER TABLE audit_log_unpartitioned RENAME CONSTRAINT audit_log_pkey TO audit_log_unpartitioned_pkey;
-- So that the new table's identity sequence takes the usual name, audit_log_audit_id_seq.
ALTER SEQUENCE audit_log_audit_id_seq RENAME TO audit_log_unpartitioned_audit_id_seq;
DROP INDEX audit_log_record_idx;
DROP INDEX audit_log_user_idx;
DROP INDEX audit_log_timestamp_idx;
DROP INDEX audit_log_subject_idx;

CREATE TABLE audit_log (
    audit_id    bigint GENERATED ALWAYS AS IDENTITY,
    user_id     uuid,
    subject_id  uuid,
    action      text NOT NULL CHECK (action ~ '^[A-Z_]{1,20}$'),
    table_name  text NOT NULL CHECK (length(table_name) BETWEEN 1 AND 63),
    record_id   uuid,
    old_values  jsonb,
    new_values  jsonb,
    "timestamp" timestamptz NOT NULL DEFAULT now(),
    ip_address  inet,
    user_agent  text CHECK (length(user_agent) <= 1000),
    PRIMARY KEY (audit_id, "timestamp")
) PARTITION BY RANGE ("timestamp");
CREATE INDEX audit_log_record_idx ON audit_log (table_name, record_id, audit_id);
CREATE INDEX audit_log_user_idx ON audit_log (user_id, audit_id);
CREATE INDEX audit_log_subject_idx ON audit_log (subject_id, audit_id);
CREATE INDEX audit_log_timestamp_idx ON audit_log ("timestamp");

-- Creates the monthly partitions (audit_log_yYYYYmMM, UTC months) from the month of `since`
-- (default: this month) to `months_ahead` months from now; returns how many were new.
CREATE FUNCTION audit_log_add_partitions(months_ahead integer DEFAULT 3, since timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    this_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    month date := least(coalesce(date_trunc('month', since AT TIME ZONE 'UTC')::date, this_month), this_month);
    last_month date := (this_month + make_interval(months => months_ahead))::date;
    part text;
    made integer := 0;
BEGIN
    WHILE month <= last_month LOOP
        part := format('audit_log_y%sm%s', to_char(month, 'YYYY'), to_char(month, 'MM'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)',
                part,
                month::timestamp AT TIME ZONE 'UTC',
                (month + interval '1 month')::timestamp AT TIME ZONE 'UTC'
            );
            made := made + 1;
        END IF;
        month := (month + interval '1 month')::date;
    END LOOP;
    RETURN made;
END
$$;

DO $$
BEGIN
    PERFORM audit_log_add_partitions(3, (SELECT min("timestamp") FROM audit_log_unpartitioned));
END
$$;
INSERT INTO audit_log (
    audit_id, user_id, subject_id, action, table_name, record_id, old_values, new_values,
    "timestamp", ip_address, user_agent
)
OVERRIDING SYSTEM VALUE
SELECT audit_id, user_id, subject_id, action, table_name, record_id, old_values, new_values,
       "timestamp", ip_address, user_agent
FROM audit_log_unpartitioned
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
          AND table_name = 'audit_log_unpartitioned'
          AND grantee <> (SELECT tableowner FROM pg_tables WHERE tablename = 'audit_log_unpartitioned')
    LOOP
        EXECUTE format(
            'GRANT %s ON audit_log TO %s',
            g.privilege_type,
            CASE WHEN g.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(g.grantee) END
        );
    END LOOP;
END
$$;
DROP TABLE audit_log_unpartitioned;

-- Pruning may delete the seals that covered the months it drops (and nothing else may).
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('stratus.audit_redaction', true) = 'on' THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_seals'
       AND current_setting('stratus.audit_prune', true) = 'on' THEN
        RETURN OLD;
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

-- Drops the monthly partitions that end on or before `before`; the seals that covered any
-- dropped row go too, and a PRUNE audit row records the digest the kept chain starts from
-- (its anchor), which audit.verify checks. Returns how many partitions were dropped.
CREATE FUNCTION audit_log_drop_partitions(before date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
    kept_from bigint;
BEGIN
    FOR part IN
        SELECT c.relname,
               to_date(substr(c.relname, 12, 4) || substr(c.relname, 17, 2), 'YYYYMM') AS month
        FROM pg_inherits AS i
        JOIN pg_class AS c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'audit_log'::regclass
        ORDER BY c.relname
    LOOP
        IF (part.month + interval '1 month')::date <= before THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    IF dropped > 0 THEN
        SELECT min(audit_id) INTO kept_from FROM audit_log;
        PERFORM set_config('stratus.audit_prune', 'on', true);
        DELETE FROM audit_seals WHERE kept_from IS NULL OR first_audit_id < kept_from;
        PERFORM set_config('stratus.audit_prune', '', true);
        INSERT INTO audit_log (user_id, action, table_name, new_values, ip_address, user_agent)
        VALUES (
            nullif(current_setting('stratus.actor_user_id', true), '')::uuid,
            'PRUNE',
            'audit_log',
            jsonb_build_object(
                'before', before,
                'partitions', dropped,
                'anchor', (SELECT previous_digest FROM audit_seals ORDER BY seal_id LIMIT 1)
            ),
            nullif(current_setting('stratus.actor_ip', true), '')::inet,
            nullif(current_setting('stratus.actor_user_agent', true), '')
        );
    END IF;
    RETURN dropped;
END
$$;
