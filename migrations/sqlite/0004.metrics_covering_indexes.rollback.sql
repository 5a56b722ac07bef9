DROP INDEX metrics_dashboard_time_idx;
CREATE INDEX metrics_dashboard_time_idx ON metrics (dashboard_id, "timestamp")
    WHERE dashboard_id IS NOT NULL;
DROP INDEX metrics_user_time_idx;
CREATE INDEX metrics_user_time_idx ON metrics (user_id, "timestamp");
