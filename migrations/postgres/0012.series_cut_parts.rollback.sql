-- metrics_between as 0011 left it.

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
    SELECT m.*
    FROM unnest(los, his) AS c (lo, hi)
    CROSS JOIN LATERAL (
        SELECT m."timestamp", m.ia_efficiency, m.model_accuracy, m.processing_time_ms,
               m.memory_usage_mb, m.error_rate
        FROM metrics AS m
        WHERE did IS NOT NULL AND m.dashboard_id = did AND (uid IS NULL OR m.user_id = uid)
          AND m."timestamp" >= c.lo AND m."timestamp" < c.hi
        OFFSET 0
    ) AS m
    UNION ALL
    SELECT m.*
    FROM unnest(los, his) AS c (lo, hi)
    CROSS JOIN LATERAL (
        SELECT m."timestamp", m.ia_efficiency, m.model_accuracy, m.processing_time_ms,
               m.memory_usage_mb, m.error_rate
        FROM metrics AS m
        WHERE did IS NULL AND uid IS NOT NULL AND m.user_id = uid
          AND m."timestamp" >= c.lo AND m."timestamp" < c.hi
        OFFSET 0
    ) AS m
    UNION ALL
    SELECT m.*
    FROM unnest(los, his) AS c (lo, hi)
    CROSS JOIN LATERAL (
        SELECT m."timestamp", m.ia_efficiency, m.model_accuracy, m.processing_time_ms,
               m.memory_usage_mb, m.error_rate
        FROM metrics AS m
        WHERE did IS NULL AND uid IS NULL
          AND m."timestamp" >= c.lo AND m."timestamp" < c.hi
        OFFSET 0
    ) AS m
$$;

DROP FUNCTION metrics_cut_parts(timestamptz[], timestamptz[], uuid, uuid);
