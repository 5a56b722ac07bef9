DROP TRIGGER memory_entries_fts_delete;
DROP TRIGGER memory_entries_fts_update;
DROP TRIGGER memory_entries_fts_insert;
DROP TABLE memory_entries_fts;
DROP TABLE memory_search_ids;
