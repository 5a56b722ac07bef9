-- Agent memory search: accent-insensitive Portuguese full-text search and trigram
-- similarity over each entry's key and value, and a notification on every change that
-- in-process caches listen to.
-- depends: 0002.conversation_history

-- unaccent() is only STABLE (its dictionary could change); pinning the dictionary makes this
-- wrapper safe to declare IMMUTABLE, which generated columns and indexes require.
CREATE FUNCTION stratus_unaccent(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$;

-- The text searched: the key with '_' as a space, then the value (a JSON string's text,
-- or the JSON of anything else), lowercased and without accents.
ALTER TABLE memory_entries
    ADD COLUMN search_text text GENERATED ALWAYS AS (
        lower(stratus_unaccent(translate(key, '_', ' ') || ' ' || coalesce(value #>> '{}', '')))
    ) STORED,
    ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
        to_tsvector(
            'portuguese'::regconfig,
            stratus_unaccent(translate(key, '_', ' ') || ' ' || coalesce(value #>> '{}', ''))
        )
    ) STORED;
CREATE INDEX memory_entries_search_vector_idx ON memory_entries USING gin (search_vector);
CREATE INDEX memory_entries_search_trgm_idx ON memory_entries
    USING gin (search_text gin_trgm_ops);

-- Tell listeners whose memories changed (the payload is the user id). Counting an access
-- changes none of these columns, so reads do not wake anyone.
CREATE FUNCTION memory_entries_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('stratus_memory', coalesce(NEW.user_id, OLD.user_id)::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER memory_entries_notify
    AFTER INSERT OR DELETE OR UPDATE OF user_id, memory_type, key, value, importance_score,
        expires_at
    ON memory_entries
    FOR EACH ROW EXECUTE FUNCTION memory_entries_notify();
