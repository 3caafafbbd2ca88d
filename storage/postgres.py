"""TEMPORARY names for the twins not yet ported (see ``storage.legacy``)."""

from .store import SqlStore as PostgresStore

__all__ = ["PostgresStore"]
