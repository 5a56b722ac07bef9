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

-- name: rollup_high_water :scalar
-- Unused on PostgreSQL, where the trigger metrics_roll_up keeps the rollups.
SELECT 0::bigint;

-- name: roll_up :execrows writes
-- Unused on PostgreSQL, where the trigger metrics_roll_up keeps the rollups.
SELECT WHERE :after::bigint IS NULL AND :from_hour::timestamptz IS NULL;

-- name: clear_rollups :execrows writes
-- Unused on PostgreSQL: metrics_rebuild_rollups() clears what it recomputes.
SELECT WHERE :from_hour::timestamptz IS NULL;

-- name: retention :scalar
-- Where the raw samples kept start (NULL: none was pruned).
SELECT pruned_before FROM metrics_retention;

-- name: prune_batch :execrows writes
-- The samples before :before that metrics_prune() left (none: it drops them in one go);
-- :high_water and :batch only bound SQLite's batches.
DELETE FROM metrics WHERE "timestamp" < :before::timestamptz
  AND :high_water::bigint >= 0 AND :batch::integer > 0;

-- name: maintain :scalar writes
-- Make the monthly metrics partitions up to :months_ahead months from now, and those of the
-- months whose samples sit in metrics_default.
SELECT metrics_add_partitions(:months_ahead, (SELECT min("timestamp") FROM metrics_default));

-- name: prune :scalar writes
-- Drop the raw samples before :before (whole monthly partitions); the rollups stay.
SELECT metrics_prune((:before::timestamptz AT TIME ZONE 'UTC')::date);

-- name: rebuild_rollups :scalar writes
-- Recompute the rollups of the hours from :since (NULL: all) from the samples kept.
SELECT metrics_rebuild_rollups(:since);

