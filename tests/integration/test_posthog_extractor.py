"""posthog.extractor end to end: a PostHog query API (`posthog_server.py`) → `osiris-action run` → Postgres.

The server answers HogQL as PostHog does (columns, results, types; `properties` as a JSON string;
datetimes as orjson renders them; OFFSET refused; 401/404/429 bodies) and counts each page it serves, so
the keyset paging is proved to read every page once, also when more events than a page share one
microsecond. Validation cases check each constraint at its place in the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from osiris_action.pipelines import Checker
from tests.conftest import pg_execute
from tests.e2b.conftest import fake_e2b  # noqa: F401 (a fixture)
from tests.integration.posthog_server import PosthogServer
from tests.integration.test_pipeline_runs import _everything, _leaks, run_cli

BASE = datetime(2025, 6, 5, 12, 0, 0, tzinfo=UTC)
TYPES = ["$pageview", "click", "it's quoted", "$autocapture"]
PAGE = 100


def make_events() -> list[dict]:
    found = []
    for i in range(1000):
        # 300 events share one microsecond (three pages' worth), the rest spread over microseconds
        at = BASE + timedelta(seconds=1) if 200 <= i < 500 else BASE + timedelta(microseconds=i * 1001)
        found.append(
            {
                "uuid": str(uuid.UUID(int=(i * 7919) % 10**6 + 1)),
                "event": TYPES[i % 4],
                "timestamp": at,
                "distinct_id": f"user-{i % 37}",
                "person_id": None if i % 10 == 0 else str(uuid.UUID(int=10**9 + i % 37)),
                "properties": {
                    "big": 9007199254740993 + i,
                    "city": "Kraków 🦀",
                    "n": None,
                    "nested": {"i": i},
                },
            }
        )
    found.append(dict(found[1], uuid=str(uuid.UUID(int=99)), timestamp=BASE - timedelta(days=2)))  # too old
    return found


EVENTS = make_events()
PERSONS = [
    {
        "id": str(uuid.UUID(int=10**9 + i)),
        "created_at": BASE + timedelta(milliseconds=i // 3),  # three persons per millisecond
        "properties": {"email": f"p{i}@example.com", "name": "Zoë"},
        "is_identified": i % 2 == 0,
    }
    for i in range(250)
]
SESSIONS = [
    {
        "session_id": f"s-{i:04d}",
        "distinct_id": f"user-{i % 37}",
        "$start_timestamp": BASE + timedelta(seconds=i // 50),
        "$end_timestamp": BASE + timedelta(seconds=i // 50, minutes=5),
        "$session_duration": 300 + i,
        "$pageview_count": None if i < 120 else i,
        "$urls": ["https://example.com/ü", "https://example.com/b"],
    }
    for i in range(230)
]
DISTINCT_IDS = [
    {"distinct_id": f"user-{i}-{j}", "person_id": str(uuid.UUID(int=10**9 + i))}
    for i in range(70)
    for j in range(3)
]
DATA = {"events": EVENTS, "persons": PERSONS, "sessions": SESSIONS, "person_distinct_ids": DISTINCT_IDS}


def project(tmp: Path, steps: str) -> Path:
    (tmp / "osiris_connections.yaml").write_text("""
connections:
  posthog:
    main:
      api_key: ${POSTHOG_API_KEY}
      project_id: "4242"
      region: self_hosted
      custom_base_url: ${POSTHOG_URL}
  supabase:
    staging:
      pg_dsn: ${PG_DSN}
""")
    pipeline = tmp / "posthog.yaml"
    pipeline.write_text('oml_version: "0.1.0"\nname: posthog-copy\nsteps:\n' + steps)
    return pipeline


def extract(step_id: str, data_type: str, extra: str = "") -> str:
    return f"""
  - id: {step_id}
    component: posthog.extractor
    mode: read
    config:
      connection: "@posthog.main"
      data_type: {data_type}
      initial_since: "2025-06-05T00:00:00Z"
      page_size: {PAGE}{extra}
  - id: load-{step_id}
    component: supabase.writer
    mode: write
    needs: [{step_id}]
    config:
      connection: "@supabase.staging"
      table: {step_id}
      write_mode: append
