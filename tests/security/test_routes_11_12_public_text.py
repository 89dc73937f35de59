"""Routes 11 and 12: what the data and the pipeline's author write never speaks for itself in public.

11. A database error quotes the row it tripped on. In a public repository the log, the summary, the PR
    comment and the annotations show the error without the value; report.json keeps it whole, and
    `show-data-values: true` shows it.
12. An @mention in a pipeline's name, a step's error or a table name does not notify anyone from the
    summary or the comment.
"""

from __future__ import annotations

import re

import pytest

from osiris_action.github.summary import escape_text
from osiris_action.redact import hide_data_values
from tests.action.conftest import CONNECTIONS
from tests.conftest import pg_execute
from tests.security.canary import Canaries
from tests.security.conftest import assert_step_clean

CONVERT = """\
oml_version: "0.1.0"
name: {name}
steps:
  - id: read
    component: filesystem.csv_extractor
    mode: read
    config: {{connection: "@filesystem.local", path: notes.csv}}
  - id: convert
    component: duckdb.processor
    mode: transform
    needs: [read]
    config:
      query: {query}
"""
WRITE_NOTES = """\
oml_version: "0.1.0"
name: notes
steps:
  - id: read
    component: filesystem.csv_extractor
    mode: read
    config: {connection: "@filesystem.local", path: notes.csv}
  - id: write
    component: supabase.writer
    mode: write
    needs: [read]
    config: {connection: "@supabase.staging", table: notes, write_mode: append}
"""
PG_CONNECTION = "  supabase:\n    staging:\n      pg_dsn: ${PG_DSN}\n"
MENTION = re.compile(r"(?<![A-Za-z0-9_`])@[A-Za-z0-9]")


def _run(world, canaries: Canaries, pipeline: str, **with_):
    world.setup()
    world.write(
        {
            "pipelines/data/notes.csv": f"id,note\n1,{canaries['ROW_VALUE']}\n",
            "pipelines/attack.yaml": pipeline,
        }
    )
    inputs = {"changed-only": "false", "pipelines": "pipelines/attack.yaml", "comment": "always", **with_}
    return world.run("pull_request", inputs, env=canaries.env(), timeout=120)


def test_route11_row_values_stay_out_of_public_places(runner_world):
    canaries = Canaries.make("ROW_VALUE")
    pipeline = CONVERT.format(name="notes", query="SELECT CAST(note AS INTEGER) AS n FROM input_df")
    result = _run(runner_world, canaries, pipeline)
    assert result.returncode == 1, result.explain()
    (error,) = [a for a in result.of_level("error") if "convert" in (a.title or "")]
    assert "Could not convert string '…'" in error.message
    assert "Could not convert string &#x27;…&#x27;" in result.summary  # HTML-escaped quotes
    assert_step_clean(canaries, runner_world, result, files=False)
    # the artifacts keep the whole message, for whoever may download them
    assert canaries["ROW_VALUE"] in str(result.report())

    shown = _run(runner_world, canaries, pipeline, **{"show-data-values": "true"})
    assert canaries["ROW_VALUE"] in shown.summary


def test_route11_a_private_repository_shows_the_values_by_default(runner_world):
    canaries = Canaries.make("ROW_VALUE")
    payload = runner_world.setup().payload("pull_request")
    payload["repository"]["private"] = True
    runner_world.write(
        {
            "pipelines/data/notes.csv": f"id,note\n1,{canaries['ROW_VALUE']}\n",
            "pipelines/attack.yaml": CONVERT.format(
                name="notes", query="SELECT CAST(note AS INTEGER) AS n FROM input_df"
            ),
        }
    )
    result = runner_world.run(
        "pull_request",
        {"changed-only": "false", "pipelines": "pipelines/attack.yaml"},
        payload=payload,
        timeout=120,
    )
    assert canaries["ROW_VALUE"] in result.summary


def test_route12_mentions_never_notify(runner_world, canaries):
    canaries.values["ROW_VALUE"] = "not-a-secret-here"
    pipeline = CONVERT.format(name="'@acme/security-team'", query="'SELECT * FROM \"@mallory\"'")
    result = _run(runner_world, canaries, pipeline)
    assert result.returncode == 1, result.explain()
    assert "security-team" in result.summary and "mallory" in result.summary
    comments = [c["body"] for cs in runner_world.api.state.comments.values() for c in cs]
    assert comments
    for text in (result.summary, *comments):
        assert not MENTION.search(text.replace("<code>", "`")), MENTION.search(text)
    del canaries.values["ROW_VALUE"]
    assert_step_clean(canaries, runner_world, result)


@pytest.mark.db
def test_route11_a_postgres_key_violation_hides_the_row(runner_world, pg_db):
    canaries = Canaries.make("ROW_VALUE")
    pg_execute(pg_db, "CREATE TABLE notes (id int, note text UNIQUE)")
    dsn = f"postgresql://{pg_db.user}@{pg_db.host}:{pg_db.port}/{pg_db.database}?sslmode=disable"
    runner_world.setup()
    runner_world.write(
        {
            "pipelines/osiris_connections.yaml": CONNECTIONS
            + "  supabase:\n    staging:\n      pg_dsn: ${PG_DSN}\n",
            "pipelines/data/notes.csv": f"id,note\n1,{canaries['ROW_VALUE']}\n2,{canaries['ROW_VALUE']}\n",
            "pipelines/attack.yaml": WRITE_NOTES,
        }
    )
    result = runner_world.run(
        "pull_request",
        {"changed-only": "false", "pipelines": "pipelines/attack.yaml", "comment": "always"},
        env={"PG_DSN": dsn},
        timeout=120,
    )
    assert result.returncode == 1, result.explain()
    (error,) = [a for a in result.of_level("error") if "write" in (a.title or "")]
    assert "Key (note)=(…)" in error.message, error.message
    assert_step_clean(canaries, runner_world, result, files=False)
    assert canaries["ROW_VALUE"] in str(result.report())
    assert pg_execute(pg_db, "SELECT count(*) FROM notes") == [(0,)]  # the failed write left it as it was


@pytest.mark.parametrize(
    "message, shown",
    [
        ("DETAIL:  Key (note)=(x (1) y) already exists.", "DETAIL:  Key (note)=(…) already exists."),
        ("Failing row contains (1, x, null).", "Failing row contains (…)."),
        ("Could not convert string 'x' to INT32", "Could not convert string '…' to INT32"),
        ("Duplicate entry 'x' for key 'PRIMARY'", "Duplicate entry '…' for key '…'"),
        ('invalid input syntax for type integer: "x"', 'invalid input syntax for type integer: "…"'),
        (
            'Duplicate key "note: x" violates unique constraint',
            'Duplicate key "…" violates unique constraint',
        ),
        ("DuckDB query of step 'a' failed: boom", "DuckDB query of step 'a' failed: boom"),
    ],
)
def test_route11_what_counts_as_a_value_from_the_data(message, shown):
    assert hide_data_values(message) == shown


@pytest.mark.parametrize(
    "text, inert",
    [
        ("@mallory", True),
        ("ping @acme/admins", True),
        ("a@b.example", False),
        ("postgresql://u:p@host/db", False),
    ],
)
def test_route12_what_counts_as_a_mention(text, inert):
    assert ("@&#8203;" in escape_text(text)) is inert
