"""Whole pipelines through `osiris-action run`: real MariaDB → DuckDB → real Postgres.

Two promises are checked here end to end: every type survives the trip value by value, and no
secret value (nor its URL-, JSON- or base64-encoded form) reaches any byte the run leaves behind.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.conftest import mysql_execute, pg_execute

pytestmark = pytest.mark.db

MYSQL_TYPES = """
CREATE TABLE everything (
  id BIGINT PRIMARY KEY,
  big BIGINT, ubig BIGINT UNSIGNED, small SMALLINT, uint INT UNSIGNED,
  price DECIMAL(12,2), precise DECIMAL(38,10), ratio DOUBLE,
  created DATETIME(6), day DATE, at_time TIME(6), flag TINYINT(1),
  doc JSON, blob_col BLOB, note TEXT CHARACTER SET utf8mb4, code CHAR(2)
)"""
ROWS = [
    (
        1,
        9007199254740993,
        18446744073709551615,
        -32768,
        4294967295,
        "1234567890.12",
        "1234567890123456789012345678.0123456789",
        0.1,
        "2026-11-29 12:34:56.123456",
        "2026-02-28",
        "23:59:59.999999",
        1,
        '{"a": [1, 2, {"b": null}]}',
        "X'00FF10'",
        "héllo 🦀 wörld",
        "DE",
    ),
    (
        2,
        -9223372036854775808,
        0,
        32767,
        0,
        "-0.01",
        "0.0000000001",
        -1.5e300,
        "1970-01-01 00:00:00.000001",
        "0001-01-01",
        "00:00:00",
        0,
        "[]",
        "X''",
        "",
        "US",
    ),
    (3, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None),
]


def _literal(value):
    if value is None:
        return "NULL"
    if isinstance(value, str) and value.startswith("X'"):
        return value
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def write_project(
    tmp: Path, mysql_db, pg_db, query_table: str, mode: str = "replace", password: str = "${MYSQL_PASSWORD}"
) -> Path:
    (tmp / "osiris_connections.yaml").write_text(f"""
connections:
  mysql:
    src:
      host: {mysql_db.host}
      port: {mysql_db.port}
      database: {mysql_db.database}
      user: ${{MYSQL_USER}}
      password: {password}
  supabase:
    staging:
      pg_dsn: ${{PG_DSN}}
""")
    pipeline = tmp / "copy.yaml"
    pipeline.write_text(f"""
oml_version: "0.1.0"
name: copy-everything
steps:
  - id: extract
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.src"
      table: {query_table}
  - id: passthrough
    component: duckdb.processor
    mode: transform
    needs: [extract]
    config:
      query: SELECT * FROM input_df
  - id: load
    component: postgres.writer
    mode: write
    needs: [passthrough]
    config:
      connection: "@supabase.staging"
      table: everything
      write_mode: {mode}
      primary_key: [id]
