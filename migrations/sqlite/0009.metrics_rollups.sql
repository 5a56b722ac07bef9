-- Metrics at any volume (README, "Metrics"). SQLite keeps metrics in one table (pruning
-- deletes old samples in batches), and adds what PostgreSQL has:
-- * metrics_hourly: rollups per UTC hour at three levels, a dashboard's samples (user and
--   dashboard set), a user's (dashboard NULL) and the organisation's (both NULL): the count,
--   the sum, min and max of each statistic, and a sketch of processing time (log buckets of
--   1% relative accuracy, merged by adding counts) as a JSON object {bin: count}.
--   record_metric(s) add to them in the transaction that inserts the samples.
-- * metrics_retention: where the raw samples kept start, once a prune has run.
-- depends: 0008.email_casefold

CREATE TABLE metrics_retention (
    only_row      INTEGER NOT NULL PRIMARY KEY DEFAULT 1 CHECK (only_row = 1),
    pruned_before TEXT NOT NULL
) STRICT;

CREATE TABLE metrics_hourly (
    user_id                TEXT REFERENCES users (user_id) ON DELETE CASCADE,
    dashboard_id           TEXT REFERENCES dashboards (dashboard_id) ON DELETE CASCADE,
    hour                   TEXT NOT NULL,
    samples                INTEGER NOT NULL CHECK (samples > 0),
    ia_efficiency_sum      REAL NOT NULL,
    ia_efficiency_min      REAL NOT NULL,
    ia_efficiency_max      REAL NOT NULL,
    model_accuracy_sum     REAL NOT NULL,
    model_accuracy_min     REAL NOT NULL,
    model_accuracy_max     REAL NOT NULL,
    processing_time_ms_sum REAL NOT NULL,
    processing_time_ms_min REAL NOT NULL,
    processing_time_ms_max REAL NOT NULL,
    memory_usage_mb_sum    REAL NOT NULL,
    memory_usage_mb_min    REAL NOT NULL,
    memory_usage_mb_max    REAL NOT NULL,
    error_rate_sum         REAL NOT NULL,
    error_rate_min         REAL NOT NULL,
    error_rate_max         REAL NOT NULL,
    -- Bucket k holds the processing times in (g^(k-1), g^k], g = 1.01 / 0.99, and bucket
    -- -2147483648 the zeros.
    sketch                 TEXT NOT NULL CHECK (json_type(sketch) = 'object'),
    CHECK (dashboard_id IS NULL OR user_id IS NOT NULL)
) STRICT;
CREATE UNIQUE INDEX metrics_hourly_key
    ON metrics_hourly (coalesce(user_id, ''), coalesce(dashboard_id, ''), hour);
CREATE INDEX metrics_hourly_user_idx ON metrics_hourly (user_id, dashboard_id, hour);
CREATE INDEX metrics_hourly_dashboard_idx ON metrics_hourly (dashboard_id, hour)
    WHERE dashboard_id IS NOT NULL;
-- The organisation's series reads a time range of samples alone: cover the statistics.
DROP INDEX metrics_time_idx;
CREATE INDEX metrics_time_idx ON metrics (
    "timestamp", ia_efficiency, model_accuracy, processing_time_ms, memory_usage_mb, error_rate
);

