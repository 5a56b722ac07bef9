-- Agent memory search: an FTS5 index over each entry's key and value, accent-insensitive
-- (unicode61 with remove_diacritics 2), kept in step with memory_entries by triggers.
-- depends: 0002.conversation_history

-- FTS5 rows are addressed by an integer rowid. memory_entries has no INTEGER PRIMARY KEY,
-- so its own rowids may change on VACUUM; this table gives each entry a stable one.
CREATE TABLE memory_search_ids (
    search_id INTEGER PRIMARY KEY,
    memory_id TEXT NOT NULL UNIQUE
) STRICT;

-- The key with '_' as a space, and the value: a JSON string's text, or the JSON of
-- anything else (true, 42, {...}), as Postgres's `value #>> '{}'` gives it.
CREATE VIRTUAL TABLE memory_entries_fts USING fts5(
    key, value, tokenize = 'unicode61 remove_diacritics 2'
);

-- Entries stored before this migration.
INSERT INTO memory_search_ids (memory_id) SELECT memory_id FROM memory_entries;
INSERT INTO memory_entries_fts (rowid, key, value)
SELECT s.search_id, replace(m.key, '_', ' '), CASE json_type(m.value) WHEN 'text' THEN json_extract(m.value, '$') ELSE m.value END
FROM memory_entries AS m
JOIN memory_search_ids AS s ON s.memory_id = m.memory_id;

CREATE TRIGGER memory_entries_fts_insert
AFTER INSERT ON memory_entries
BEGIN
    INSERT INTO memory_search_ids (memory_id) VALUES (NEW.memory_id);
    INSERT INTO memory_entries_fts (rowid, key, value)
    VALUES (
        (SELECT search_id FROM memory_search_ids WHERE memory_id = NEW.memory_id),
        replace(NEW.key, '_', ' '),
        CASE json_type(NEW.value) WHEN 'text' THEN json_extract(NEW.value, '$') ELSE NEW.value END
    );
END;

CREATE TRIGGER memory_entries_fts_update
AFTER UPDATE OF key, value ON memory_entries
BEGIN
    UPDATE memory_entries_fts
    SET key = replace(NEW.key, '_', ' '), value = CASE json_type(NEW.value) WHEN 'text' THEN json_extract(NEW.value, '$') ELSE NEW.value END
    WHERE rowid = (SELECT search_id FROM memory_search_ids WHERE memory_id = NEW.memory_id);
END;

CREATE TRIGGER memory_entries_fts_delete
AFTER DELETE ON memory_entries
BEGIN
    DELETE FROM memory_entries_fts
    WHERE rowid = (SELECT search_id FROM memory_search_ids WHERE memory_id = OLD.memory_id);
    DELETE FROM memory_search_ids WHERE memory_id = OLD.memory_id;
END;
