"""The action end to end on a pull request: MySQL -> DuckDB -> Postgres on the real local servers.

The connections file holds only `${ENV}` references; the step's environment carries the values, as
a workflow's `env:` from secrets would. The MySQL user and the DSN have real passwords so that the
masking of both can be checked on everything the step leaves behind.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.action.conftest import RunnerWorld, default_base_files
from tests.conftest import Database, mysql_execute, pg_execute

pytestmark = pytest.mark.db

PIPELINE = """\
oml_version: "0.1.0"
name: director-stats
description: Director statistics from the movies database, written to Postgres.
steps:
  - id: extract-movies
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.movies"
      query: |
        SELECT id, title, director, year, rating, box_office FROM movies

  - id: compute-director-stats
    component: duckdb.processor
    mode: transform
    needs: [extract-movies]
    config:
      query: |
        SELECT director AS director_id,
               count(*) AS movie_count,
               round(avg(rating), 2) AS avg_rating,
               sum(box_office) AS total_box_office,
               min(year) AS first_year,
               max(year) AS last_year
        FROM input_df
        GROUP BY director

  - id: write-director-stats
    component: supabase.writer
    mode: write
    needs: [compute-director-stats]
    config:
      connection: "@supabase.staging"
      table: director_stats
      write_mode: replace
      primary_key: [director_id]
"""

CONNECTIONS = """\
version: 1
connections:
  mysql:
    movies:
      default: true
      host: ${MYSQL_HOST}
      port: ${MYSQL_PORT}
      database: ${MYSQL_DATABASE}
      user: ${MYSQL_USER}
      password: ${MYSQL_PASSWORD}
  supabase:
    staging:
      default: true
      pg_dsn: ${SUPABASE_PG_DSN}
"""

DIRECTORS = ["Agnès Varda", "Akira Kurosawa", "Chantal Akerman", "Hayao Miyazaki", "Jane Campion"]
MOVIES = 60


@pytest.fixture
def mysql_user(mysql_db: Database):
    """A MySQL user with a password, allowed on the throwaway database only."""
    user = f"osiris_{uuid.uuid4().hex[:8]}"
    password = f"my-Secret-{uuid.uuid4().hex}"
    hosts = ("localhost", "127.0.0.1", "%")
    mysql_execute(
        mysql_db,
        *[f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'" for host in hosts],
        *[f"GRANT ALL ON `{mysql_db.database}`.* TO '{user}'@'{host}'" for host in hosts],
    )
    try:
        yield user, password
    finally:
        mysql_execute(mysql_db, *[f"DROP USER IF EXISTS '{user}'@'{host}'" for host in hosts])


def seed_movies(db: Database) -> list[tuple]:
    rows = []
    for i in range(MOVIES):
        director = DIRECTORS[i % len(DIRECTORS)]
        rows.append((i + 1, f"Film {i + 1}", director, 1950 + i, round(5 + (i % 9) * 0.5, 1), 1000 * (i + 1)))
    values = ", ".join(
        "({}, '{}', '{}', {}, {}, {})".format(*(str(v).replace("'", "''") for v in row)) for row in rows
    )
    mysql_execute(
        db,
        "CREATE TABLE movies (id INT PRIMARY KEY, title VARCHAR(200), director VARCHAR(100), "
        "year INT, rating DECIMAL(3,1), box_office BIGINT) CHARACTER SET utf8mb4",
        f"INSERT INTO movies VALUES {values}",
    )
    return rows


def test_pull_request_runs_mysql_duckdb_postgres(
    runner_world: RunnerWorld, mysql_db: Database, pg_db: Database, mysql_user: tuple[str, str]
) -> None:
    movies = seed_movies(mysql_db)
    user, password = mysql_user
    pg_password = f"pg-Secret-{uuid.uuid4().hex}"  # trust auth accepts it; it still must never show
    dsn = f"postgresql://{pg_db.user}:{pg_password}@{pg_db.host}:{pg_db.port}/{pg_db.database}"
    # The new pipeline lives in its own folder, next to its own connections file.
    runner_world.setup(
        default_base_files(),
        {
            "pipelines/staging/director-stats.yaml": PIPELINE,
            "pipelines/staging/osiris_connections.yaml": CONNECTIONS,
        },
    )
    result = runner_world.run(
        "pull_request",
        {"mode": "run", "comment": "off"},
        env={
            "MYSQL_HOST": mysql_db.host,
            "MYSQL_PORT": str(mysql_db.port),
            "MYSQL_DATABASE": mysql_db.database,
            "MYSQL_USER": user,
            "MYSQL_PASSWORD": password,
            "SUPABASE_PG_DSN": dsn,
        },
        timeout=120,
    )
    assert result.returncode == 0, result.explain()
    assert json.loads(result.outputs["pipelines"]) == ["pipelines/staging/director-stats.yaml"]

    # The rows are in Postgres, computed from what MySQL held.
    stored = pg_execute(
        pg_db,
        "SELECT director_id, movie_count, total_box_office, first_year, last_year "
        "FROM director_stats ORDER BY director_id",
    )
    expected = []
    for director in sorted(DIRECTORS):
        mine = [m for m in movies if m[2] == director]
        expected.append(
            (director, len(mine), sum(m[5] for m in mine), min(m[3] for m in mine), max(m[3] for m in mine))
        )
    assert [(row[0], *map(int, row[1:])) for row in stored] == expected

    # Outputs and summary agree with the databases.
    outputs = result.outputs
    assert outputs["status"] == "success"
    assert outputs["rows-read"] == str(MOVIES)
    assert outputs["rows-written"] == str(len(DIRECTORS))
    assert outputs["hash-parity"] == "true"
    summary = result.summary
    assert re.search(rf"\| extract-movies \| mysql\.extractor \| ✅ success \| 0 \| {MOVIES} \|", summary)
    assert re.search(
        rf"\| compute-director-stats \| duckdb\.processor \| ✅ success \| {MOVIES} \| {len(DIRECTORS)} \|",
        summary,
    )
    writer = rf"\| write-director-stats \| supabase\.writer \| ✅ success \| {len(DIRECTORS)} \|"
    assert re.search(writer, summary)
    assert f"s0 -->|{MOVIES} rows| s1" in summary and f"s1 -->|{len(DIRECTORS)} rows| s2" in summary
    assert re.search(rf"\| (public\.)?director\\_stats \| replace \| {len(DIRECTORS)} \|", summary)
    assert re.search(r"Hash parity: (\d+)/\1 files match", summary)
    (run,) = result.report()["runs"]
    assert run["status"] == "success" and run["hash_parity"] is True

    # Both passwords were masked before anything printed and were written nowhere.
    assert {password, dsn} <= set(result.masks)
    assert pg_password in result.masks, "a DSN's password is masked on its own"
    printed = "\n".join(line for line in result.stdout.splitlines() if not line.startswith("::add-mask::"))
    texts = [printed, result.stderr, summary, result.output_file.read_text()]
    for path in result.artifacts_dir().rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    for text in texts:
        assert password not in text and pg_password not in text
