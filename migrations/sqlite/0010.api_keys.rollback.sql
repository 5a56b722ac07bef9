DROP TRIGGER api_keys_audit_update;
DROP TRIGGER api_keys_audit_delete;
DROP TRIGGER api_keys_audit_insert;
DROP TABLE api_keys;
