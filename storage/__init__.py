"""Storage: one ``Store`` interface, SQLite (embedded default) and PostgreSQL twins.

Only this package imports sqlite3 or asyncpg, and the asyncio bridge
(trio-asyncio, which asyncpg needs under trio) lives in ``storage.asyncio_bridge``.
"""