"""


def events_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def env(server: PosthogServer, pg_db, key: str) -> dict[str, str]:
    return {"POSTHOG_API_KEY": key, "POSTHOG_URL": server.url, "PG_DSN": pg_db.pg_dsn}


@pytest.mark.db
def test_events_by_keyset_every_page_once_exact_into_postgres(tmp_path, pg_db):
    key = f"phx_canary{uuid.uuid4().hex}"
    wanted = ["$pageview", "it's quoted"]
    steps = extract("events", "events", f"\n      event_types: {json.dumps(wanted)}")
    with PosthogServer(DATA, api_key=key) as server:
        server.throttle(1, retry_after="1")
        proc = run_cli(project(tmp_path, steps), tmp_path / "out", env(server, pg_db, key))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (
            set(server.pages.values()) == {1} and len(server.pages) == 6
        )  # 500 rows: 5 full pages + 1 empty
        assert all("OFFSET" not in q["query"] for q in server.queries)
        assert all(q["values"]["event_types"] == wanted for q in server.queries)  # bound, never spliced
    expected = [e for e in EVENTS if e["event"] in wanted and e["timestamp"] >= BASE - timedelta(minutes=15)]
    assert len(expected) == 500
    got = {e["event"]: e for e in events_of(tmp_path / "out") if e.get("step_id") == "events"}
    assert got["extract.complete"]["rows"] == 500 and got["extract.complete"]["pages"] == 6
    assert got["extract.complete"]["window_start"] == "2025-06-04T23:45:00.000000Z"
    assert got["http.retry"]["wait_s"] == 1.0
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "read events from 2025-06-04T23:45:00.000000Z to " in summary
    assert "no state is kept between runs" in summary

    types = dict(
        pg_execute(
            pg_db, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'events'"
        )
    )
    assert types == {
        "uuid": "uuid",
        "event": "text",
        "timestamp": "timestamp with time zone",
        "distinct_id": "text",
        "person_id": "uuid",
        "properties": "jsonb",
    }
    rows = pg_execute(
        pg_db,
        "SELECT uuid::text, event, timestamp, person_id::text, properties->>'big', properties->>'city', "
        "properties->'n' FROM events ORDER BY timestamp, uuid",
    )
    assert len(rows) == 500 and len({r[0] for r in rows}) == 500
    by_uuid = {e["uuid"]: e for e in expected}
    for row in rows:
        source = by_uuid[row[0]]
        assert row[1] == source["event"] and row[2] == source["timestamp"] and row[3] == source["person_id"]
        assert int(row[4]) == source["properties"]["big"] and row[5] == "Kraków 🦀"
    assert rows[1][2].microsecond == 2002  # to the microsecond
    assert _leaks(_everything(tmp_path / "out", proc), [key]) == []


@pytest.mark.db
def test_persons_sessions_and_distinct_ids_page_by_keyset(tmp_path, pg_db):
    steps = (
        extract("persons", "persons")
        + extract("sessions", "sessions")
        + extract("ids", "person_distinct_ids")
    )
    with PosthogServer(DATA, api_key="phx_" + "k" * 30) as server:
        proc = run_cli(project(tmp_path, steps), tmp_path / "out", env(server, pg_db, "phx_" + "k" * 30))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert set(server.pages.values()) == {1}
        assert all("OFFSET" not in q["query"] for q in server.queries)
    counts = {t: pg_execute(pg_db, f"SELECT count(*) FROM {t}")[0][0] for t in ("persons", "sessions", "ids")}
    assert counts == {"persons": 250, "sessions": 230, "ids": 210}
    types = dict(
        pg_execute(
            pg_db,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'sessions'",
        )
    )
    assert types["$session_duration"] == "bigint" and types["$pageview_count"] == "bigint"
    assert types["$start_timestamp"] == "timestamp with time zone" and types["$urls"] == "jsonb"
    assert pg_execute(pg_db, "SELECT \"$urls\"->>0 FROM sessions WHERE session_id = 's-0001'") == [
        ("https://example.com/ü",)
    ]
    persons = pg_execute(
        pg_db, "SELECT count(DISTINCT id), bool_and(properties->>'name' = 'Zoë') FROM persons"
    )
    assert persons == [(250, True)]


@pytest.mark.db
def test_a_wrong_key_is_one_line_and_not_retried(tmp_path, pg_db):
    key, wrong = f"phx_canary{uuid.uuid4().hex}", f"phx_wrong{uuid.uuid4().hex}"
    with PosthogServer(DATA, api_key=key) as server:
        proc = run_cli(
            project(tmp_path, extract("events", "events")), tmp_path / "out", env(server, pg_db, wrong)
        )
        assert server.queries == [] and proc.returncode == 1
    failed = next(e for e in events_of(tmp_path / "out") if e["event"] == "step_failed")
    assert failed["step_id"] == "events" and failed["error_type"] == "AuthenticationError"
    assert failed["message"].startswith("step 'events': the PostHog API at ")
    assert failed["message"].endswith(
        "refused the credentials (HTTP 401): Incorrect authentication credentials."
    )
    assert "personal API key" in failed["hint"] and "Traceback" not in proc.stderr
    assert _leaks(_everything(tmp_path / "out", proc), [key, wrong]) == []


@pytest.mark.db
def test_plan_sends_one_row_query_and_writes_nothing(tmp_path, pg_db):
    with PosthogServer(DATA, api_key="phx_" + "k" * 30) as server:
        pipeline = project(tmp_path, extract("events", "events"))
        full = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)} | env(server, pg_db, "phx_" + "k" * 30)
        proc = subprocess.run(
            [sys.executable, "-m", "osiris_action", "plan", str(pipeline), "--out", str(tmp_path / "out")],
            cwd=tmp_path,
            env=full,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert len(server.queries) == 1 and server.queries[0]["query"].endswith("LIMIT 1")
    planned = next(
        e for e in events_of(tmp_path / "out") if e["event"] == "step_planned" and e["step_id"] == "events"
    )
    assert {"name": "timestamp", "type": "timestamp[us, tz=UTC]"} in planned["columns"]
    assert not pg_execute(pg_db, "SELECT 1 FROM information_schema.tables WHERE table_name = 'events'")


# -- validation: each constraint at its place ----------------------------------------------------------

VALID = """\
oml_version: "0.1.0"
name: ph
steps:
  - id: events
    component: posthog.extractor
    mode: read
    config:
      connection: "@posthog.main"
      data_type: events
