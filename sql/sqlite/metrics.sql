-- name: record_metric :one -> Metric
-- Store one sample.
INSERT INTO metrics (
    metric_id, user_id, dashboard_id, ia_efficiency, model_accuracy, processing_time_ms,
    memory_usage_mb, error_rate, "timestamp", periodo
)
VALUES (
    :metric_id, :user_id, :dashboard_id, :ia_efficiency, :model_accuracy, :processing_time_ms,
    :memory_usage_mb, :error_rate, :timestamp, :periodo
)
RETURNING metric_id, user_id, dashboard_id, ia_efficiency, model_accuracy, processing_time_ms,
          memory_usage_mb, error_rate, "timestamp", periodo;

-- name: record_metrics :copy
-- Bulk-load samples (one executemany in one transaction).
INSERT INTO metrics (
    metric_id, user_id, dashboard_id, ia_efficiency, model_accuracy, processing_time_ms,
    memory_usage_mb, error_rate, "timestamp", periodo
)
VALUES (
    :metric_id, :user_id, :dashboard_id, :ia_efficiency, :model_accuracy, :processing_time_ms,
    :memory_usage_mb, :error_rate, :timestamp, :periodo
);

-- name: rollup_high_water :scalar
-- The last rowid of metrics: the samples a write adds come after it (the writer is alone).
SELECT coalesce(max(rowid), 0) FROM metrics;

-- name: roll_up :execrows writes
-- Add the samples after rowid :after (from the hour :from_hour, NULL: all) to the hourly
-- rollups of their dashboard, their user and the organisation.
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
    WHERE rowid > :after AND (:from_hour IS NULL OR "timestamp" >= :from_hour)
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

-- name: clear_rollups :execrows writes
-- Delete the rollups of the hours from :from_hour (NULL: all), for a rebuild.
DELETE FROM metrics_hourly WHERE :from_hour IS NULL OR hour >= :from_hour;

-- name: retention :scalar
-- Where the raw samples kept start (NULL: none was pruned).
SELECT pruned_before FROM metrics_retention;

-- name: maintain :scalar
-- SQLite keeps metrics in one table: there are no partitions to make.
SELECT 0 * :months_ahead;

-- name: prune :scalar writes
-- Record that the raw samples before :before go (the batches of prune_batch delete them);
-- from now on series read those hours from the rollups alone.
INSERT INTO metrics_retention (only_row, pruned_before) VALUES (1, :before)
ON CONFLICT (only_row) DO UPDATE SET pruned_before = max(pruned_before, excluded.pruned_before)
RETURNING 0;

-- name: prune_batch :execrows writes
-- Delete up to :batch samples before :before among the rowids up to :high_water.
DELETE FROM metrics
WHERE rowid IN (
    SELECT rowid FROM metrics
    WHERE "timestamp" < :before AND rowid <= :high_water
    LIMIT :batch
);

-- name: rebuild_rollups :scalar writes
-- Unused on SQLite: metrics.rebuild_rollups runs clear_rollups and roll_up there.
SELECT 0 WHERE :since IS NULL;

