-- Metrics at any volume (README, "Metrics"):
-- * metrics becomes range-partitioned by UTC month (metrics_yYYYYmMM; metrics_default takes
--   samples outside the months made so far), so raw months can be dropped whole
--   (stratus-sql metrics prune). metrics_add_partitions() makes the months to come; it runs
--   here, in `stratus-sql migrate` and in `stratus-sql maintain`.
-- * metrics_hourly: rollups per UTC hour at three levels, a dashboard's samples (user and
--   dashboard set), a user's (dashboard NULL) and the organisation's (both NULL): the count,
--   the sum, min and max of each statistic, and a sketch of processing time (log buckets of
--   1% relative accuracy, merged by adding counts). A statement trigger keeps them current
--   in the transaction that inserts the samples.
-- * metrics_retention: where the raw samples kept start, once a prune has run.
-- depends: 0008.email_casefold

ALTER TABLE metrics RENAME TO metrics_unpartitioned;
ALTER TABLE metrics_unpartitioned RENAME CONSTRAINT metrics_pkey TO metrics_unpartitioned_pkey;
DROP INDEX metrics_user_time_idx;
DROP INDEX metrics_dashboard_time_idx;
DROP INDEX metrics_time_idx;

CREATE TABLE metrics (
    metric_id          uuid NOT NULL,
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
    -- A partitioned table's keys hold its partition key; metric ids are UUIDv7s made by the
    -- layer, unique on their own.
    PRIMARY KEY (metric_id, "timestamp"),
    CONSTRAINT metrics_dashboard_fkey FOREIGN KEY (dashboard_id, user_id)
        REFERENCES dashboards (dashboard_id, user_id) ON DELETE SET NULL (dashboard_id)
) PARTITION BY RANGE ("timestamp");
CREATE TABLE metrics_default PARTITION OF metrics DEFAULT;
-- The series read each range from the index alone (migration 0004); the time index covers
-- the statistics too, for the organisation's series.
CREATE INDEX metrics_user_time_idx ON metrics (user_id, "timestamp")
    INCLUDE (ia_efficiency, model_accuracy, processing_time_ms, memory_usage_mb, error_rate);
CREATE INDEX metrics_dashboard_time_idx ON metrics (dashboard_id, "timestamp")
    INCLUDE (ia_efficiency, model_accuracy, processing_time_ms, memory_usage_mb, error_rate)
    WHERE dashboard_id IS NOT NULL;
CREATE INDEX metrics_time_idx ON metrics ("timestamp")
    INCLUDE (ia_efficiency, model_accuracy, processing_time_ms, memory_usage_mb, error_rate);

