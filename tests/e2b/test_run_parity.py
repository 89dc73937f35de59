"""The same pipeline through the local sandbox and through E2B (the real SDK against the local envd
server) gives the same report, apart from timings and ids: same rows, same fingerprints, same writes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from osiris_action.report import dump
from osiris_action.run import RunOptions, run_pipeline
from tests.conftest import mysql_execute, pg_execute

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart"


def comparable(report) -> dict:
    data = dump(report)
    steps = [
        {k: s[k] for k in ("id", "status", "rows_in", "rows_out", "fingerprint", "error")}
        for s in data["steps"]
    ]
    return {
        "status": data["status"],
        "steps": steps,
        "writes": data["writes"],
        "ddl": data["ddl"],
        "parity": [(r["path"], r["match"]) for r in data["parity"]],
        "hash_parity": data["hash_parity"],
        "manifest": data["manifest_fingerprint"],
    }


def both(pipeline: Path, tmp_path: Path, environ: dict, between=lambda: None) -> tuple[dict, dict]:
    local, _ = run_pipeline(
        pipeline,
        RunOptions(out=tmp_path / "local", download_data=True),
        on_progress=lambda _: None,
        environ=environ,
    )
    between()
    remote, _ = run_pipeline(
        pipeline,
        RunOptions(target="e2b", out=tmp_path / "e2b", python=sys.executable, download_data=True),
        on_progress=lambda _: None,
        environ=environ,
    )
    return comparable(local), comparable(remote)


def test_quickstart_reports_match(fake_e2b, tmp_path, monkeypatch):
    project = tmp_path / "project"
    shutil.copytree(QUICKSTART, project)
    monkeypatch.chdir(project)
    import os

    local, remote = both(project / "orders-summary.yaml", tmp_path, dict(os.environ))
    assert local["status"] == "success"
    assert local == remote
    a = (tmp_path / "local" / "data").rglob("*.csv")
    b = (tmp_path / "e2b" / "data").rglob("*.csv")
    assert [p.read_bytes() for p in sorted(a)] == [p.read_bytes() for p in sorted(b)]
    [(sandbox_id, sandbox)] = fake_e2b.sandboxes.items()
    assert not sandbox.alive
    assert ("DELETE", f"/sandboxes/{sandbox_id}") in fake_e2b.requests


@pytest.mark.db
def test_database_pipeline_reports_match(fake_e2b, tmp_path, mysql_db, pg_db, monkeypatch):
    import os

    mysql_execute(
        mysql_db,
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, amount DECIMAL(10,2), country CHAR(2))",
        "INSERT INTO orders VALUES "
        + ", ".join(f"({i}, {i}.25, '{'DE' if i % 3 else 'US'}')" for i in range(1, 501)),
    )
    (tmp_path / "osiris_connections.yaml").write_text(f"""
connections:
  mysql:
    src:
      {{host: {mysql_db.host}, port: {mysql_db.port}, database: {mysql_db.database}, user: root,
        password: ""}}
  supabase:
    staging: {{pg_dsn: "${{PG_DSN}}"}}
""")
    pipeline = tmp_path / "by-country.yaml"
    pipeline.write_text("""
oml_version: "0.1.0"
name: by-country
steps:
  - {id: extract, component: mysql.extractor, mode: read, config: {connection: "@mysql.src", table: orders}}
  - id: totals
    component: duckdb.processor
    mode: transform
    needs: [extract]
    config: {query: "SELECT country, count(*) AS n, sum(amount) AS total FROM input_df GROUP BY country"}
  - id: load
    component: postgres.writer
    mode: write
    needs: [totals]
    config: {connection: "@supabase.staging", table: totals, write_mode: replace, primary_key: [country]}
""")
    monkeypatch.chdir(tmp_path)
    environ = dict(os.environ, PG_DSN=pg_db.pg_dsn)
    local, remote = both(pipeline, tmp_path, environ, between=lambda: pg_execute(pg_db, "DROP TABLE totals"))
    assert local["status"] == "success", local
    assert local == remote
    assert sorted(pg_execute(pg_db, "SELECT country, n FROM totals")) == [("DE", 334), ("US", 166)]
