"""Emails are folded (NFC; the local part with full Unicode case folding, the domain
lowercased; NFC again), so straße@x.com and STRASSE@X.COM are one address as Ä and ä
already were, and are unique as stored. The layer folds in Python because neither
PostgreSQL 15 nor SQLite can case-fold in SQL; that is why this migration, unlike the
others, is Python.

Rows stored before, lowercased, are folded here. If two users' emails fold to one address the
migration stops, changing nothing, and names them: change one, then migrate again. The
rollback restores the index on lower(email); the folded emails stay as they are.
"""

import unicodedata
from datetime import UTC, datetime

from yoyo import step

from stratus_sql.errors import AlreadyExists, InvalidInput

__depends__ = {"0007.audit_partitions"}


def _fold(email):
    # The local part case-folded, the domain lowercased (IDNA keeps ß apart from ss there).
    local, at, domain = unicodedata.normalize("NFC", email.strip()).rpartition("@")
    folded = f"{local.casefold()}{at}{domain.lower()}" if at else domain.casefold()
    return unicodedata.normalize("NFC", folded)


def fold_emails(conn):
    # The audit triggers the UPDATEs fire call these; the changes they record have no actor.
    now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    conn.create_function("now_utc", 0, lambda: now)
    conn.create_function("stratus_get", 1, lambda name: None)
    cursor = conn.cursor()
    cursor.execute("SELECT user_id, email FROM users")
    rows = cursor.fetchall()
    owners = {}
    for user_id, email in rows:
        owners.setdefault(_fold(email), []).append(str(user_id))
    too_long = sorted(str(u) for u, email in rows if len(_fold(email)) > 254)
    if too_long:
        raise InvalidInput(
            f"emails of users {', '.join(too_long)} grow past 254 characters once folded: "
            "shorten them, then migrate again"
        )
    shared = {address: ids for address, ids in owners.items() if len(ids) > 1}
    if shared:
        listed = "; ".join(f"{a}: users {', '.join(sorted(ids))}" for a, ids in shared.items())
        raise AlreadyExists(
            f"emails of different users fold to one address ({listed}): change one of each, "
            "then migrate again",
            constraint="users_email_key",
        )
    for user_id, email in rows:
        if _fold(email) != email:
            cursor.execute("UPDATE users SET email = ? WHERE user_id = ?", (_fold(email), user_id))


steps = [
    step(
        "DROP INDEX users_email_key",
        "CREATE UNIQUE INDEX users_email_key ON users (lower(email))",
    ),
    step(fold_emails),
    step("CREATE UNIQUE INDEX users_email_key ON users (email)", "DROP INDEX users_email_key"),
]