-- Makes the monthly partitions (UTC months) from the month of `since` (default: this month;
-- at most 24 months back, older samples stay in metrics_default) to `months_ahead` months
-- from now. A month whose samples sit in metrics_default takes them along. Returns how
-- many partitions were new.
CREATE FUNCTION metrics_add_partitions(months_ahead integer DEFAULT 3, since timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    this_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    month date := greatest(
        least(coalesce(date_trunc('month', since AT TIME ZONE 'UTC')::date, this_month), this_month),
        (this_month - interval '24 months')::date
    );
    last_month date := (this_month + make_interval(months => months_ahead))::date;
    part text;
    lo timestamptz;
    hi timestamptz;
    made integer := 0;
BEGIN
    WHILE month <= last_month LOOP
        part := format('metrics_y%sm%s', to_char(month, 'YYYY'), to_char(month, 'MM'));
        lo := month::timestamp AT TIME ZONE 'UTC';
        hi := (month + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        IF to_regclass(part) IS NULL THEN
            IF EXISTS (SELECT 1 FROM metrics_default WHERE "timestamp" >= lo AND "timestamp" < hi) THEN
                EXECUTE format('CREATE TABLE %I (LIKE metrics INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
                EXECUTE format(
                    'WITH moved AS (DELETE FROM metrics_default WHERE "timestamp" >= %L AND "timestamp" < %L RETURNING *) '
                    'INSERT INTO %I SELECT * FROM moved', lo, hi, part);
                EXECUTE format('ALTER TABLE metrics ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
            ELSE
                EXECUTE format('CREATE TABLE %I PARTITION OF metrics FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
            END IF;
            made := made + 1;
        END IF;
        month := (month + interval '1 month')::date;
    END LOOP;
    RETURN made;
END
$$;

DO $$
BEGIN
    PERFORM metrics_add_partitions(3, (SELECT min("timestamp") FROM metrics_unpartitioned));
END
$$;
INSERT INTO metrics SELECT * FROM metrics_unpartitioned;
-- Keep whatever was granted on the old table (the application login's privileges).
DO $$
DECLARE
    g record;
BEGIN
    FOR g IN
        SELECT grantee, privilege_type
        FROM information_schema.role_table_grants
        WHERE table_schema = current_schema()
          AND table_name = 'metrics_unpartitioned'
          AND grantee <> (SELECT tableowner FROM pg_tables WHERE tablename = 'metrics_unpartitioned')
    LOOP
        EXECUTE format(
            'GRANT %s ON metrics TO %s',
            g.privilege_type,
            CASE WHEN g.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(g.grantee) END
        );
    END LOOP;
END
$$;
DROP TABLE metrics_unpartitioned;

ALTER TABLE metrics ENABLE ROW LEVEL SECURITY;
ALTER TABLE metrics FORCE ROW LEVEL SECURITY;
CREATE POLICY metrics_unscoped ON metrics USING (current_user <> 'stratus_scoped');
CREATE POLICY metrics_own ON metrics TO stratus_scoped
    USING (user_id = stratus_actor()) WITH CHECK (user_id = stratus_actor());
CREATE POLICY metrics_admin_reads ON metrics FOR SELECT TO stratus_scoped
    USING (stratus_actor_is_admin());

-- Where the raw samples kept start (no row: none was pruned). Set by metrics_prune().
CREATE TABLE metrics_retention (
    only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    pruned_before timestamptz NOT NULL
);
GRANT SELECT ON metrics_retention TO stratus_scoped;

CREATE TABLE metrics_hourly (
    user_id                uuid REFERENCES users (user_id) ON DELETE CASCADE,
    dashboard_id           uuid,
    hour                   timestamptz NOT NULL,
    samples                bigint NOT NULL CHECK (samples > 0),
    ia_efficiency_sum      double precision NOT NULL,
    ia_efficiency_min      double precision NOT NULL,
    ia_efficiency_max      double precision NOT NULL,
    model_accuracy_sum     double precision NOT NULL,
    model_accuracy_min     double precision NOT NULL,
    model_accuracy_max     double precision NOT NULL,
    processing_time_ms_sum double precision NOT NULL,
    processing_time_ms_min double precision NOT NULL,
    processing_time_ms_max double precision NOT NULL,
    memory_usage_mb_sum    double precision NOT NULL,
    memory_usage_mb_min    double precision NOT NULL,
    memory_usage_mb_max    double precision NOT NULL,
    error_rate_sum         double precision NOT NULL,
    error_rate_min         double precision NOT NULL,
    error_rate_max         double precision NOT NULL,
    -- The sketch: bucket k holds the processing times in (g^(k-1), g^k], g = 1.01 / 0.99,
    -- and bucket -2147483648 the zeros; bins ascending, counts alongside.
    sketch_bins            integer[] NOT NULL,
    sketch_counts          bigint[] NOT NULL,
    CHECK (cardinality(sketch_counts) = cardinality(sketch_bins)),
    CHECK (dashboard_id IS NULL OR user_id IS NOT NULL),
    CONSTRAINT metrics_hourly_key UNIQUE NULLS NOT DISTINCT (user_id, dashboard_id, hour),
    -- A deleted dashboard's rollups go with it; its samples still count for its user.
    CONSTRAINT metrics_hourly_dashboard_fkey FOREIGN KEY (dashboard_id, user_id)
        REFERENCES dashboards (dashboard_id, user_id) ON DELETE CASCADE
);
CREATE INDEX metrics_hourly_dashboard_idx ON metrics_hourly (dashboard_id, hour)
    WHERE dashboard_id IS NOT NULL;

GRANT SELECT ON metrics_hourly TO stratus_scoped;
ALTER TABLE metrics_hourly ENABLE ROW LEVEL SECURITY;
ALTER TABLE metrics_hourly FORCE ROW LEVEL SECURITY;
CREATE POLICY metrics_hourly_unscoped ON metrics_hourly USING (current_user <> 'stratus_scoped');
-- The organisation's rows (no user) are an admin's to read.
CREATE POLICY metrics_hourly_reads ON metrics_hourly FOR SELECT TO stratus_scoped
    USING (user_id = stratus_actor() OR stratus_actor_is_admin());

-- The sketch bucket of a processing time.
CREATE FUNCTION metrics_sketch_bin(ms double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN ms > 0 THEN ceil(ln(ms) / ln(101::float8 / 99))::integer ELSE -2147483648 END $$;

-- Arrays end to end: the default series hands each bucket's sketches to the layer this way,
-- which adds up the counts of each bin (measured: 4x faster than grouping by bin in SQL).
CREATE AGGREGATE metrics_concat(anycompatiblearray) (
    SFUNC = array_cat, STYPE = anycompatiblearray, INITCOND = '{}'
);

-- Two sketches merged: the counts of each bucket added.
CREATE FUNCTION metrics_sketch_merge(
    a_bins integer[], a_counts bigint[], b_bins integer[], b_counts bigint[],
    OUT bins integer[], OUT counts bigint[]
)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT array_agg(bin ORDER BY bin), array_agg(n ORDER BY bin)
    FROM (
        SELECT bin, sum(n)::bigint AS n
        FROM (
            SELECT * FROM unnest(a_bins, a_counts)
            UNION ALL
            SELECT * FROM unnest(b_bins, b_counts)
        ) AS both_sketches (bin, n)
        GROUP BY bin
    ) AS merged
$$;

-- The samples in the ranges [los[i], his[i]) of one user, one dashboard, both or neither
-- (NULL: any): the default series reads the hours a bucket edge cuts with it. A function,
-- planned on its own once per series, with JIT off: the planner cannot know how many samples
-- the ranges hold, and its default guess (a third of the table per range bound) made the
-- series cost enough to be JIT-compiled, 0.7 s a call for a few milliseconds of work. One
-- branch runs, by which arguments are given.
CREATE FUNCTION metrics_between(los timestamptz[], his timestamptz[], uid uuid, did uuid)
RETURNS TABLE (
    "timestamp"        timestamptz,
    ia_efficiency      double precision,
    model_accuracy     double precision,
    processing_time_ms double precision,
    memory_usage_mb    double precision,
    error_rate         double precision
)
LANGUAGE sql STABLE ROWS 1000 SET jit = off AS $$
    SELECT m."timestamp", m.ia_efficiency, m.model_accuracy, m.processing_time_ms,
           m.memory_usage_mb, m.error_rate
    FROM unnest(los, his) AS c (lo, hi)
    JOIN metrics AS m ON m."timestamp" >= c.lo AND m."timestamp" < c.hi
    WHERE did IS NOT NULL AND m.dashboard_id = did AND (uid IS NULL OR m.user_id = uid)
    UNION ALL
    SELECT m."timestamp", m.ia_efficiency, m.model_accuracy, m.processing_time_ms,
           m.memory_usage_mb, m.error_rate
    FROM unnest(los, his) AS c (lo, hi)
    JOIN metrics AS m ON m."timestamp" >= c.lo AND m."timestamp" < c.hi
    WHERE did IS NULL AND uid IS NOT NULL AND m.user_id = uid
    UNION ALL
    SELECT m."timestamp", m.ia_efficiency, m.model_accuracy, m.processing_time_ms,
           m.memory_usage_mb, m.error_rate
    FROM unnest(los, his) AS c (lo, hi)
    JOIN metrics AS m ON m."timestamp" >= c.lo AND m."timestamp" < c.hi
    WHERE did IS NULL AND uid IS NULL
$$;

-- The statement that adds the samples of `source` (a relation, or a parenthesized query,
-- with the columns of metrics) to the rollups of the three levels. Rows are upserted in key
-- order, so concurrent writers lock them in one order. A sample without a dashboard counts
-- for its user and the organisation only. Two forms, by `by_bin`:
-- - false: the statistics grouped per hour and the sketch counts per hour and bin, from the
--   samples, for each level; for batches over many hours (a backfill), where nearly every
--   sample has a bin of its own;
-- - true: the samples grouped once by dashboard, user, hour and bin with the fifteen
--   aggregates, and the levels summed from those groups; for batches of a few hours (live
--   writes), whose groups are far fewer than their samples.
CREATE FUNCTION metrics_rollup_statement(source text, by_bin boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    stats text[] := ARRAY['ia_efficiency', 'model_accuracy', 'processing_time_ms',
                          'memory_usage_mb', 'error_rate'];
    grouped text := '';
    per_hour text := '';
    columns text := '';
    merged text := '';
    s text;
BEGIN
    FOREACH s IN ARRAY stats LOOP
        grouped := grouped || CASE WHEN by_bin
            THEN format(', sum(%1$I) AS %1$I_sum, min(%1$I) AS %1$I_min, max(%1$I) AS %1$I_max', s)
            ELSE format(', %I', s) END;
        per_hour := per_hour || CASE WHEN by_bin
            THEN format(', sum(%1$I_sum) AS %1$I_sum, min(%1$I_min) AS %1$I_min, max(%1$I_max) AS %1$I_max', s)
            ELSE format(', sum(%1$I) AS %1$I_sum, min(%1$I) AS %1$I_min, max(%1$I) AS %1$I_max', s) END;
        columns := columns || format(', h.%1$I_sum, h.%1$I_min, h.%1$I_max', s);
        merged := merged || format(
            ', %1$I_sum = t.%1$I_sum + excluded.%1$I_sum'
            ', %1$I_min = least(t.%1$I_min, excluded.%1$I_min)'
            ', %1$I_max = greatest(t.%1$I_max, excluded.%1$I_max)', s);
    END LOOP;
    RETURN format(
        'WITH added AS MATERIALIZED ('
        'SELECT user_id, dashboard_id, '
        'date_bin(''1 hour'', "timestamp", timestamptz ''0001-01-01 00:00:00+00'') AS hour, '
        'metrics_sketch_bin(processing_time_ms) AS bin, %1$s AS n%2$s FROM %3$s AS source%4$s), '
        'per_hour AS (SELECT user_id, dashboard_id, hour, sum(n) AS samples%5$s FROM added '
        'GROUP BY GROUPING SETS ((user_id, dashboard_id, hour), (user_id, hour), (hour)) '
        'HAVING GROUPING(dashboard_id) = 1 OR dashboard_id IS NOT NULL), '
        'per_bin AS (SELECT user_id, dashboard_id, hour, array_agg(bin ORDER BY bin) AS bins, '
        'array_agg(n ORDER BY bin) AS counts FROM ('
        'SELECT user_id, dashboard_id, hour, bin, sum(n)::bigint AS n FROM added '
        'GROUP BY GROUPING SETS ((user_id, dashboard_id, hour, bin), (user_id, hour, bin), (hour, bin)) '
        'HAVING GROUPING(dashboard_id) = 1 OR dashboard_id IS NOT NULL) AS b '
        'GROUP BY user_id, dashboard_id, hour) '
        'INSERT INTO metrics_hourly AS t '
        'SELECT h.user_id, h.dashboard_id, h.hour, h.samples%6$s, b.bins, b.counts '
        'FROM per_hour AS h JOIN per_bin AS b ON b.hour = h.hour '
        'AND coalesce(b.user_id, ''00000000-0000-0000-0000-000000000000'') '
        '= coalesce(h.user_id, ''00000000-0000-0000-0000-000000000000'') '
        'AND coalesce(b.dashboard_id, ''00000000-0000-0000-0000-000000000000'') '
        '= coalesce(h.dashboard_id, ''00000000-0000-0000-0000-000000000000'') '
        'ORDER BY h.user_id NULLS FIRST, h.dashboard_id NULLS FIRST, h.hour '
        'ON CONFLICT (user_id, dashboard_id, hour) DO UPDATE SET samples = t.samples + excluded.samples%7$s, '
        '(sketch_bins, sketch_counts) = (SELECT bins, counts FROM metrics_sketch_merge('
        't.sketch_bins, t.sketch_counts, excluded.sketch_bins, excluded.sketch_counts))',
        CASE WHEN by_bin THEN 'count(*)' ELSE '1' END,
        grouped,
        source,
        CASE WHEN by_bin THEN ' GROUP BY 1, 2, 3, 4' ELSE '' END,
        per_hour, columns, merged
    );
END
$$;

-- The trigger and the rebuild run the statement as written out here, so its plan is
-- prepared once per session. Both run as the owner (search_path set below): a scoped writer
-- adds to the organisation's rollups, which it may not read.
DO $do$
BEGIN
    EXECUTE format(
        $f$CREATE FUNCTION metrics_roll_up() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER AS $body$
        BEGIN
            IF (SELECT max("timestamp") - min("timestamp") FROM added) <= interval '1 day' THEN
                %s;
            ELSE
                %s;
            END IF;
            RETURN NULL;
        END
        $body$
        $f$,
        metrics_rollup_statement('added', true),
        metrics_rollup_statement('added', false)
    );
    -- Recomputes every rollup of the hours from `since` (default: all), or from where the
    -- raw samples kept start if later; returns how many rollup rows it wrote.
    EXECUTE format(
        $f$CREATE FUNCTION metrics_rebuild_rollups(since timestamptz DEFAULT NULL) RETURNS bigint
        LANGUAGE plpgsql SECURITY DEFINER AS $body$
        DECLARE
            first_hour timestamptz := greatest(
                coalesce(date_trunc('hour', since, 'UTC'), '-infinity'),
                coalesce((SELECT pruned_before FROM metrics_retention), '-infinity')
            );
            written bigint;
        BEGIN
            -- Writers wait until the rebuild commits, so none is counted twice or missed.
            LOCK TABLE metrics_hourly IN SHARE ROW EXCLUSIVE MODE;
            DELETE FROM metrics_hourly WHERE hour >= first_hour;
            %s;
            GET DIAGNOSTICS written = ROW_COUNT;
            RETURN written;
        END
        $body$
        $f$,
        metrics_rollup_statement('(SELECT * FROM metrics WHERE "timestamp" >= first_hour)', false)
    );
END
$do$;

CREATE TRIGGER metrics_roll_up
    AFTER INSERT ON metrics REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION metrics_roll_up();

-- The first step of erasing a person's rollups: the organisation's hours they had samples
-- in recomputed from everyone else's (theirs are deleted next, by the caller). Writers wait
-- until the erasure commits. Returns how many hours it recomputed.
CREATE FUNCTION metrics_forget_user_rollups(forgotten uuid) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    hours timestamptz[];
BEGIN
    LOCK TABLE metrics_hourly IN SHARE ROW EXCLUSIVE MODE;
    hours := ARRAY(
        SELECT hour FROM metrics_hourly WHERE user_id = forgotten AND dashboard_id IS NULL
    );
    DELETE FROM metrics_hourly WHERE user_id IS NULL AND hour = ANY (hours);
    INSERT INTO metrics_hourly
    SELECT NULL, NULL, u.hour, sum(u.samples),
           sum(u.ia_efficiency_sum), min(u.ia_efficiency_min), max(u.ia_efficiency_max),
           sum(u.model_accuracy_sum), min(u.model_accuracy_min), max(u.model_accuracy_max),
           sum(u.processing_time_ms_sum), min(u.processing_time_ms_min), max(u.processing_time_ms_max),
           sum(u.memory_usage_mb_sum), min(u.memory_usage_mb_min), max(u.memory_usage_mb_max),
           sum(u.error_rate_sum), min(u.error_rate_min), max(u.error_rate_max),
           (SELECT array_agg(k.bin ORDER BY k.bin) FROM (
                SELECT DISTINCT b.bin
                FROM metrics_hourly AS o, unnest(o.sketch_bins) AS b (bin)
                WHERE o.hour = u.hour AND o.user_id <> forgotten AND o.dashboard_id IS NULL
            ) AS k),
           (SELECT array_agg(k.n ORDER BY k.bin) FROM (
                SELECT b.bin, sum(b.n)::bigint AS n
                FROM metrics_hourly AS o, unnest(o.sketch_bins, o.sketch_counts) AS b (bin, n)
                WHERE o.hour = u.hour AND o.user_id <> forgotten AND o.dashboard_id IS NULL
                GROUP BY b.bin
            ) AS k)
    FROM metrics_hourly AS u
    WHERE u.user_id <> forgotten AND u.dashboard_id IS NULL AND u.hour = ANY (hours)
    GROUP BY u.hour
    ORDER BY u.hour;
    RETURN cardinality(hours);
END
$$;
-- Both rewrite other people's rollups: the owner may call them, and whom it grants (the
-- README grants the forgetting to the login that runs erasures).
REVOKE EXECUTE ON FUNCTION metrics_forget_user_rollups(uuid) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION metrics_rebuild_rollups(timestamptz) FROM PUBLIC;
-- The functions that run as the owner find tables in this schema only: with pg_temp last, a
-- caller's temporary table named like one of them cannot stand in for it.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION metrics_roll_up() SET search_path = %I, pg_temp', current_schema());
    EXECUTE format(
        'ALTER FUNCTION metrics_rebuild_rollups(timestamptz) SET search_path = %I, pg_temp',
        current_schema()
    );
    EXECUTE format(
        'ALTER FUNCTION metrics_forget_user_rollups(uuid) SET search_path = %I, pg_temp',
        current_schema()
    );
END
$$;

-- Drops the raw samples before `before` (the first day of a month): the monthly partitions
-- that end by then, and those rows of metrics_default. The rollups stay; metrics_retention
-- records where the raw samples kept start. Returns how many samples went.
CREATE FUNCTION metrics_prune(before date) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    gone bigint := 0;
    n bigint;
    cutoff timestamptz := before::timestamp AT TIME ZONE 'UTC';
BEGIN
    FOR part IN
        SELECT c.relname,
               to_date(substr(c.relname, 10, 4) || substr(c.relname, 15, 2), 'YYYYMM') AS month
        FROM pg_inherits AS i
        JOIN pg_class AS c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'metrics'::regclass AND c.relname ~ '^metrics_y[0-9]{4}m[0-9]{2}$'
        ORDER BY c.relname
    LOOP
        IF (part.month + interval '1 month')::date <= before THEN
            EXECUTE format('SELECT count(*) FROM %I', part.relname) INTO n;
            EXECUTE format('DROP TABLE %I', part.relname);
            gone := gone + n;
        END IF;
    END LOOP;
    DELETE FROM metrics_default WHERE "timestamp" < cutoff;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO metrics_retention (pruned_before) VALUES (cutoff)
    ON CONFLICT (only_row) DO UPDATE
        SET pruned_before = greatest(metrics_retention.pruned_before, excluded.pruned_before);
    RETURN gone + n;
END
$$;

-- The rollups of the samples stored before this migration.
DO $$
BEGIN
    PERFORM metrics_rebuild_rollups();
END
$$;
