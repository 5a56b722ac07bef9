-- Conversation history: counters kept by the database as messages arrive, and the archive
-- that compaction moves older messages into.
-- depends: 0001.initial_schema

-- Every message inserted counts in its conversation, whoever inserts it, in the same
-- statement: message_count, total_tokens, and updated_at (the message's own time).
CREATE TRIGGER messages_count_in_conversation
AFTER INSERT ON messages
BEGIN
    UPDATE conversations
    SET message_count = message_count + 1,
        total_tokens = total_tokens + NEW.tokens_used,
        updated_at = max(updated_at, NEW.created_at)
    WHERE conversation_id = NEW.conversation_id;
END;

-- Messages moved out of a conversation's live history by compaction. They still count in
-- the conversation's counters and in usage statistics.
CREATE TABLE messages_archive (
    message_id      TEXT NOT NULL PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (conversation_id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    agent_name      TEXT,
    message_type    TEXT NOT NULL,
    content         TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    tokens_used     INTEGER NOT NULL,
    response_time   REAL,
    created_at      TEXT NOT NULL,
    archived_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
) STRICT;
CREATE INDEX messages_archive_conversation_idx
    ON messages_archive (conversation_id, created_at DESC, message_id DESC);
CREATE INDEX messages_archive_user_created_idx ON messages_archive (user_id, created_at);
