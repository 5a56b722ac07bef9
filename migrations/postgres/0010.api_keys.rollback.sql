-- The table goes with its index, trigger, policies and grants.
DROP TABLE api_keys;
