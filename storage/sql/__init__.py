"""The SQL machinery under the storage domains: statements, dialects, drivers,
the database handle, the group-commit writer, migrations, ``SqlStore``.

The domain modules (``storage.messages_rich``, ``storage.billing``, ...) stay at
the top of ``storage``: they are what the rest of the server reads and calls;
this package is how their operations reach SQLite or PostgreSQL.
"""
