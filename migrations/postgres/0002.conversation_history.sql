-- Conversation history: counters kept by the database as messages arrive, and the archive
-- that compaction moves older messages into.
-- depends: 0001.initial_schema

-- Every message inserted counts in its conversation, whoever inserts it, in the same
-- statement: message_count, total_tokens, and updated_at (the message's own time).
CREATE FUNCTION messages_count_in_conversation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations
    SET message_count = message_count + 1,
        total_tokens = total_tokens + NEW.tokens_used,
        updated_at = greatest(updated_at, NEW.created_at)
    WHERE conversation_id = NEW.conversation_id;
    IF NOT FOUND THEN  -- hidden by row-level security: never leave a message uncounted
        RAISE EXCEPTION 'the conversation of message % cannot be updated', NEW.message_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_count_in_conversation
    AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION messages_count_in_conversation();

-- Messages moved out of a conversation's live history by compaction. They still count in
-- the conversation's counters and in usage statistics.
CREATE TABLE messages_archive (
    message_id      uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    agent_name      text,
    message_type    message_type NOT NULL,
    content         text NOT NULL,
    metadata        jsonb NOT NULL,
    tokens_used     integer NOT NULL,
    response_time   double precision,
    created_at      timestamptz NOT NULL,
    archived_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_archive_conversation_idx
    ON messages_archive (conversation_id, created_at DESC, message_id DESC);
CREATE INDEX messages_archive_user_created_idx ON messages_archive (user_id, created_at);
