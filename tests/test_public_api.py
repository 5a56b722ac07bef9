"""The public names are exactly the documented ones."""

from __future__ import annotations

import stratus_sql
from stratus_sql import errors
from stratus_sql.queries import api_keys, audit, conversations, dashboards, memory, metrics, users

PUBLIC = {
    "Actor",
    "AlreadyExists",
    "CommitUnknown",
    "ConfigError",
    "Conflict",
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "Executor",
    "InvalidInput",
    "JsonFormatter",
    "NotFound",
    "PoolExhausted",
    "QueryFileError",
    "QueryTimeout",
    "RollbackWouldLoseData",
    "SamplesPruned",
    "Settings",
    "StratusError",
    "UsageError",
    "apply_migrations",
    "connect",
    "errors",
    "migration_status",
    "records",
    "rollback_migrations",
    "trace",
}


def test_package_exports_exactly_the_documented_names() -> None:
    assert set(stratus_sql.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(stratus_sql, name)


def test_users_module_exports_its_query_functions() -> None:
    assert set(users.__all__) == {
        "create_user",
        "erase_user",
        "export_user_data",
        "fold_email",
        "get_user",
        "get_user_by_email",
        "list_users",
        "touch_last_active",
        "update_preferences",
    }


def test_error_hierarchy() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.StratusError)
    assert issubclass(errors.InvalidInput, ValueError)
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.NotFound, LookupError)
    assert errors.AlreadyExists("x", constraint="users_email_key").constraint == "users_email_key"


def test_conversations_and_memory_modules_export_their_query_functions() -> None:
    assert set(conversations.__all__) == {
        "add_message",
        "archive_conversation",
        "compact_conversation",
        "create_conversation",
        "delete_conversation",
        "get_conversation",
        "list_archived_messages",
        "list_conversations",
        "list_messages",
        "message_cursor",
        "purge_conversations",
        "usage_stats",
    }
    assert set(memory.__all__) == {
        "forget_memory",
        "get_memory",
        "purge_expired",
        "search_memories",
        "store_memory",
    }
    assert set(dashboards.__all__) == {
        "create_dashboard",
        "delete_dashboard",
        "get_dashboard",
        "get_dashboard_by_name",
        "list_all_dashboards",
        "list_dashboards",
        "rename_dashboard",
    }
    assert set(api_keys.__all__) == {
        "active_key_owner",
        "authenticate",
        "create_api_key",
        "list_api_keys",
        "revoke_api_key",
    }
    assert set(metrics.__all__) == {
        "PERIODS",
        "dashboard_series",
        "maintain",
        "prune",
        "rebuild_rollups",
        "record_metric",
        "record_metrics",
    }
    assert set(audit.__all__) == {
        "AUDITED_TABLES",
        "Verification",
        "list_audit",
        "maintain",
        "prune",
        "reseal",
        "row_digest",
        "seal",
        "verify",
    }
    for module in (api_keys, audit, conversations, dashboards, memory, metrics, users):
        for name in module.__all__:
            assert name in ("PERIODS", "AUDITED_TABLES") or callable(getattr(module, name))
