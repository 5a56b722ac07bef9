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

-- name: dashboard_series :many -> MetricBucket
-- :buckets buckets of :bucket_seconds from :since (= :now - period) up to :now, gaps
-- included: means, p95 processing time (percentile_cont's linear interpolation, from window
-- functions) and the worst error rate, for one user, one dashboard, both or neither.
-- Times are compared as exact integer microseconds since the epoch: whole seconds from the
-- text without its fraction (SQLite would round the fraction to milliseconds) plus the six
-- digits of the fraction.
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
       f.error_rate_max
FROM series AS s
CROSS JOIN origin AS o
LEFT JOIN filled AS f ON f.i = s.i
LEFT JOIN p95 ON p95.i = s.i
ORDER BY s.i;
