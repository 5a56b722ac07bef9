-- Drops everything 0001 created.
DROP TRIGGER metrics_dashboard_owner_update;
DROP TRIGGER metrics_dashboard_owner_insert;
DROP TABLE metrics;
DROP TABLE dashboards;
DROP TABLE audit_log;
DROP TABLE memory_entries;
DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE users;
