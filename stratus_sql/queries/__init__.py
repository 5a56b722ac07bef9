"""Typed query functions, one module per domain: `from stratus_sql.queries import users`."""
