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
-- Bulk-load samples (binary COPY).
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
-- included: means, p95 processing time (percentile_cont) and the worst error rate, for one
-- user, one dashboard, both or neither. Each bucket aggregates its own index range (an
-- aggregate without GROUP BY yields its row even when empty): 30 small index-only scans
-- and in-memory sorts instead of one sort of the whole window (bench/RESULTS.md).
WITH series AS (
    SELECT :since::timestamptz + i * make_interval(secs => :bucket_seconds) AS bucket_start
    FROM generate_series(0, :buckets - 1) AS i
)
SELECT s.bucket_start,
       b.samples,
       b.ia_efficiency,
       b.model_accuracy,
       b.processing_time_ms,
       b.memory_usage_mb,
       b.error_rate,
       b.processing_time_p95_ms,
       b.error_rate_max
FROM series AS s
CROSS JOIN LATERAL (
    SELECT count(*) AS samples,
           avg(m.ia_efficiency) AS ia_efficiency,
           avg(m.model_accuracy) AS model_accuracy,
           avg(m.processing_time_ms) AS processing_time_ms,
           avg(m.memory_usage_mb) AS memory_usage_mb,
           avg(m.error_rate) AS error_rate,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY m.processing_time_ms)
               AS processing_time_p95_ms,
           max(m.error_rate) AS error_rate_max
    FROM metrics AS m
    WHERE m."timestamp" >= s.bucket_start
      AND m."timestamp" < s.bucket_start + make_interval(secs => :bucket_seconds)
      AND m."timestamp" < :now::timestamptz
      AND (:user_id::uuid IS NULL OR m.user_id = :user_id::uuid)
      AND (:dashboard_id::uuid IS NULL OR m.dashboard_id = :dashboard_id::uuid)
) AS b
ORDER BY s.bucket_start;
