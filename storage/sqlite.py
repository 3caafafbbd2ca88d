"""TEMPORARY names for the twins not yet ported (see ``storage.legacy``)."""

from .legacy import _transaction
from .store import SqlStore as SqliteStore

__all__ = ["SqliteStore", "_transaction"]