"""
CONNECTIONS = """\
connections:
  posthog:
    main:
      api_key: ${POSTHOG_API_KEY}
      project_id: "4242"
      region: eu
"""


def check(tmp_path: Path, text: str, connections: str):
    (tmp_path / "p.yaml").write_text(text)
    (tmp_path / "osiris_connections.yaml").write_text(connections)
    checker = Checker(str(tmp_path / "osiris_connections.yaml"))
    checked = checker.check(tmp_path / "p.yaml")
    return [
        (d.code, d.line, d.column, d.message) for d in checked.diagnostics + checker.connection_diagnostics
    ]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OSIRIS_HOME", raising=False)
    return tmp_path


def test_the_valid_step(isolated):
    assert check(isolated, VALID, CONNECTIONS) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (  # self_hosted (from the connection) without a base URL: at the step's `config:`
            "region: eu",
            "region: self_hosted",
            (
                "OML045",
                7,
                5,
                "'custom_base_url' is required when region is 'self_hosted' "
                "(set by its connection or by default)",
            ),
        ),
        (
            "      data_type: events\n",
            "      data_type: events\n      region: self_hosted\n",
            ("OML045", 10, 15, None),
        ),
        ("      api_key: ${POSTHOG_API_KEY}\n", "", ("OML045", 7, 5, "'api_key' is required")),
        (
            "      data_type: events\n",
            "      data_type: events\n      api_key: phx_abc123\n",
            ("OML048", 10, 16, None),
        ),
        (
            "      data_type: events\n",
            '      data_type: events\n      project_id: "1"\n',
            ("OML046", 10, 7, None),
        ),
        ("data_type: events", "data_type: actions", ("OML042", 9, 18, None)),
        (
            "      data_type: events\n",
            "      data_type: events\n      page_size: 50\n",
            ("OML042", 10, 18, None),
        ),
        (
            "      data_type: events\n",
            "      data_type: events\n      lookback_window_minutes: 90\n",
            ("OML042", 10, 32, None),
        ),
        (
            "      data_type: events\n",
            '      data_type: events\n      event_types: [" "]\n',
            ("OML042", 10, 21, None),
        ),
    ],
)
def test_each_constraint_at_its_place(isolated, old, new, expected):
    text, connections = VALID, CONNECTIONS
    if old in VALID:
        text = VALID.replace(old, new)
    else:
        connections = CONNECTIONS.replace(old, new)
    found = check(isolated, text, connections)
    code, line, column, message = expected
    assert [(c, ln, col) for c, ln, col, _ in found] == [(code, line, column)], found
    if message:
        assert found[0][3] == message


@pytest.mark.db
def test_the_example_pipeline_runs_unchanged(tmp_path, pg_db):
    """examples/http-apis/posthog-events.yaml as shipped, its connections pointed at local servers."""
    example = Path(__file__).parents[2] / "examples" / "http-apis" / "posthog-events.yaml"
    (tmp_path / "posthog-events.yaml").write_text(example.read_text())
    (tmp_path / "osiris_connections.yaml").write_text("""
connections:
  posthog:
    main: {default: true, api_key: "${POSTHOG_PERSONAL_API_KEY}", project_id: "12345", region: self_hosted,
           custom_base_url: "${POSTHOG_URL}"}
  supabase:
    main: {default: true, pg_dsn: "${PG_DSN}"}
