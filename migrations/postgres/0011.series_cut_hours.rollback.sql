-- metrics_between as 0009 made it: one join of the ranges with metrics.

CREATE OR REPLACE FUNCTION metrics_between(los timestamptz[], his timestamptz[], uid uuid, did uuid)
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
