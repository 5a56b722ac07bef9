-- name: lock_key_owner :one -> User
-- The user a key is being made for, locked against an erasure (which takes FOR UPDATE)
-- until the key is written; updates of other columns go on meanwhile.
SELECT user_id, name, email, role, licenses, experience_level, preferences,
       created_at, last_active
FROM users
WHERE user_id = :user_id
FOR KEY SHARE;

-- name: create_api_key :one -> ApiKey
-- Store a new key's id and the SHA-256 of the key (never the key).
INSERT INTO api_keys (key_id, user_id, key_hash, created_at)
VALUES (:key_id, :user_id, :key_hash, now())
RETURNING key_id, user_id, created_at, revoked_at;

-- name: list_api_keys :many -> ApiKey
-- A user's keys, oldest first, revoked ones included.
SELECT key_id, user_id, created_at, revoked_at
FROM api_keys
WHERE user_id = :user_id
ORDER BY created_at, key_id;

-- name: revoke_api_key :one -> ApiKey
-- Revoke a key; a key revoked already keeps the time it was first revoked.
UPDATE api_keys
SET revoked_at = coalesce(revoked_at, now())
WHERE key_id = :key_id
RETURNING key_id, user_id, created_at, revoked_at;

-- name: authenticate :one -> ApiKeyOwner
-- A key's owner, with the key's stored hash and revocation time, by key id.
SELECT u.user_id, u.name, u.email, u.role, u.licenses, u.experience_level, u.preferences,
       u.created_at, u.last_active, k.key_hash, k.revoked_at
FROM api_keys AS k
JOIN users AS u ON u.user_id = k.user_id
WHERE k.key_id = :key_id;

-- name: active_key_owner :one -> ApiKeyOwner
-- The same row as authenticate, for a key whose id alone is presented (a signed session):
-- the layer reads only its owner and revocation time.
SELECT u.user_id, u.name, u.email, u.role, u.licenses, u.experience_level, u.preferences,
       u.created_at, u.last_active, k.key_hash, k.revoked_at
FROM api_keys AS k
JOIN users AS u ON u.user_id = k.user_id
WHERE k.key_id = :key_id;
