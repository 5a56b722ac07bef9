-- Per-user API keys, stored only as the SHA-256 of the key (the key itself is shown once,
-- when it is made). Rows belong to their user as dashboards do: row-level security for the
-- scoped role, as 0006 sets up for every table of a user, and the audit trigger of 0005, so
-- making and revoking keys is in the trail (the hash left out of it).
-- depends: 0009.metrics_rollups

CREATE TABLE api_keys (
    key_id     uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    key_hash   bytea NOT NULL CHECK (octet_length(key_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
-- A user's keys, oldest first.
CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at);

CREATE TRIGGER api_keys_audit
    AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION audit_row_change('key_id', '', 'key_hash');

GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys TO stratus_scoped;
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_unscoped ON api_keys USING (current_user <> 'stratus_scoped');
CREATE POLICY api_keys_own ON api_keys TO stratus_scoped
    USING (user_id = stratus_actor()) WITH CHECK (user_id = stratus_actor());
CREATE POLICY api_keys_admin_reads ON api_keys FOR SELECT TO stratus_scoped
    USING (stratus_actor_is_admin());
