"""The one way a pipeline's SQL reaches DuckDB: an in-memory database that sees only what it is given.

A pull request's SQL is a stranger's code. With external access off DuckDB reads and writes no file
(`read_text`, `COPY ... TO`, `ATTACH`, `INSTALL`), loads no extension, and with Python replacement scans
off it cannot read the caller's variables; only the Arrow data registered on the connection is visible.
The configuration is locked last, so the query itself cannot turn any of this back on.
"""

from __future__ import annotations

LOCKED = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "python_enable_replacements": False,
}


def connect(threads: int = 2):
    """A locked, in-memory DuckDB connection whose session time zone is UTC."""
    import duckdb

    con = duckdb.connect(":memory:", config={**LOCKED, "threads": threads})
    # UTC so that TIMESTAMPTZ results do not depend on the machine that runs the pipeline
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET lock_configuration = true")
    return con