-- name: dashboard_series :many -> SeriesBucket
-- The series of dashboard_series_exact from the hourly rollups: a bucket takes the rollups of
-- the whole hours inside it, and its parts of the hours a bucket edge cuts. Of a cut hour,
-- the samples of one side of the edge are read (at the window's end the side after `now`,
-- else the shorter), and the other side is the hour's rollup less them: counts, sums and
-- sketch counts subtract exactly. Its worst error rate is the hour's when the side read
-- does not hold it, or when no sample of that side could raise its bucket's worst above the
-- whole hours' (the hour's worst is no higher); otherwise, or when the side read holds as
-- many samples as the hour's rollup or over 3/4 of a sum (the difference would lose more
-- than float rounding), that side is read too.
-- The sketches of processing time come end to end (`sketch_bins`, `sketch_counts`, the
-- counts of a side subtracted negative): the layer adds up each bin's counts and estimates
-- p95 from them. Each hour gives only its top `sketch_tail` bins; `sketch_complete_from`
-- is the highest of the lowest bins kept by the hours that left some out (NULL: none did),
-- from which the counts are complete.
-- An hour whose samples were pruned counts whole in the bucket where it starts.
WITH params AS (
    SELECT :since::timestamptz AS since,
           :now::timestamptz AS until,
           make_interval(secs => :bucket_seconds) AS width,
           coalesce((SELECT pruned_before FROM metrics_retention), '-infinity') AS horizon
),
series AS (
    SELECT i, p.since + i * p.width AS b_start, p.since + (i + 1) * p.width AS b_end
    FROM params AS p, generate_series(0, :buckets - 1) AS i
),
rollups AS (
    SELECT hour, samples, ia_efficiency_sum, model_accuracy_sum, processing_time_ms_sum,
           memory_usage_mb_sum, error_rate_sum, error_rate_max, sketch_bins, sketch_counts
    FROM metrics_hourly
    WHERE :user_id::uuid IS NULL AND :dashboard_id::uuid IS NULL
      AND user_id IS NULL AND dashboard_id IS NULL
      AND hour >= date_trunc('hour', :since::timestamptz, 'UTC') AND hour < :now::timestamptz
      AND NOT (current_user = 'stratus_scoped' AND NOT stratus_actor_is_admin())
    UNION ALL
    -- A scoped actor who is no admin sees only their own samples, so the organisation's
    -- series is theirs (as exact=True reads it under row-level security).
    SELECT hour, samples, ia_efficiency_sum, model_accuracy_sum, processing_time_ms_sum,
           memory_usage_mb_sum, error_rate_sum, error_rate_max, sketch_bins, sketch_counts
    FROM metrics_hourly
    WHERE :user_id::uuid IS NULL AND :dashboard_id::uuid IS NULL
      AND current_user = 'stratus_scoped' AND NOT stratus_actor_is_admin()
      AND user_id = stratus_actor() AND dashboard_id IS NULL
      AND hour >= date_trunc('hour', :since::timestamptz, 'UTC') AND hour < :now::timestamptz
    UNION ALL
    SELECT hour, samples, ia_efficiency_sum, model_accuracy_sum, processing_time_ms_sum,
           memory_usage_mb_sum, error_rate_sum, error_rate_max, sketch_bins, sketch_counts
    FROM metrics_hourly
    WHERE :user_id::uuid IS NOT NULL AND :dashboard_id::uuid IS NULL
      AND user_id = :user_id::uuid AND dashboard_id IS NULL
      AND hour >= date_trunc('hour', :since::timestamptz, 'UTC') AND hour < :now::timestamptz
    UNION ALL
    SELECT hour, samples, ia_efficiency_sum, model_accuracy_sum, processing_time_ms_sum,
           memory_usage_mb_sum, error_rate_sum, error_rate_max, sketch_bins, sketch_counts
    FROM metrics_hourly
    WHERE :dashboard_id::uuid IS NOT NULL
      AND dashboard_id = :dashboard_id::uuid
      AND (:user_id::uuid IS NULL OR user_id = :user_id::uuid)
      AND hour >= date_trunc('hour', :since::timestamptz, 'UTC') AND hour < :now::timestamptz
),
-- Each hour's top bins, and the lowest of them when others are left out.
hours AS (
    SELECT r.hour, r.samples, r.ia_efficiency_sum, r.model_accuracy_sum,
           r.processing_time_ms_sum, r.memory_usage_mb_sum, r.error_rate_sum, r.error_rate_max,
           r.sketch_bins[f.first:] AS sketch_bins, r.sketch_counts[f.first:] AS sketch_counts,
           CASE WHEN f.first > 1 THEN r.sketch_bins[f.first] END AS complete_from
    FROM rollups AS r
    CROSS JOIN LATERAL (
        SELECT greatest(cardinality(r.sketch_bins) - :sketch_tail::integer + 1, 1) AS first
    ) AS f
),
-- The whole hours of each bucket (an hour's bucket by arithmetic, exact to the microsecond).
rolled AS (
    SELECT b.i, h.*
    FROM hours AS h
    CROSS JOIN params AS p
    CROSS JOIN LATERAL (
        SELECT floor(date_part('epoch', h.hour - p.since) / :bucket_seconds)::integer AS i
    ) AS b
    WHERE h.hour >= p.since
      AND (h.hour + interval '1 hour' <= p.since + (b.i + 1) * p.width
           OR h.hour + interval '1 hour' <= p.horizon)
),
-- The hours a bucket edge (the window's two included) cuts, where samples are kept: the side
-- before the edge is bucket j - 1's, the side from it bucket j's (outside the window at
-- its two ends). `k` numbers the side read.
cut AS (
    SELECT row_number() OVER (ORDER BY h.hour) AS k, j - 1 AS i_before, j AS i_after,
           h.hour, e.edge, s.read_before,
           CASE WHEN s.read_before THEN h.hour ELSE e.edge END AS lo,
           CASE WHEN s.read_before THEN e.edge ELSE h.hour + interval '1 hour' END AS hi,
           CASE WHEN s.read_before THEN j ELSE j - 1 END AS i_other
    FROM params AS p
    CROSS JOIN generate_series(0, :buckets) AS j
    CROSS JOIN LATERAL (SELECT p.since + j * p.width AS edge) AS e
    CROSS JOIN LATERAL (SELECT date_trunc('hour', e.edge, 'UTC') AS hour) AS h
    CROSS JOIN LATERAL (
        SELECT j < :buckets AND e.edge - h.hour < h.hour + interval '1 hour' - e.edge
            AS read_before
    ) AS s
    WHERE h.hour <> e.edge AND h.hour >= p.horizon
),
read AS (
    SELECT c.k, g.*
    FROM metrics_cut_parts(
        ARRAY(SELECT lo FROM cut ORDER BY k), ARRAY(SELECT hi FROM cut ORDER BY k),
        :user_id::uuid, :dashboard_id::uuid
    ) AS g
    JOIN cut AS c ON c.k = g.part
),
read_totals AS (
    SELECT k, sum(samples) AS samples, sum(ia_efficiency_sum) AS ia_efficiency_sum,
           sum(model_accuracy_sum) AS model_accuracy_sum,
           sum(processing_time_ms_sum) AS processing_time_ms_sum,
           sum(memory_usage_mb_sum) AS memory_usage_mb_sum,
           sum(error_rate_sum) AS error_rate_sum, max(error_rate_max) AS error_rate_max
    FROM read
    GROUP BY k
),
-- The other side of each cut hour that has a rollup and lies in the window, and whether its
-- worst error rate must be read.
other AS (
    SELECT c.k, c.i_other, h.*, t.samples AS read_samples,
           t.ia_efficiency_sum AS read_ia_efficiency_sum,
           t.model_accuracy_sum AS read_model_accuracy_sum,
           t.processing_time_ms_sum AS read_processing_time_ms_sum,
           t.memory_usage_mb_sum AS read_memory_usage_mb_sum,
           t.error_rate_sum AS read_error_rate_sum,
           (t.error_rate_max >= h.error_rate_max
               AND h.error_rate_max > coalesce(
                   (SELECT max(w.error_rate_max) FROM rolled AS w WHERE w.i = c.i_other),
                   '-infinity'))
           -- A difference is only taken of fewer samples than the hour's (so the other
           -- side is never empty, nor negative where the rollups fall short of the samples),
           -- and loses no more than float rounding while the side read holds at most 3/4 of
           -- each sum (the statistics are never negative).
           OR t.samples >= h.samples
           OR t.ia_efficiency_sum > 0.75 * h.ia_efficiency_sum
           OR t.model_accuracy_sum > 0.75 * h.model_accuracy_sum
           OR t.processing_time_ms_sum > 0.75 * h.processing_time_ms_sum
           OR t.memory_usage_mb_sum > 0.75 * h.memory_usage_mb_sum
           OR t.error_rate_sum > 0.75 * h.error_rate_sum AS read_too,
           CASE WHEN c.read_before THEN c.edge ELSE c.hour END AS other_lo,
           CASE WHEN c.read_before THEN c.hour + interval '1 hour' ELSE c.edge END AS other_hi
    FROM cut AS c
    JOIN hours AS h ON h.hour = c.hour
    LEFT JOIN read_totals AS t ON t.k = c.k
    WHERE c.i_other BETWEEN 0 AND :buckets - 1
),
other_read AS (
    SELECT o.i_other AS i, g.*
    FROM metrics_cut_parts(
        ARRAY(SELECT other_lo FROM other WHERE read_too ORDER BY k),
        ARRAY(SELECT other_hi FROM other WHERE read_too ORDER BY k),
        :user_id::uuid, :dashboard_id::uuid
    ) AS g
    JOIN (SELECT row_number() OVER (ORDER BY k) AS part, i_other FROM other WHERE read_too)
        AS o ON o.part = g.part
),
parts AS (
    SELECT i, samples, ia_efficiency_sum, model_accuracy_sum, processing_time_ms_sum,
           memory_usage_mb_sum, error_rate_sum, error_rate_max
    FROM rolled
    UNION ALL
    SELECT CASE WHEN c.read_before THEN c.i_before ELSE c.i_after END, r.samples,
           r.ia_efficiency_sum, r.model_accuracy_sum, r.processing_time_ms_sum,
           r.memory_usage_mb_sum, r.error_rate_sum, r.error_rate_max
    FROM read AS r
    JOIN cut AS c ON c.k = r.k
    UNION ALL
    SELECT i, samples, ia_efficiency_sum, model_accuracy_sum, processing_time_ms_sum,
           memory_usage_mb_sum, error_rate_sum, error_rate_max
    FROM other_read
    UNION ALL
    SELECT i_other, samples - coalesce(read_samples, 0),
           ia_efficiency_sum - coalesce(read_ia_efficiency_sum, 0),
           model_accuracy_sum - coalesce(read_model_accuracy_sum, 0),
           processing_time_ms_sum - coalesce(read_processing_time_ms_sum, 0),
           memory_usage_mb_sum - coalesce(read_memory_usage_mb_sum, 0),
           error_rate_sum - coalesce(read_error_rate_sum, 0),
           error_rate_max
    FROM other
    WHERE NOT coalesce(read_too, false)
),
sketch_parts AS (
    SELECT i, sketch_bins, sketch_counts, complete_from FROM rolled
    UNION ALL
    SELECT CASE WHEN c.read_before THEN c.i_before ELSE c.i_after END,
           array_agg(r.bin), array_agg(r.samples), NULL
    FROM read AS r
    JOIN cut AS c ON c.k = r.k
    GROUP BY 1
    UNION ALL
    SELECT i, array_agg(bin), array_agg(samples), NULL FROM other_read GROUP BY i
    UNION ALL
    -- The other side: the hour's sketch less the side read.
    SELECT o.i_other, o.sketch_bins || coalesce(r.bins, '{}'),
           o.sketch_counts || coalesce(r.counts, '{}'), o.complete_from
    FROM other AS o
    LEFT JOIN (
        SELECT k, array_agg(bin) AS bins, array_agg(-samples) AS counts FROM read GROUP BY k
    ) AS r ON r.k = o.k
    WHERE NOT coalesce(o.read_too, false)
),
sketches AS (
    SELECT i, metrics_concat(sketch_bins) AS sketch_bins,
           metrics_concat(sketch_counts) AS sketch_counts, max(complete_from) AS complete_from
    FROM sketch_parts
    WHERE i BETWEEN 0 AND :buckets - 1
    GROUP BY i
),
totals AS (
    SELECT i, sum(samples) AS samples, sum(ia_efficiency_sum) AS ia_efficiency,
           sum(model_accuracy_sum) AS model_accuracy,
           sum(processing_time_ms_sum) AS processing_time_ms,
           sum(memory_usage_mb_sum) AS memory_usage_mb, sum(error_rate_sum) AS error_rate,
           max(error_rate_max) AS error_rate_max
    FROM parts
    WHERE i BETWEEN 0 AND :buckets - 1
    GROUP BY i
)
SELECT s.b_start AS bucket_start,
       coalesce(t.samples, 0) AS samples,
       t.ia_efficiency / t.samples AS ia_efficiency,
       t.model_accuracy / t.samples AS model_accuracy,
       t.processing_time_ms / t.samples AS processing_time_ms,
       t.memory_usage_mb / t.samples AS memory_usage_mb,
       t.error_rate / t.samples AS error_rate,
       NULL::double precision AS processing_time_p95_ms,
       t.error_rate_max,
       k.sketch_bins,
       k.sketch_counts,
       k.complete_from AS sketch_complete_from,
       nullif(p.horizon, '-infinity') AS pruned_before
FROM series AS s
CROSS JOIN params AS p
LEFT JOIN totals AS t ON t.i = s.i
LEFT JOIN sketches AS k ON k.i = s.i
ORDER BY s.i;

-- name: dashboard_series_exact :many -> SeriesBucket
-- :buckets buckets of :bucket_seconds from :since (= :now - period) up to :now, gaps
-- included: means, p95 processing time (percentile_cont) and the worst error rate, for one
-- user, one dashboard, both or neither. Each bucket aggregates its own index range (an
-- aggregate without GROUP BY yields its row even when empty): 30 small index-only scans
-- and in-memory sorts instead of one sort of the whole window (bench/RESULTS.md). The
-- bucket edges are materialised: computed inline (timestamptz + interval is not leakproof)
-- they could not be index conditions under row-level security, and each bucket of a
-- scoped read would scan the whole index range of its dashboard.
-- pruned_before: where the raw samples kept start (NULL: all kept).
WITH series AS MATERIALIZED (
    SELECT :since::timestamptz + i * make_interval(secs => :bucket_seconds) AS bucket_start,
           least(:since::timestamptz + (i + 1) * make_interval(secs => :bucket_seconds),
                 :now::timestamptz) AS bucket_end
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
       b.error_rate_max,
       NULL::integer[] AS sketch_bins,
       NULL::bigint[] AS sketch_counts,
       NULL::integer AS sketch_complete_from,
       (SELECT pruned_before FROM metrics_retention) AS pruned_before
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
      AND m."timestamp" < s.bucket_end
      AND (:user_id::uuid IS NULL OR m.user_id = :user_id::uuid)
      AND (:dashboard_id::uuid IS NULL OR m.dashboard_id = :dashboard_id::uuid)
) AS b
ORDER BY s.bucket_start;