-- name: dashboard_series :many -> SeriesBucket
-- The series of dashboard_series_exact from the hourly rollups: a bucket takes the rollups of
-- the whole hours inside it and the samples of the hours a bucket edge cuts. Counts, sums,
-- min and max add up exactly. The sketches of processing time of the bucket's hours, and the
-- bins of its cut hours' samples, come end to end (`sketch_bins`, `sketch_counts`, JSON
-- arrays): the layer adds up each bin's counts and estimates p95 from them.
-- An hour whose samples were pruned counts whole in the bucket where it starts. Times are
-- ISO text of one format, compared as text.
WITH RECURSIVE series (i) AS (
    SELECT 0
    UNION ALL
    SELECT i + 1 FROM series WHERE i + 1 < :buckets
),
edges (j) AS (
    SELECT 0
    UNION ALL
    SELECT j + 1 FROM edges WHERE j + 1 <= :buckets
),
origin AS (
    SELECT CAST(strftime('%s', substr(:since, 1, 19)) AS INTEGER) AS seconds,
           '.' || substr(:since, 21, 6) || 'Z' AS fraction,
           CAST(substr(:since, 21, 6) AS INTEGER) AS fraction_micros,
           coalesce((SELECT pruned_before FROM metrics_retention), '') AS horizon
),
buckets AS (
    SELECT s.i,
           strftime('%Y-%m-%dT%H:%M:%S', o.seconds + s.i * :bucket_seconds, 'unixepoch')
           || o.fraction AS b_start,
           strftime('%Y-%m-%dT%H:%M:%S', o.seconds + (s.i + 1) * :bucket_seconds, 'unixepoch')
           || o.fraction AS b_end,
           -- the last hour that ends inside the bucket starts by here
           strftime('%Y-%m-%dT%H:%M:%S', o.seconds + (s.i + 1) * :bucket_seconds - 3600, 'unixepoch')
           || o.fraction AS last_whole
    FROM series AS s
    CROSS JOIN origin AS o
),
rollups AS (
    SELECT hour, samples, ia_efficiency_sum, model_accuracy_sum, processing_time_ms_sum, memory_usage_mb_sum, error_rate_sum, error_rate_max, sketch
    FROM metrics_hourly
    WHERE :user_id IS NULL AND :dashboard_id IS NULL AND user_id IS NULL AND dashboard_id IS NULL
      AND hour >= :since AND hour < :now
    UNION ALL
    SELECT hour, samples, ia_efficiency_sum, model_accuracy_sum, processing_time_ms_sum, memory_usage_mb_sum, error_rate_sum, error_rate_max, sketch
    FROM metrics_hourly
    WHERE :user_id IS NOT NULL AND :dashboard_id IS NULL AND user_id = :user_id AND dashboard_id IS NULL
      AND hour >= :since AND hour < :now
    UNION ALL
    SELECT hour, samples, ia_efficiency_sum, model_accuracy_sum, processing_time_ms_sum, memory_usage_mb_sum, error_rate_sum, error_rate_max, sketch
    FROM metrics_hourly
    WHERE :dashboard_id IS NOT NULL AND dashboard_id = :dashboard_id AND (:user_id IS NULL OR user_id = :user_id)
      AND hour >= :since AND hour < :now
),
-- An hour's bucket is where it starts (the index by arithmetic, not a join on ranges).
rolled AS (
    SELECT b.i, r.*
    FROM rollups AS r
    CROSS JOIN origin AS o
    JOIN buckets AS b
      ON b.i = ((CAST(strftime('%s', substr(r.hour, 1, 19)) AS INTEGER) - o.seconds) * 1000000
                - o.fraction_micros) / (:bucket_seconds * 1000000)
    WHERE r.hour <= b.last_whole OR r.hour < o.horizon
),
-- The hours a bucket edge (the window's two included) cuts, where samples are kept.
points AS (
    SELECT e.j,
           strftime('%Y-%m-%dT%H:%M:%S', o.seconds + e.j * :bucket_seconds, 'unixepoch')
           || o.fraction AS point,
           strftime('%Y-%m-%dT%H:00:00.000000Z', o.seconds + e.j * :bucket_seconds + 3600, 'unixepoch')
           AS next_hour
    FROM edges AS e
    CROSS JOIN origin AS o
),
cut AS (
    SELECT p.j, p.point,
           max(substr(p.point, 1, 13) || ':00:00.000000Z', :since, o.horizon) AS lo,
           min(p.next_hour, :now) AS hi
    FROM points AS p
    CROSS JOIN origin AS o
    WHERE p.point <> substr(p.point, 1, 13) || ':00:00.000000Z'
),
-- One branch runs, by which arguments are given, each on its own index.
cut_samples AS (
    SELECT c.j, c.point, m."timestamp", m.ia_efficiency, m.model_accuracy, m.processing_time_ms,
           m.memory_usage_mb, m.error_rate
    FROM cut AS c
    JOIN metrics AS m
      ON m.dashboard_id = :dashboard_id AND m."timestamp" >= c.lo AND m."timestamp" < c.hi
    WHERE :dashboard_id IS NOT NULL AND (:user_id IS NULL OR m.user_id = :user_id)
    UNION ALL
    SELECT c.j, c.point, m."timestamp", m.ia_efficiency, m.model_accuracy, m.processing_time_ms,
           m.memory_usage_mb, m.error_rate
    FROM cut AS c
    JOIN metrics AS m
      ON m.user_id = :user_id AND m."timestamp" >= c.lo AND m."timestamp" < c.hi
    WHERE :dashboard_id IS NULL AND :user_id IS NOT NULL
    UNION ALL
    SELECT c.j, c.point, m."timestamp", m.ia_efficiency, m.model_accuracy, m.processing_time_ms,
           m.memory_usage_mb, m.error_rate
    FROM cut AS c
    JOIN metrics AS m ON m."timestamp" >= c.lo AND m."timestamp" < c.hi
    WHERE :dashboard_id IS NULL AND :user_id IS NULL
),
-- A cut hour's samples before its edge are the bucket's before the edge.
edge AS (
    SELECT CASE WHEN "timestamp" < point THEN j - 1 ELSE j END AS i,
           CASE WHEN processing_time_ms > 0
                THEN CAST(ceil(ln(processing_time_ms) / ln(101.0 / 99)) AS INTEGER)
                ELSE -2147483648 END AS bin,
           count(*) AS n,
           sum(ia_efficiency) AS ia_efficiency_sum,
           sum(model_accuracy) AS model_accuracy_sum,
           sum(processing_time_ms) AS processing_time_ms_sum,
           sum(memory_usage_mb) AS memory_usage_mb_sum,
           sum(error_rate) AS error_rate_sum,
           max(error_rate) AS error_rate_max
    FROM cut_samples
    GROUP BY 1, 2
),
parts AS (
    SELECT i, samples, ia_efficiency_sum, model_accuracy_sum, processing_time_ms_sum,
           memory_usage_mb_sum, error_rate_sum, error_rate_max
    FROM rolled
    UNION ALL
    SELECT i, n, ia_efficiency_sum, model_accuracy_sum, processing_time_ms_sum,
           memory_usage_mb_sum, error_rate_sum, error_rate_max
    FROM edge
),
sketches AS (
    SELECT i, json_group_array(bin) AS sketch_bins, json_group_array(n) AS sketch_counts
    FROM (
        SELECT r.i, CAST(k.key AS INTEGER) AS bin, k.value AS n
        FROM rolled AS r, json_each(r.sketch) AS k
        UNION ALL
        SELECT i, bin, n FROM edge
    )
    GROUP BY i
),
totals AS (
    SELECT i, sum(samples) AS samples, sum(ia_efficiency_sum) AS ia_efficiency,
           sum(model_accuracy_sum) AS model_accuracy,
           sum(processing_time_ms_sum) AS processing_time_ms,
           sum(memory_usage_mb_sum) AS memory_usage_mb, sum(error_rate_sum) AS error_rate,
           max(error_rate_max) AS error_rate_max
    FROM parts
    GROUP BY i
)
SELECT b.b_start AS bucket_start,
       coalesce(t.samples, 0) AS samples,
       t.ia_efficiency / t.samples AS ia_efficiency,
       t.model_accuracy / t.samples AS model_accuracy,
       t.processing_time_ms / t.samples AS processing_time_ms,
       t.memory_usage_mb / t.samples AS memory_usage_mb,
       t.error_rate / t.samples AS error_rate,
       NULL AS processing_time_p95_ms,
       t.error_rate_max,
       k.sketch_bins,
       k.sketch_counts,
       -- Whole sketches: every bin of a JSON object is parsed all the same, so reading only
       -- an hour's top `sketch_tail` bins (as PostgreSQL does) would save nothing here.
       CASE WHEN :sketch_tail > 0 THEN NULL END AS sketch_complete_from,
       nullif(o.horizon, '') AS pruned_before
FROM buckets AS b
CROSS JOIN origin AS o
LEFT JOIN totals AS t ON t.i = b.i
LEFT JOIN sketches AS k ON k.i = b.i
ORDER BY b.i;

-- name: dashboard_series_exact :many -> SeriesBucket
-- :buckets buckets of :bucket_seconds from :since (= :now - period) up to :now, gaps
-- included: means, p95 processing time (percentile_cont's linear interpolation, from window
-- functions) and the worst error rate, for one user, one dashboard, both or neither.
-- Times are compared as exact integer microseconds since the epoch: whole seconds from the
-- text without its fraction (SQLite would round the fraction to milliseconds) plus the six
-- digits of the fraction. pruned_before: where the raw samples kept start (NULL: all kept).
WITH RECURSIVE series (i) AS (
    SELECT 0
    UNION ALL
    SELECT i + 1 FROM series WHERE i + 1 < :buckets
),
origin AS (
    SELECT CAST(strftime('%s', substr(:since, 1, 19)) AS INTEGER) AS seconds,
           CAST(strftime('%s', substr(:since, 1, 19)) AS INTEGER) * 1000000
           + CAST(substr(:since, 21, 6) AS INTEGER) AS micros
),
samples AS (
    SELECT (CAST(strftime('%s', substr(m."timestamp", 1, 19)) AS INTEGER) * 1000000
            + CAST(substr(m."timestamp", 21, 6) AS INTEGER) - o.micros)
           / (:bucket_seconds * 1000000) AS i,
           m.ia_efficiency, m.model_accuracy, m.processing_time_ms, m.memory_usage_mb,
           m.error_rate
    FROM metrics AS m
    CROSS JOIN origin AS o
    WHERE m."timestamp" >= :since
      AND m."timestamp" < :now
      AND (:user_id IS NULL OR m.user_id = :user_id)
      AND (:dashboard_id IS NULL OR m.dashboard_id = :dashboard_id)
),
filled AS (
    SELECT i,
           count(*) AS samples,
           avg(ia_efficiency) AS ia_efficiency,
           avg(model_accuracy) AS model_accuracy,
           avg(processing_time_ms) AS processing_time_ms,
           avg(memory_usage_mb) AS memory_usage_mb,
           avg(error_rate) AS error_rate,
           max(error_rate) AS error_rate_max
    FROM samples
    GROUP BY i
),
ranked AS (
    SELECT i,
           processing_time_ms AS value,
           row_number() OVER (PARTITION BY i ORDER BY processing_time_ms) - 1 AS k,
           0.95 * (count(*) OVER (PARTITION BY i) - 1) AS h
    FROM samples
),
p95 AS (
    SELECT i,
           max(CASE WHEN k = CAST(h AS INTEGER) THEN value END)
           + (max(h) - CAST(max(h) AS INTEGER))
             * (coalesce(max(CASE WHEN k = CAST(h AS INTEGER) + 1 THEN value END),
                         max(CASE WHEN k = CAST(h AS INTEGER) THEN value END))
                - max(CASE WHEN k = CAST(h AS INTEGER) THEN value END)) AS value
    FROM ranked
    GROUP BY i
)
SELECT strftime('%Y-%m-%dT%H:%M:%S', o.seconds + s.i * :bucket_seconds, 'unixepoch')
       || '.' || substr(:since, 21, 6) || 'Z' AS bucket_start,
       coalesce(f.samples, 0) AS samples,
       f.ia_efficiency,
       f.model_accuracy,
       f.processing_time_ms,
       f.memory_usage_mb,
       f.error_rate,
       p95.value AS processing_time_p95_ms,
       f.error_rate_max,
       NULL AS sketch_bins,
       NULL AS sketch_counts,
       NULL AS sketch_complete_from,
       (SELECT pruned_before FROM metrics_retention) AS pruned_before
FROM series AS s
CROSS JOIN origin AS o
LEFT JOIN filled AS f ON f.i = s.i
LEFT JOIN p95 ON p95.i = s.i
ORDER BY s.i;
