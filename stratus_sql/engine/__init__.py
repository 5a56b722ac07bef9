"""The engine: one executor over a driver's connections, transactions and savepoints, the
retry of transient failures. It names no driver and no query module."""

from stratus_sql.drivers.interface import Json
from stratus_sql.engine.executor import Actor, Executor

__all__ = ["Actor", "Executor", "Json"]
