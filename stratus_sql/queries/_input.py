"""Argument validation shared by the query modules: runs before any SQL, raises InvalidInput.

Both backends must accept exactly the same values, so the limits of the stricter one apply
to both: no NUL characters (Postgres text and jsonb cannot hold them), no NaN or infinity in
JSON (not JSON at all), integers within 64 bits (SQLite's JSON functions and orjson).

Values are stored as given or refused, never changed on the way: a name, title, key or label
that begins or ends with white space is refused (`Unpadded`) rather than trimmed. The only
documented normalizations are of emails (users.py) and licence codes (uppercased).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError

from stratus_sql.errors import InvalidInput

__all__ = [
    "Input",
    "JsonDocument",
    "JsonObject",
    "NoNul",
    "Unpadded",
    "decode_cursor",
    "encode_cursor",
    "int_arg",
    "page_limit",
    "text",
    "uuid_arg",
    "validate",
]

M = TypeVar("M", bound=BaseModel)

_MAX_JSON_DEPTH = 64
_MAX_JSON_BYTES = 1_000_000
_INT64 = (-(2**63), 2**63 - 1)
_FLOAT_EXACT = 2.0**53
MAX_PAGE = 500


class Input(BaseModel):
    """Base of the input models: unknown fields are an error, values are not coerced from
    other types except where a field says so (enums from their string values)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def validate(model: type[M], **values: Any) -> M:
    """`model(**values)`, with pydantic's errors turned into one InvalidInput."""
    try:
        return model(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or model.__name__
        raise InvalidInput(f"{where}: {error['msg']}") from None


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it holds a lone surrogate)") from None
    return value


NoNul = AfterValidator(_no_nul)


def _unpadded(value: str) -> str:
    if value != value.strip():
        raise ValueError("must not begin or end with white space")
    return value


# Refuses a value that begins or ends with white space (Python's str.isspace()), so " a "
# and "a" can never be stored as, or taken for, one another.
Unpadded = AfterValidator(_unpadded)


def text(max_length: int, *, min_length: int = 1) -> StringConstraints:
    """A str (not bytes) of `min_length` to `max_length` characters, kept as given. Use as
    `Annotated[str, text(200), NoNul, Unpadded]`.
    """
    return StringConstraints(strict=True, min_length=min_length, max_length=max_length)


def check_json(value: Any, depth: int = 0) -> Any:
    """Raise ValueError unless `value` is JSON both backends store exactly."""
    if depth > _MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {_MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise ValueError("JSON integers must fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("JSON numbers must be finite (no NaN or infinity)")
        if abs(value) >= _FLOAT_EXACT:
            # Postgres keeps JSON numbers as exact decimals: 1.5e300 would come back as
            # an integer that is not the float stored. Below 2**53 every float is exact.
            raise ValueError("JSON fractions must be below 2**53 in magnitude (use an integer)")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("JSON object keys must be strings")
            _no_nul(key)
            check_json(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_json(item, depth + 1)
    else:
        raise ValueError(f"{type(value).__name__} is not a JSON value")
    return value


def _json_document(value: Any) -> Any:
    check_json(value)
    if len(orjson.dumps(value)) > _MAX_JSON_BYTES:
        raise ValueError(f"JSON larger than {_MAX_JSON_BYTES} bytes")
    return value


def _json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object (a dict), not {type(value).__name__}")
    result: dict[str, Any] = _json_document(value)
    return result


JsonDocument = Annotated[Any, AfterValidator(_json_document)]
JsonObject = Annotated[Any, AfterValidator(_json_object)]


def uuid_arg(value: object, name: str) -> UUID:
    """An id argument: a UUID, or its string form."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            pass
    raise InvalidInput(f"{name}: expected a UUID, got {value!r:.60}")


def int_arg(value: object, name: str, low: int, high: int) -> int:
    """An integer argument from `low` to `high` (a bool is not taken for one)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name}: expected an integer from {low} to {high}, got {value!r:.30}")
    return value


def moment_arg(value: object, name: str) -> datetime:
    """A point in time: a timezone-aware datetime between the years 2 and 9998 (what both
    backends store)."""
    if not isinstance(value, datetime) or value.tzinfo is None or not 2 <= value.year <= 9998:
        raise InvalidInput(
            f"{name}: expected a timezone-aware datetime between the years 2 and 9998"
        )
    return value


def month_arg(value: object, name: str) -> date:
    """Where a prune stops: the first day of a month (a date), not after this month's."""
    if not isinstance(value, date) or isinstance(value, datetime) or value.day != 1:
        raise InvalidInput(f"{name}: expected the first day of a month (a date)")
    if value > datetime.now(UTC).date().replace(day=1):
        raise InvalidInput(f"{name}: pruning stops at this month: it cannot drop the current one")
    return value


def page_limit(limit: object) -> int:
    return int_arg(limit, "limit", 1, MAX_PAGE)


def encode_cursor(*values: Any) -> str:
    """An opaque page cursor holding `values` (str, int, float or None)."""
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: object, *parsers: Callable[[Any], Any]) -> tuple[Any, ...]:
    """The values of a cursor made by `encode_cursor`, each passed through its parser."""
    try:
        if not isinstance(cursor, str) or len(cursor) > 1000:
            raise ValueError
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(parsers):
            raise ValueError
        return tuple(parse(v) for parse, v in zip(parsers, raw, strict=True))
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise InvalidInput(
            f"cursor: not a cursor returned by this listing: {cursor!r:.60}"
        ) from None
