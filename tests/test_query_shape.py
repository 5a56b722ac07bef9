"""Each query function runs the statement of its own name, or says which ones it runs."""

from __future__ import annotations

import ast
import importlib
import inspect

import pytest

MODULES = [
    "api_keys",
    "audit",
    "conversations",
    "dashboards",
    "memory",
    "metrics",
    "privacy",
    "users",
]
STATEMENT_SETS = {"STATEMENTS", "AUDIT"}


def statements_of(tree: ast.Module, name: str, seen: set[str] | None = None) -> list[str]:
    """The statements a module function names, through the module's private helpers too."""
    seen = set() if seen is None else seen
    seen.add(name)
    functions = {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    found: list[str] = []
    for node in ast.walk(functions[name]):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in STATEMENT_SETS
            and node.attr not in found
        ):
            found.append(node.attr)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id.startswith("_")
            and node.func.id in functions
            and node.func.id not in seen
        ):
            found += [s for s in statements_of(tree, node.func.id, seen) if s not in found]
    return found


def query_functions() -> list[tuple[str, str]]:
    out = []
    for module in MODULES:
        loaded = importlib.import_module(f"stratus_sql.queries.{module}")
        for name in loaded.__all__:
            function = getattr(loaded, name)
            if inspect.iscoroutinefunction(function) and function.__module__ == loaded.__name__:
                out.append((module, name))
    return out


@pytest.mark.parametrize(("module", "name"), query_functions())
def test_a_query_function_runs_its_namesake_or_lists_its_statements(module: str, name: str) -> None:
    loaded = importlib.import_module(f"stratus_sql.queries.{module}")
    tree = ast.parse(inspect.getsource(loaded))
    used = statements_of(tree, name)
    assert used, f"{module}.{name} runs no named statement"
    if len(used) == 1:
        assert used == [name], f"{module}.{name} runs {used[0]}: name them alike"
        return
    doc = inspect.getdoc(getattr(loaded, name)) or ""
    missing = [s for s in used if f"`{s}`" not in doc]
    assert not missing, f"{module}.{name} runs {used}; its docstring does not name {missing}"