-- The rollups of the samples stored before this migration.
INSERT INTO metrics_hourly (
    user_id, dashboard_id, hour, samples,
    ia_efficiency_sum, ia_efficiency_min, ia_efficiency_max,
    model_accuracy_sum, model_accuracy_min, model_accuracy_max,
    processing_time_ms_sum, processing_time_ms_min, processing_time_ms_max,
    memory_usage_mb_sum, memory_usage_mb_min, memory_usage_mb_max,
    error_rate_sum, error_rate_min, error_rate_max, sketch
)
WITH added AS MATERIALIZED (
    SELECT user_id, dashboard_id, substr("timestamp", 1, 13) || ':00:00.000000Z' AS hour,
           CASE WHEN processing_time_ms > 0
                THEN CAST(ceil(ln(processing_time_ms) / ln(101.0 / 99)) AS INTEGER)
                ELSE -2147483648 END AS bin,
           ia_efficiency, model_accuracy, processing_time_ms, memory_usage_mb, error_rate
    FROM metrics
    WHERE true
),
per_bin AS (
    SELECT user_id, dashboard_id, hour, bin, count(*) AS n, sum(ia_efficiency) AS ia_efficiency_sum, min(ia_efficiency) AS ia_efficiency_min, max(ia_efficiency) AS ia_efficiency_max, sum(model_accuracy) AS model_accuracy_sum, min(model_accuracy) AS model_accuracy_min, max(model_accuracy) AS model_accuracy_max, sum(processing_time_ms) AS processing_time_ms_sum, min(processing_time_ms) AS processing_time_ms_min, max(processing_time_ms) AS processing_time_ms_max, sum(memory_usage_mb) AS memory_usage_mb_sum, min(memory_usage_mb) AS memory_usage_mb_min, max(memory_usage_mb) AS memory_usage_mb_max, sum(error_rate) AS error_rate_sum, min(error_rate) AS error_rate_min, max(error_rate) AS error_rate_max
    FROM added WHERE dashboard_id IS NOT NULL GROUP BY user_id, dashboard_id, hour, bin
    UNION ALL
    SELECT user_id, NULL, hour, bin, count(*), sum(ia_efficiency) AS ia_efficiency_sum, min(ia_efficiency) AS ia_efficiency_min, max(ia_efficiency) AS ia_efficiency_max, sum(model_accuracy) AS model_accuracy_sum, min(model_accuracy) AS model_accuracy_min, max(model_accuracy) AS model_accuracy_max, sum(processing_time_ms) AS processing_time_ms_sum, min(processing_time_ms) AS processing_time_ms_min, max(processing_time_ms) AS processing_time_ms_max, sum(memory_usage_mb) AS memory_usage_mb_sum, min(memory_usage_mb) AS memory_usage_mb_min, max(memory_usage_mb) AS memory_usage_mb_max, sum(error_rate) AS error_rate_sum, min(error_rate) AS error_rate_min, max(error_rate) AS error_rate_max
    FROM added GROUP BY user_id, hour, bin
    UNION ALL
    SELECT NULL, NULL, hour, bin, count(*), sum(ia_efficiency) AS ia_efficiency_sum, min(ia_efficiency) AS ia_efficiency_min, max(ia_efficiency) AS ia_efficiency_max, sum(model_accuracy) AS model_accuracy_sum, min(model_accuracy) AS model_accuracy_min, max(model_accuracy) AS model_accuracy_max, sum(processing_time_ms) AS processing_time_ms_sum, min(processing_time_ms) AS processing_time_ms_min, max(processing_time_ms) AS processing_time_ms_max, sum(memory_usage_mb) AS memory_usage_mb_sum, min(memory_usage_mb) AS memory_usage_mb_min, max(memory_usage_mb) AS memory_usage_mb_max, sum(error_rate) AS error_rate_sum, min(error_rate) AS error_rate_min, max(error_rate) AS error_rate_max
    FROM added GROUP BY hour, bin
)
SELECT user_id, dashboard_id, hour, sum(n),
       sum(ia_efficiency_sum), min(ia_efficiency_min), max(ia_efficiency_max),
       sum(model_accuracy_sum), min(model_accuracy_min), max(model_accuracy_max),
       sum(processing_time_ms_sum), min(processing_time_ms_min), max(processing_time_ms_max),
       sum(memory_usage_mb_sum), min(memory_usage_mb_min), max(memory_usage_mb_max),
       sum(error_rate_sum), min(error_rate_min), max(error_rate_max),
       json_group_object(bin, n)
FROM per_bin
WHERE true
GROUP BY user_id, dashboard_id, hour
ON CONFLICT (coalesce(user_id, ''), coalesce(dashboard_id, ''), hour) DO UPDATE SET
    samples = samples + excluded.samples,
    ia_efficiency_sum = ia_efficiency_sum + excluded.ia_efficiency_sum, ia_efficiency_min = min(ia_efficiency_min, excluded.ia_efficiency_min), ia_efficiency_max = max(ia_efficiency_max, excluded.ia_efficiency_max),
    model_accuracy_sum = model_accuracy_sum + excluded.model_accuracy_sum, model_accuracy_min = min(model_accuracy_min, excluded.model_accuracy_min), model_accuracy_max = max(model_accuracy_max, excluded.model_accuracy_max),
    processing_time_ms_sum = processing_time_ms_sum + excluded.processing_time_ms_sum, processing_time_ms_min = min(processing_time_ms_min, excluded.processing_time_ms_min), processing_time_ms_max = max(processing_time_ms_max, excluded.processing_time_ms_max),
    memory_usage_mb_sum = memory_usage_mb_sum + excluded.memory_usage_mb_sum, memory_usage_mb_min = min(memory_usage_mb_min, excluded.memory_usage_mb_min), memory_usage_mb_max = max(memory_usage_mb_max, excluded.memory_usage_mb_max),
    error_rate_sum = error_rate_sum + excluded.error_rate_sum, error_rate_min = min(error_rate_min, excluded.error_rate_min), error_rate_max = max(error_rate_max, excluded.error_rate_max),
    sketch = (
        SELECT json_group_object(bin, n)
        FROM (
            SELECT bin, sum(n) AS n
            FROM (
                SELECT CAST(key AS INTEGER) AS bin, value AS n FROM json_each(metrics_hourly.sketch)
                UNION ALL
                SELECT CAST(key AS INTEGER), value FROM json_each(excluded.sketch)
            )
            GROUP BY bin
        )
    );
