"""Storage: every operation written once, run on SQLite or PostgreSQL.

The design (issue 19)::

    domain code (sql/store.py, billing.py, chatlist.py, ...)
        SQL with ? placeholders; several statements = a generator that
        yields Fetch/FetchOne/Execute/ExecuteMany and receives the results
                 |                                   |
         Database (sql/database.py): fetch/execute/read(op)/write(op)
                 |                                   |
    sql/driver_sqlite.py                    sql/driver_postgres.py
    sqlite3, the whole op in ONE            asyncpg, the whole op in ONE
    worker-thread call (one write and       crossing into the asyncio loop
    one read connection)                    (pool; the writer's own connection)

- **Sans-I/O operations.** A multi-statement operation is a plain generator
  (``storage.sql.statements``), in the style of h11 and wsproto: it never sees a
  connection, a thread or an ``await``. The SQLite driver runs it to the end
  inside one thread call, so a transaction can never span a trio checkpoint;
  the PostgreSQL driver runs it inside one asyncio task, so it crosses the
  trio/asyncio bridge once per operation instead of once per statement.
- **A dialect object** (``storage.sql.dialect``) carries what really differs:
  ``?`` -> ``$n``, list and table parameters (``json_each`` vs
  ``ANY``/``unnest``), ``greatest``, row locks and advisory locks, byte-wise
  collation, full-text search, constraint names for ``Conflict``. The hot
  path's bulk insert keeps one statement per dialect (``unnest`` in one round
  trip on PostgreSQL, ``executemany`` on SQLite).
- **Errors** never leave as sqlite3's or asyncpg's: ``storage.errors``.

Why not SQLAlchemy Core: its SQL expression layer would remove the
placeholder and list-parameter differences, but not the rest (locks, FTS,
bulk insert, constraint names), it costs microseconds of Python per
statement compile on the hot path, and its asyncpg dialect is built on
asyncio greenlets: under trio that means the asyncio bridge again for every
statement, which is exactly the cost this package removes. Plain SQL in the
subset both databases accept (SQLite 3.35+ has ``RETURNING`` and
``ON CONFLICT``) plus a dozen dialect methods was smaller.

Layout: the domain modules (``messages_rich``, ``contacts``, ``billing``,
``stories``, ...) sit at the top of the package, because they are what the
rest of the server reads and calls; ``storage.sql`` holds the machinery they
run on (statements, dialects, drivers, ``Database``, the group-commit
``MessageWriter``, migrations, ``SqlStore`` and the factory), which a reader
of a domain needs only when following a query down to the database.
``base`` (the ``Store`` interface), ``errors``, ``blobs`` and ``outage`` stay
at the top too: every layer above uses them.

Only this package imports sqlite3 or asyncpg; the asyncio bridge
(trio-asyncio, which asyncpg needs under trio) lives in
``storage.sql.asyncio_bridge``. Migrations stay one folder per database
(``storage/migrations/<dialect>``), applied by ``storage.sql.migrate``.
"""
