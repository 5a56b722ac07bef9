DROP TABLE messages_archive;
DROP TRIGGER messages_count_in_conversation ON messages;
DROP FUNCTION messages_count_in_conversation();
