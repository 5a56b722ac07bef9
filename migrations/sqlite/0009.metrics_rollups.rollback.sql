DROP INDEX metrics_time_idx;
CREATE INDEX metrics_time_idx ON metrics ("timestamp");
DROP TABLE metrics_hourly;
DROP TABLE metrics_retention;
