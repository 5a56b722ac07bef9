-- Row-level security exists only on PostgreSQL: this version keeps the dialects' migration
-- numbers in step, and a scoped transaction on SQLite is refused with UsageError.
-- depends: 0005.audit_trail
SELECT 1;
