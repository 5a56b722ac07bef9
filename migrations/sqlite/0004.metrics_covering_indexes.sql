-- The per-user and per-dashboard metric indexes carry the five statistics, so a series
-- reads them from the index alone (covering indexes).
-- depends: 0003.memory_search

DROP INDEX metrics_user_time_idx;
CREATE INDEX metrics_user_time_idx ON metrics (
    user_id, "timestamp", ia_efficiency, model_accuracy, processing_time_ms, memory_usage_mb,
    error_rate
);
DROP INDEX metrics_dashboard_time_idx;
CREATE INDEX metrics_dashboard_time_idx ON metrics (
    dashboard_id, "timestamp", ia_efficiency, model_accuracy, processing_time_ms,
    memory_usage_mb, error_rate
) WHERE dashboard_id IS NOT NULL;