""")
    return pipeline


def run_cli(pipeline: Path, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ["PATH"], "HOME": str(out.parent)} | env
    return subprocess.run(
        [sys.executable, "-m", "osiris_action", "run", str(pipeline), "--out", str(out)],
        cwd=pipeline.parent,
        env=full,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture
def canary_user(mysql_db):
    """A MariaDB user whose password is a canary with every character that breaks URLs."""
    user = f"u{uuid.uuid4().hex[:8]}"
    password = f"Canary-{uuid.uuid4().hex[:6]}-p@ss:w/rd%#?&=+ü"
    mysql_execute(
        mysql_db,
        f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'",
        f"GRANT SELECT ON `{mysql_db.database}`.* TO '{user}'@'%'",
    )
    yield user, password
    mysql_execute(mysql_db, f"DROP USER IF EXISTS '{user}'@'%'")


def test_every_type_survives_mysql_duckdb_postgres(tmp_path, mysql_db, pg_db):
    mysql_execute(
        mysql_db,
        MYSQL_TYPES,
        *["INSERT INTO everything VALUES (" + ", ".join(_literal(v) for v in row) + ")" for row in ROWS],
    )
    pipeline = write_project(tmp_path, mysql_db, pg_db, "everything", password='""')
    proc = run_cli(pipeline, tmp_path / "out", {"MYSQL_USER": "root", "PG_DSN": pg_db.pg_dsn})
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [s["rows_out"] for s in report["steps"]] == [3, 3, 3]
    assert report["writes"][0]["rows_written"] == 3 and report["hash_parity"] is True
    got = {r[0]: r for r in pg_execute(pg_db, "SELECT * FROM everything ORDER BY id")}
    one = got[1]
    assert one[1] == 9007199254740993
    assert one[2] == Decimal("18446744073709551615")
    assert (one[3], one[4]) == (-32768, 4294967295)
    assert one[5] == Decimal("1234567890.12") and one[6] == Decimal("1234567890123456789012345678.0123456789")
    assert one[7] == 0.1
    assert one[8] == dt.datetime(2026, 11, 29, 12, 34, 56, 123456)
    assert one[9] == dt.date(2026, 2, 28) and one[10] == dt.time(23, 59, 59, 999999)
    assert one[11] is True
    assert json.loads(one[12]) if isinstance(one[12], str) else one[12] == {"a": [1, 2, {"b": None}]}
    assert bytes(one[13]) == b"\x00\xff\x10"
    assert one[14] == "héllo 🦀 wörld" and one[15] == "DE"
    assert got[2][1] == -9223372036854775808 and got[2][8] == dt.datetime(1970, 1, 1, 0, 0, 0, 1)
    assert got[2][9] == dt.date(1, 1, 1) and bytes(got[2][13]) == b"" and got[2][14] == ""
    assert all(value is None for value in got[3][1:])
    types = dict(
        pg_execute(
            pg_db,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'everything'",
        )
    )
    assert types["price"] == "numeric" and types["created"].startswith("timestamp")
    assert types["flag"] == "boolean" and types["doc"] == "jsonb" and types["blob_col"] == "bytea"


def _forms(secret: str) -> set[str]:
    raw = secret.encode()
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }


def _leaks(places: list[str | bytes], secrets: list[str]) -> list[str]:
    found = []
    for secret in secrets:
        for form in _forms(secret):
            needle = form.encode()
            for place in places:
                data = place.encode() if isinstance(place, str) else place
                if needle in data:
                    found.append(form)
    return found


def _everything(out: Path, proc: subprocess.CompletedProcess) -> list[str | bytes]:
    return [proc.stdout, proc.stderr, *[p.read_bytes() for p in out.rglob("*") if p.is_file()]]


def test_no_secret_reaches_any_output(tmp_path, mysql_db, pg_db, canary_user):
    user, password = canary_user
    mysql_execute(
        mysql_db,
        "CREATE TABLE everything (id BIGINT PRIMARY KEY, note TEXT)",
        "INSERT INTO everything VALUES (1, 'a'), (2, 'b')",
    )
    pg_password = f"PgCanary-{uuid.uuid4().hex[:8]}/@:%"
    dsn = (
        f"postgresql://{pg_db.user}:{quote(pg_password, safe='')}@{pg_db.host}:{pg_db.port}/{pg_db.database}"
    )
    pipeline = write_project(tmp_path, mysql_db, pg_db, "everything")
    secrets = [password, pg_password, dsn]

    good = run_cli(pipeline, tmp_path / "ok", {"MYSQL_USER": user, "MYSQL_PASSWORD": password, "PG_DSN": dsn})
    assert good.returncode == 0, good.stdout + good.stderr
    assert _leaks(_everything(tmp_path / "ok", good), secrets) == []

    wrong = f"Wrong-{uuid.uuid4().hex[:6]}-p@ss:w/rd"
    bad = run_cli(pipeline, tmp_path / "bad", {"MYSQL_USER": user, "MYSQL_PASSWORD": wrong, "PG_DSN": dsn})
    assert bad.returncode == 1
    report = json.loads((tmp_path / "bad" / "report.json").read_text())
    assert (
        report["steps"][0]["status"] == "failed"
        and "denied" in report["steps"][0]["error"]["message"].lower()
    )
    assert _leaks(_everything(tmp_path / "bad", bad), [*secrets, wrong]) == []


def test_missing_secret_is_one_clear_error(tmp_path, mysql_db, pg_db):
    pipeline = write_project(tmp_path, mysql_db, pg_db, "everything")
    proc = run_cli(pipeline, tmp_path / "out", {"MYSQL_USER": "root", "PG_DSN": pg_db.pg_dsn})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "MYSQL_PASSWORD" in proc.stderr and "extract" in proc.stderr
