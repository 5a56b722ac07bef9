DROP TRIGGER memory_entries_notify ON memory_entries;
DROP FUNCTION memory_entries_notify();
DROP INDEX memory_entries_search_trgm_idx;
DROP INDEX memory_entries_search_vector_idx;
ALTER TABLE memory_entries DROP COLUMN search_vector, DROP COLUMN search_text;
DROP FUNCTION stratus_unaccent(text);
