DROP TABLE audit_seals;
DROP TRIGGER audit_log_no_truncate ON audit_log;
DROP TRIGGER audit_log_append_only ON audit_log;
DROP FUNCTION audit_append_only();
DROP TRIGGER dashboards_audit ON dashboards;
DROP TRIGGER memory_entries_audit ON memory_entries;
DROP TRIGGER conversations_audit ON conversations;
DROP TRIGGER users_audit ON users;
DROP FUNCTION audit_row_change();
