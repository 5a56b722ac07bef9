-- Drops everything 0001 created but the extensions (see 0001).
DROP TABLE metrics;
DROP TABLE dashboards;
DROP TABLE audit_log;
DROP TABLE memory_entries;
DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE users;
DROP FUNCTION jsonb_merge_patch(jsonb, jsonb);
DROP TYPE memory_type;
DROP TYPE message_type;
DROP TYPE conversation_status;
DROP TYPE user_role;
