"""The SQL scanner: find `:name` parameters in a statement and rewrite them.

It walks the text once and skips what may hold a colon without being a parameter: string
literals ('..', and E'..' with backslash escapes), quoted identifiers, dollar-quoted bodies,
`--` and nested `/* */` comments, `::type` casts and array slices (`arr[lo:hi]`). Errors name
`file:line` of the offending character.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

from stratus_sql.errors import QueryFileError

__all__ = ["PlaceholderStyle", "compile_sql"]

# How a parameter is written once compiled: `$1..$n` (numbered, asyncpg), `:name` (named,
# sqlite3), a NULL literal (to describe a statement unbound), `?` (sqlite3's executemany).
PlaceholderStyle = Literal["numbered", "named", "null", "qmark"]
_PLACEHOLDERS: dict[str, Callable[[str, int], str]] = {
    "numbered": lambda name, n: f"${n}",
    "named": lambda name, n: f":{name}",
    "null": lambda name, n: "NULL",
    "qmark": lambda name, n: "?",
}

_IDENT_START = re.compile(r"[A-Za-z_]")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_]")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def compile_sql(
    sql: str, placeholders: PlaceholderStyle, filename: str = "<sql>", first_line: int = 1
) -> tuple[str, tuple[str, ...], str]:
    """Rewrite `:name` parameters in the style `placeholders`.

    Returns the compiled text, the parameter names in `$n` order (first appearance), and the
    statement's code with literals and comments blanked out (for keyword inspection).
    """
    placeholder = _PLACEHOLDERS[placeholders]
    where = (filename, first_line)
    brackets = 0
    out: list[str] = []
    code: list[str] = []
    params: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        start = i
        if c == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _IDENT_CHAR.match(sql[i - 2]))
            i = _end_of_quoted(sql, i, "'", backslash=escapes, where=where)
            code.append(" ")
        elif c == '"':
            i = _end_of_quoted(sql, i, '"', backslash=False, where=where)
            code.append(sql[start:i])
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
            code.append(" ")
        elif sql.startswith("/*", i):
            i = _end_of_block_comment(sql, i, where)
            code.append(" ")
        elif c == "$" and (m := _DOLLAR_TAG.match(sql, i)) and not _ident_before(sql, i):
            end = sql.find(m.group(0), m.end())
            if end < 0:
                raise QueryFileError(f"{_line(where, sql, i)}: unterminated {m.group(0)} quote")
            i = end + len(m.group(0))
            code.append(" ")
        elif sql.startswith("::", i):
            i += 2
            code.append("::")
        elif c in "[]":
            brackets += 1 if c == "[" else -1
            i += 1
            code.append(c)
        elif (
            c == ":"
            and not brackets  # arr[lo:hi] and arr[:hi] are slices, not parameters
            and i + 1 < n
            and _IDENT_START.match(sql[i + 1])
            and not _ident_before(sql, i)
        ):
            j = i + 1
            while j < n and _IDENT_CHAR.match(sql[j]):
                j += 1
            if j < n and sql[j].isalnum():  # :ação would silently become :a + "ção"
                raise QueryFileError(
                    f"{_line(where, sql, i)}: parameter names are ASCII letters, digits and _"
                )
            name = sql[i + 1 : j]
            if name not in params:
                params.append(name)
            compiled = placeholder(name, params.index(name) + 1)
            out.append(compiled)
            code.append(compiled)
            i = j
            continue
        else:
            i += 1
            code.append(c)
        out.append(sql[start:i])
    return "".join(out), tuple(params), "".join(code)


def _ident_before(sql: str, i: int) -> bool:
    return i > 0 and bool(_IDENT_CHAR.match(sql[i - 1]))


def _end_of_quoted(sql: str, i: int, quote: str, *, backslash: bool, where: tuple[str, int]) -> int:
    """Index just past the quoted token opened at `i` (doubled quotes stay inside)."""
    j = i + 1
    while j < len(sql):
        ch = sql[j]
        if backslash and ch == "\\":
            j += 2
            continue
        if ch == quote:
            if j + 1 < len(sql) and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    raise QueryFileError(f"{_line(where, sql, i)}: unterminated {quote} quote")


def _end_of_block_comment(sql: str, i: int, where: tuple[str, int]) -> int:
    """Index just past the `/* */` comment opened at `i`; Postgres comments nest."""
    depth, j = 0, i
    while j < len(sql):
        if sql.startswith("/*", j):
            depth += 1
            j += 2
        elif sql.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    raise QueryFileError(f"{_line(where, sql, i)}: unterminated /* comment")


def _line(where: tuple[str, int], sql: str, i: int) -> str:
    """`file:line` of offset `i` in a statement whose SQL starts at line `where[1]`."""
    return f"{where[0]}:{where[1] + sql.count(chr(10), 0, i)}"
