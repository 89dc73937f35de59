"""The Action on a real run whose password is a common word: a true verdict, and the word shown nowhere."""

from __future__ import annotations

import json

import pytest

from tests.action.conftest import RunnerWorld
from tests.conftest import Database, pg_execute

PIPELINE = """\
oml_version: "0.1.0"
name: totals
steps:
  - {id: read, component: filesystem.csv_extractor, mode: read, config: {path: orders.csv}}
  - id: load
    component: postgres.writer
    mode: write
    needs: [read]
    config: {connection: "@supabase.staging", table: orders, write_mode: replace, primary_key: [id]}
"""
CONNECTIONS = """\
connections:
  filesystem: {local: {default: true, base_dir: ./data}}
  supabase:
    staging: {pg_dsn: "${PG_DSN}"}
"""


@pytest.mark.db
def test_a_password_postgres_keeps_parity_and_never_shows(runner_world: RunnerWorld, pg_db: Database) -> None:
    rows = "\n".join(f"{i},{i}.5" for i in range(1, 201))
    runner_world.setup(
        {"README.md": "# pipelines\n"},
        {
            "p/totals.yaml": PIPELINE,
            "p/osiris_connections.yaml": CONNECTIONS,
            "p/data/orders.csv": "id,amount\n" + rows + "\n",
        },
    )
    # trust authentication accepts any password; `postgres` is the default of countless setups
    dsn = f"postgresql://postgres:postgres@{pg_db.host}:{pg_db.port}/{pg_db.database}"
    result = runner_world.run("pull_request", {"mode": "run"}, env={"PG_DSN": dsn}, timeout=120)

    assert result.returncode == 0, result.explain()
    assert result.outputs["status"] == "success" and result.outputs["hash-parity"] == "true"
    assert result.outputs["rows-written"] == "200"
    assert pg_execute(pg_db, "SELECT count(*) FROM orders") == [(200,)]
    (run,) = result.report()["runs"]  # valid JSON, the verdict intact
    assert run["status"] == "success" and run["hash_parity"] is True
    assert any("masked wherever it occurs" in w for w in run["warnings"])
    printed = "\n".join(line for line in result.stdout.splitlines() if not line.startswith("::add-mask::"))
    texts = [printed, result.stderr, result.summary]
    texts += [p.read_text("utf-8", "replace") for p in result.artifacts_dir().rglob("*") if p.is_file()]
    for text in texts:
        assert "postgres" not in text
    assert json.loads(result.outputs["pipelines"]) == ["p/totals.yaml"]
