"""Shared fixtures: throwaway databases on the real MariaDB and PostgreSQL servers.

Each test that asks for `mysql_db` or `pg_db` gets a database with a unique name, dropped afterwards,
so runs never see each other's tables. The servers themselves are checked (and started when installed
but down) by `tests/services.py`, which `make test` runs first.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest

MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": ""}


@dataclass
class Database:
    """Where a throwaway database lives; `connection` is what an osiris_connections.yaml alias holds."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def connection(self) -> dict:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
        }

    @property
    def pg_dsn(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def mysql_db():
    import pymysql

    name = _unique("osiris_t")
    admin = pymysql.connect(**MYSQL, autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    try:
        yield Database(MYSQL["host"], MYSQL["port"], MYSQL["user"], MYSQL["password"], name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture
def pg_db():
    import psycopg

    name = _unique("osiris_t")
    admin = psycopg.connect(
        host=PG["host"], port=PG["port"], user=PG["user"], dbname="postgres", autocommit=True
    )
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Database(PG["host"], PG["port"], PG["user"], PG["password"], name)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def mysql_execute(db: Database, *statements: str) -> list:
    """Run statements on a throwaway MySQL database; returns the rows of the last one."""
    import pymysql

    conn = pymysql.connect(**db.connection, autocommit=True)
    try:
        with conn.cursor() as cur:
            rows: list = []
            for sql in statements:
                cur.execute(sql)
                rows = list(cur.fetchall())
            return rows
    finally:
        conn.close()


def pg_execute(db: Database, *statements: str) -> list:
    """Run statements on a throwaway Postgres database; returns the rows of the last one."""
    import psycopg

    with psycopg.connect(db.pg_dsn, autocommit=True) as conn:
        rows: list = []
        for sql in statements:
            cur = conn.execute(sql)
            rows = cur.fetchall() if cur.description else []
        return rows


@pytest.fixture(autouse=True)
def _no_ambient_secrets(monkeypatch):
    """Tests must not depend on the developer's own cloud credentials."""
    if not os.environ.get("OSIRIS_LIVE_TESTS"):
        for name in ("E2B_API_KEY", "GITHUB_TOKEN"):
            monkeypatch.delenv(name, raising=False)
