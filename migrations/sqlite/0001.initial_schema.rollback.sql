-- Drops everything 0001 created.
DROP TABLE metrics;
DROP TABLE dashboards;
DROP TABLE audit_log;
DROP TABLE memory_entries;
DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE users;