""")
    day = datetime(2025, 6, 2, tzinfo=UTC)
    events = [
        {
            "uuid": str(uuid.UUID(int=i + 1)),
            "event": ["$pageview", "signed_up", "click"][i % 3],
            "timestamp": day + timedelta(hours=i % 48, microseconds=i),
            "distinct_id": f"u{i % 7}",
            "person_id": None,
            "properties": {"$browser": "Firefox" if i % 4 == 0 else "Safari"},
        }
        for i in range(2400)
    ]
    with PosthogServer({"events": events}, api_key="phx_" + "e" * 30, project_id="12345") as server:
        proc = run_cli(
            tmp_path / "posthog-events.yaml",
            tmp_path / "out",
            {
                "POSTHOG_PERSONAL_API_KEY": "phx_" + "e" * 30,
                "POSTHOG_URL": server.url,
                "PG_DSN": pg_db.pg_dsn,
            },
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert set(server.pages.values()) == {1} and len(server.pages) == 2  # 1,600 rows: 1,000 + 600
    rows = pg_execute(pg_db, "SELECT sum(events), sum(firefox) FROM posthog_daily_events")
    assert rows == [(1600, 400)]


@pytest.mark.db
@pytest.mark.usefixtures("fake_e2b")
def test_local_and_e2b_runs_read_the_same_rows(tmp_path, pg_db, monkeypatch):
    """The worker makes the requests in either sandbox; E2B ships httpx in the bundle's requirements."""
    from osiris_action.bundle import requirements_for
    from osiris_action.sandbox.template import PACKAGES
    from tests.e2b.test_run_parity import both

    key = "phx_" + "b" * 30
    pipeline = project(tmp_path, extract("events", "events"))
    monkeypatch.chdir(tmp_path)
    environ = dict(os.environ, POSTHOG_API_KEY=key, PG_DSN=pg_db.pg_dsn)
    with PosthogServer(DATA, api_key=key) as server:
        environ["POSTHOG_URL"] = server.url
        local, remote = both(
            pipeline, tmp_path, environ, between=lambda: pg_execute(pg_db, "DROP TABLE events")
        )
    assert local["status"] == "success", local
    assert local == remote and local["steps"][0]["rows_out"] == 1000
    manifest = json.loads(next((tmp_path / "e2b").rglob("manifest.json")).read_text())
    assert "httpx" in PACKAGES and any(
        line.startswith("httpx==") for line in requirements_for(manifest).splitlines()
    )


# -- the driver on its own: answers a client must not trust ---------------------------------------------


def direct(tmp_path: Path, server: PosthogServer, key: str, **connection):
    from osiris_drivers import posthog_extractor
    from osiris_drivers._common import StepContext

    seen: list[tuple[str, dict]] = []
    conn = {"api_key": key, "project_id": "4242", "region": "self_hosted", "custom_base_url": server.url}
    ctx = StepContext("ph", conn | connection, tmp_path, tmp_path, emit=lambda e, **f: seen.append((e, f)))
    config = {"data_type": "events", "initial_since": "2025-06-05T00:00:00Z", "page_size": PAGE}
    return posthog_extractor.run({"id": "ph", "config": config}, {}, ctx).read_all(), seen


def test_another_project_is_a_404_naming_what_to_fix(tmp_path):
    from osiris_drivers._common import StepError

    with PosthogServer(DATA, api_key="phx_k") as server, pytest.raises(StepError) as caught:
        direct(tmp_path, server, "phx_k", project_id="999")
    assert "HTTP 404" in caught.value.message and "project_id and region" in caught.value.hint


def test_a_retry_after_too_long_fails_at_once(tmp_path):
    from osiris_drivers._common import StepError

    with PosthogServer(DATA, api_key="phx_k") as server, pytest.raises(StepError) as caught:
        server.throttle(1, retry_after="3600")
        direct(tmp_path, server, "phx_k")
    assert caught.value.error_type == "RateLimited" and "wait 3600 s" in caught.value.message


def test_plain_http_to_a_remote_base_url_is_refused(tmp_path):
    from osiris_drivers._common import StepError

    with PosthogServer(DATA, api_key="phx_k") as server, pytest.raises(StepError) as caught:
        direct(tmp_path, server, "phx_k", custom_base_url="http://posthog.example.com")
    assert "plain http to posthog.example.com" in caught.value.message and server.queries == []


def test_a_server_that_repeats_a_page_is_stopped(tmp_path):
    """A server ignoring the keyset would send page 1 forever (as Osiris's whole-second keyset did)."""
    from osiris_drivers._common import StepError

    with PosthogServer(DATA, api_key="phx_k") as server, pytest.raises(StepError) as caught:
        server.ignore_keyset = True
        direct(tmp_path, server, "phx_k")
    assert caught.value.error_type == "PaginationError" and len(server.queries) == 2
