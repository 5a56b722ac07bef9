-- Back to one metrics table, every sample kept; the rollups go (they are computed from the
-- samples, except for months already pruned).
DROP TRIGGER metrics_roll_up ON metrics;
DROP FUNCTION metrics_roll_up();
DROP FUNCTION metrics_rebuild_rollups(timestamptz);
DROP FUNCTION metrics_forget_user_rollups(uuid);
DROP FUNCTION metrics_prune(date);
DROP FUNCTION metrics_rollup_statement(text, boolean);
DROP AGGREGATE metrics_concat(anycompatiblearray);
DROP FUNCTION metrics_sketch_merge(integer[], bigint[], integer[], bigint[]);
DROP FUNCTION metrics_sketch_bin(double precision);
DROP FUNCTION metrics_between(timestamptz[], timestamptz[], uuid, uuid);
DROP TABLE metrics_hourly;
DROP TABLE metrics_retention;
DROP FUNCTION metrics_add_partitions(integer, timestamptz);

ALTER TABLE metrics RENAME TO metrics_partitioned;
ALTER TABLE metrics_partitioned RENAME CONSTRAINT metrics_pkey TO metrics_partitioned_pkey;
DROP INDEX metrics_user_time_idx;
DROP INDEX metrics_dashboard_time_idx;
DROP INDEX metrics_time_idx;
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
INSERT INTO metrics SELECT * FROM metrics_partitioned;
CREATE INDEX metrics_user_time_idx ON metrics (user_id, "timestamp")
    INCLUDE (ia_efficiency, model_accuracy, processing_time_ms, memory_usage_mb, error_rate);
CREATE INDEX metrics_dashboard_time_idx ON metrics (dashboard_id, "timestamp")
    INCLUDE (ia_efficiency, model_accuracy, processing_time_ms, memory_usage_mb, error_rate)
    WHERE dashboard_id IS NOT NULL;
CREATE INDEX metrics_time_idx ON metrics ("timestamp");
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT grantee, privilege_type
        FROM information_schema.role_table_grants
        WHERE table_schema = current_schema()
          AND table_name = 'metrics_partitioned'
          AND grantee <> (SELECT tableowner FROM pg_tables WHERE tablename = 'metrics_partitioned')
    LOOP
        EXECUTE format(
            'GRANT %s ON metrics TO %s',
            g.privilege_type,
            CASE WHEN g.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(g.grantee) END
        );
    END LOOP;
END
$$;
DROP TABLE metrics_partitioned;
ALTER TABLE metrics ENABLE ROW LEVEL SECURITY;
ALTER TABLE metrics FORCE ROW LEVEL SECURITY;
CREATE POLICY metrics_unscoped ON metrics USING (current_user <> 'stratus_scoped');
CREATE POLICY metrics_own ON metrics TO stratus_scoped
    USING (user_id = stratus_actor()) WITH CHECK (user_id = stratus_actor());
CREATE POLICY metrics_admin_reads ON metrics FOR SELECT TO stratus_scoped
    USING (stratus_actor_is_admin());
