-- Row-level security for scoped transactions (db.transaction(actor=..., scoped=True)).
-- The role stratus_scoped sees and writes only the rows whose user_id is the transaction's
-- actor (stratus.actor_user_id); an actor whose role is admin may also read every row. With
-- no actor the policies match nothing: they fail closed. Other roles keep full access, so
-- unscoped service work goes on as before.
-- depends: 0005.audit_trail

-- A cluster-wide object, shared by every database on the server: created if missing,
-- never dropped by a rollback.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stratus_scoped') THEN
        CREATE ROLE stratus_scoped NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO stratus_scoped;
GRANT SELECT, INSERT, UPDATE, DELETE
    ON users, conversations, messages, messages_archive, memory_entries, dashboards, metrics
    TO stratus_scoped;
-- The audit triggers write as the scoped role; reading the trail is not a scoped task.
GRANT INSERT ON audit_log TO stratus_scoped;

CREATE FUNCTION stratus_actor() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT nullif(current_setting('stratus.actor_user_id', true), '')::uuid $$;

CREATE FUNCTION stratus_actor_is_admin() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT coalesce(current_setting('stratus.actor_is_admin', true), '') = 'on' $$;

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY users_unscoped ON users USING (current_user <> 'stratus_scoped');
CREATE POLICY users_own ON users TO stratus_scoped
    USING (user_id = stratus_actor()) WITH CHECK (user_id = stratus_actor());
CREATE POLICY users_admin_reads ON users FOR SELECT TO stratus_scoped
    USING (stratus_actor_is_admin());

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
CREATE POLICY conversations_unscoped ON conversations USING (current_user <> 'stratus_scoped');
CREATE POLICY conversations_own ON conversations TO stratus_scoped
    USING (user_id = stratus_actor()) WITH CHECK (user_id = stratus_actor());
CREATE POLICY conversations_admin_reads ON conversations FOR SELECT TO stratus_scoped
    USING (stratus_actor_is_admin());

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
CREATE POLICY messages_unscoped ON messages USING (current_user <> 'stratus_scoped');
-- A message is the actor's to write only in a conversation of the actor's.
CREATE POLICY messages_own ON messages TO stratus_scoped
    USING (user_id = stratus_actor())
    WITH CHECK (
        user_id = stratus_actor()
        AND EXISTS (
            SELECT 1 FROM conversations AS c
            WHERE c.conversation_id = messages.conversation_id AND c.user_id = stratus_actor()
        )
    );
CREATE POLICY messages_admin_reads ON messages FOR SELECT TO stratus_scoped
    USING (stratus_actor_is_admin());

ALTER TABLE messages_archive ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages_archive FORCE ROW LEVEL SECURITY;
CREATE POLICY messages_archive_unscoped ON messages_archive
    USING (current_user <> 'stratus_scoped');
CREATE POLICY messages_archive_own ON messages_archive TO stratus_scoped
    USING (user_id = stratus_actor())
    WITH CHECK (
        user_id = stratus_actor()
        AND EXISTS (
            SELECT 1 FROM conversations AS c
            WHERE c.conversation_id = messages_archive.conversation_id
              AND c.user_id = stratus_actor()
        )
    );
CREATE POLICY messages_archive_admin_reads ON messages_archive FOR SELECT TO stratus_scoped
    USING (stratus_actor_is_admin());

ALTER TABLE memory_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY memory_entries_unscoped ON memory_entries USING (current_user <> 'stratus_scoped');
CREATE POLICY memory_entries_own ON memory_entries TO stratus_scoped
    USING (user_id = stratus_actor()) WITH CHECK (user_id = stratus_actor());
CREATE POLICY memory_entries_admin_reads ON memory_entries FOR SELECT TO stratus_scoped
    USING (stratus_actor_is_admin());

ALTER TABLE dashboards ENABLE ROW LEVEL SECURITY;
ALTER TABLE dashboards FORCE ROW LEVEL SECURITY;
CREATE POLICY dashboards_unscoped ON dashboards USING (current_user <> 'stratus_scoped');
CREATE POLICY dashboards_own ON dashboards TO stratus_scoped
    USING (user_id = stratus_actor()) WITH CHECK (user_id = stratus_actor());
CREATE POLICY dashboards_admin_reads ON dashboards FOR SELECT TO stratus_scoped
    USING (stratus_actor_is_admin());

ALTER TABLE metrics ENABLE ROW LEVEL SECURITY;
ALTER TABLE metrics FORCE ROW LEVEL SECURITY;
CREATE POLICY metrics_unscoped ON metrics USING (current_user <> 'stratus_scoped');
CREATE POLICY metrics_own ON metrics TO stratus_scoped
    USING (user_id = stratus_actor()) WITH CHECK (user_id = stratus_actor());
CREATE POLICY metrics_admin_reads ON metrics FOR SELECT TO stratus_scoped
    USING (stratus_actor_is_admin());
