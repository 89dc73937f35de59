"""End-to-end throughput: `osiris-action run` MySQL → DuckDB → Postgres against the floors and a pandas chain.

    .venv/bin/python bench/throughput.py [--rows 1000000] [--runs 3] [--pandas-runs N] [--profile auto]

One run does everything, on the local MariaDB (127.0.0.1:3306, root) and PostgreSQL (127.0.0.1:5432,
postgres), the way the reference figures were measured:

1. MariaDB database `osiris_bench`, table `events`: N rows x 11 columns generated from `seq_1_to_N`
   (reused when present with the same generator and row count), and a Postgres database `osiris_bench`.
2. A temporary pipeline: mysql.extractor (events) → duckdb.processor
   (`SELECT *, amount*2 AS doubled FROM input_df WHERE flag`) → postgres.writer (events_out, replace).
   Warmed once (that run creates the table), then timed as a whole `osiris-action run` process.
3. Paired with it, run by run: the read floor (`mysql --quick` to /dev/null), the write floor (psql
   `\\copy ... (FORMAT binary)` of the transformed rows into a fresh table with the same primary key) and
   the pandas chain (PyMySQL → pandas.read_sql → DuckDB over the DataFrame → df.to_csv → psycopg COPY
   into a staging table, then an atomic swap).
4. Prints medians, ranges, peak RSS, rows/s and the ratios; checks every run of ours in Postgres.
5. Profiles our run (per-step, fingerprint, writer SQL, host overhead, memory) when it is more than
   1.5x the end-to-end floor or above 500 MB, or always with `--profile always`.

Timings are printed, never asserted. Every command and query is bounded in time; temporary files go.

Whole-process wall, CPU and peak RSS come from a small launcher that starts the command, waits for it
and reads getrusage(RUSAGE_CHILDREN): ru_maxrss is the peak RSS of the largest single process in the
tree (for ours: the worker), not the sum of the tree.

pandas is needed only for the pandas chain (the `bench` extra). Keep it OUT of the venv the worker runs
in: when pandas is importable there, `import adbc_driver_manager.dbapi` (via pyarrow.dataset) imports it
too, which makes every worker start slower and larger. Install it beside the venv instead:

    .venv/bin/pip install --target ~/.cache/osiris-bench/pandas "pandas>=2.2"

The chain runs with that folder on its PYTHONPATH (`--pandas-site`, or $OSIRIS_BENCH_PANDAS_SITE).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

BIN = Path(sys.executable).parent
DB = "osiris_bench"
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
TRANSFORM = "SELECT *, amount*2 AS doubled FROM input_df WHERE flag"
QUOTED_BEST_S = 2.42  # reference figure: connectorx arrow_stream → DuckDB → ADBC, 1M rows, whole process
QUOTED_BEST_RSS_MIB = 315
MEMORY_AIM_MB = 500
PANDAS_AIM = 6.0
PROFILE_FLOOR_RATIO = 1.5
GENERATOR = "osiris-bench events v1"  # stored as the table comment: a changed generator regenerates
DEFAULT_PANDAS_SITE = Path.home() / ".cache" / "osiris-bench" / "pandas"

EVENTS_DDL = """
CREATE TABLE events (
  id BIGINT NOT NULL PRIMARY KEY,
  user_id INT NOT NULL,
  event_type VARCHAR(64) NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  created_at DATETIME NOT NULL,
  score DOUBLE NULL,
  note TEXT NULL,
  flag BOOLEAN NOT NULL,
  country CHAR(2) NOT NULL,
  qty SMALLINT NOT NULL,
  day DATE NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='{comment}'
"""
# Deterministic from the sequence number alone: 9.1 % NULL scores (seq % 11 = 0), 33.3 % NULL notes of
# about 50 characters, half the rows flagged (the transform keeps N/2 rows).
EVENTS_FILL = """
INSERT INTO events
SELECT seq,
       (seq * 7919) % 100000 + 1,
       CONCAT(ELT(1 + seq % 6, 'page_view', 'click', 'purchase', 'signup', 'logout', 'search'),
              '_', seq % 97),
       ((seq * 37) % 100000) / 100,
       TIMESTAMP'2026-01-01 00:00:00' + INTERVAL (seq * 17) SECOND,
       IF(seq % 11 = 0, NULL, (seq % 1000) / 7.0),
       IF(seq % 3 = 0, NULL,
          CONCAT('note ', seq, ': ',
                 LEFT('lorem ipsum dolor sit amet consectetur adipiscing elit sed do', 33 + seq % 10))),
       seq % 2 = 0,
       ELT(1 + seq % 8, 'US', 'DE', 'FR', 'GB', 'JP', 'BR', 'IN', 'CZ'),
       seq % 500 + 1,
       DATE'2024-01-01' + INTERVAL (seq % 1000) DAY
FROM seq_1_to_{rows}
"""

# Runs one command, waits for it, and writes wall, CPU and the largest descendant's peak RSS as JSON.
# On timeout it sends SIGTERM (osiris-action then stops its worker), then SIGKILL.
LAUNCHER = r"""
import json, resource, signal, subprocess, sys, time
out, timeout, *cmd = sys.argv[1:]
started_at = time.time()
started = time.perf_counter()
proc = subprocess.Popen(cmd)
try:
    code = proc.wait(timeout=float(timeout))
except subprocess.TimeoutExpired:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    code = "timeout"
wall = time.perf_counter() - started
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as handle:
    json.dump({"code": code, "wall": wall, "started_at": started_at, "ended_at": time.time(),
               "maxrss_kib": ru.ru_maxrss, "cpu": ru.ru_utime + ru.ru_stime}, handle)
"""


class BenchError(Exception):
    pass


# --- measuring ---------------------------------------------------------------------------------------------


def measure(
    cmd: list[str], tmp: Path, timeout: float, *, log: Path | None = None, env=None, cwd=None
) -> dict:
    """Whole-process wall, CPU and peak RSS of one command (its output goes to `log` or /dev/null)."""
    result = tmp / "launcher.json"
    result.unlink(missing_ok=True)
    sink = log.open("wb") if log else subprocess.DEVNULL
    try:
        proc = subprocess.run(
            [sys.executable, "-c", LAUNCHER, str(result), str(timeout), *cmd],
            stdout=sink,
            stderr=subprocess.STDOUT if log else subprocess.PIPE,
            env=env,
            cwd=cwd,
            timeout=timeout + 30,
            check=False,
        )
    finally:
        if log:
            sink.close()
    if not result.is_file():
        raise BenchError(f"the launcher recorded nothing for {cmd[0]}")
    m = json.loads(result.read_text())
    if m["code"] != 0:
        tail = log.read_text(errors="replace") if log else proc.stderr.decode(errors="replace")
        tail = tail[-3000:]
        raise BenchError(f"{' '.join(cmd[:3])} ... exited with {m['code']} after {m['wall']:.1f} s\n{tail}")
    m["rss_mib"] = m["maxrss_kib"] / 1024
    return m


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- databases ---------------------------------------------------------------------------------------------


def mysql_connect(database: str | None = None):
    import pymysql

    return pymysql.connect(
        **MYSQL, database=database, autocommit=True, connect_timeout=10, read_timeout=600, write_timeout=600
    )


def pg_connect(dbname: str = DB):
    import psycopg

    return psycopg.connect(
        **PG, dbname=dbname, autocommit=True, connect_timeout=10, options="-c statement_timeout=300000"
    )


def pg_query(sql: str, params=None) -> list[tuple]:
    with pg_connect() as con:
        return con.execute(sql, params).fetchall()


def ensure_mysql(rows: int) -> dict:
    """The events table with `rows` rows, generated only when missing or different; its expected output."""
    comment = f"{GENERATOR} rows={rows}"
    con = mysql_connect()
    try:
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DB}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            cur.execute(f"USE `{DB}`")
            cur.execute(
                "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = 'events'",
                (DB,),
            )
            found = cur.fetchone()
            reuse = False
            if found and found[0] == comment:
                cur.execute("SELECT count(*) FROM events")
                reuse = cur.fetchone()[0] == rows
            started = time.perf_counter()
            if not reuse:
                cur.execute("DROP TABLE IF EXISTS events")
                cur.execute(EVENTS_DDL.format(comment=comment))
                cur.execute(EVENTS_FILL.format(rows=int(rows)))
                cur.execute("ANALYZE TABLE events")
                cur.fetchall()
            built = time.perf_counter() - started
            cur.execute("SELECT count(*), sum(amount) FROM events WHERE flag")
            flagged, amount = cur.fetchone()
            cur.execute(
                "SELECT count(score), count(note), avg(length(note)) FROM events",
            )
            scores, notes, note_len = cur.fetchone()
            cur.execute(
                "SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'events'",
                (DB,),
            )
            innodb = cur.fetchone()[0]
            cur.execute("SELECT @@innodb_buffer_pool_size, @@version")
            pool, version = cur.fetchone()
    finally:
        con.close()
    return {
        "rows": rows,
        "reused": reuse,
        "build_s": built,
        "flagged": int(flagged),
        "amount": amount,
        "null_score_pct": 100 * (rows - scores) / rows,
        "null_note_pct": 100 * (rows - notes) / rows,
        "note_len": float(note_len or 0),
        "innodb_mb": innodb / 1e6,
        "buffer_pool_mb": pool / 1e6,
        "mariadb": version,
    }


def ensure_pg() -> tuple[str, str]:
    with pg_connect("postgres") as con:
        if not con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone():
            con.execute(f'CREATE DATABASE "{DB}"')
        version = con.execute("SHOW server_version").fetchone()[0]
        return version, con.execute("SHOW autovacuum").fetchone()[0]


def vacuum(table: str) -> None:
    """`replace` deletes every row; without a vacuum between runs each run would find more dead rows."""
    with pg_connect() as con:
        con.execute(f"VACUUM ANALYZE {table}")


def check_output(table: str, expected: dict) -> tuple[bool, str]:
    count, amount, doubled = pg_query(f"SELECT count(*), sum(amount), sum(doubled) FROM {table}")[0]
    ok = count == expected["flagged"] and amount == expected["amount"] and doubled == 2 * expected["amount"]
    text = f"{table}: {count:,} rows (expected {expected['flagged']:,}), sum(amount) {amount} "
    text += f"(MySQL {expected['amount']}), sum(doubled) {doubled}"
    return ok, text


# --- the cases ---------------------------------------------------------------------------------------------


def write_project(folder: Path) -> Path:
    (folder / "osiris_connections.yaml").write_text(
        f"""version: 1
connections:
  mysql:
    bench:
      host: {MYSQL["host"]}
      port: {MYSQL["port"]}
      database: {DB}
      user: {MYSQL["user"]}
      password: ""
  postgres:
    bench:
      pg_dsn: postgresql://{PG["user"]}@{PG["host"]}:{PG["port"]}/{DB}?sslmode=disable
"""
    )
    pipeline = folder / "throughput.yaml"
    pipeline.write_text(
        f"""oml_version: "0.1.0"
name: throughput-bench
steps:
  - id: extract
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.bench"
      table: events
  - id: transform
    component: duckdb.processor
    mode: transform
    needs: [extract]
    config:
      query: "{TRANSFORM}"
  - id: load
    component: postgres.writer
    mode: write
    needs: [transform]
    config:
      connection: "@postgres.bench"
      table: events_out
      write_mode: replace
      primary_key: [id]
      create_if_missing: true
"""
    )
    return pipeline


def run_ours(pipeline: Path, tmp: Path, name: str, timeout: float) -> dict:
    out = tmp / "runs" / name
    cmd = [str(BIN / "osiris-action"), "run", str(pipeline), "--out", str(out), "--timeout", str(timeout)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    m = measure(cmd, tmp, timeout, log=tmp / f"{name}.log", env=env, cwd=pipeline.parent)
    report = json.loads((out / "report.json").read_text())
    if report["status"] != "success":
        raise BenchError(f"run {name} reported {report['status']}: {report.get('error')}")
    m["events"] = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    return m


def read_floor(tmp: Path, timeout: float) -> dict:
    cmd = ["mysql", "--quick", "--protocol=TCP", "-uroot", f"-h{MYSQL['host']}", f"-P{MYSQL['port']}", DB]
    return measure([*cmd, "-e", "SELECT * FROM events"], tmp, timeout)


def export_floor_rows(tmp: Path, timeout: float) -> Path:
    """The transformed rows (as our warm-up run wrote them, checked) in Postgres binary COPY format."""
    path = tmp / "events_out.pgbin"
    sql = f"\\copy (SELECT * FROM events_out ORDER BY id) TO '{path}' WITH (FORMAT binary)"
    proc = subprocess.run([*psql_cmd(), "-c", sql], timeout=timeout, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BenchError(f"exporting the transformed rows failed: {proc.stderr.strip()}")
    return path


def psql_cmd() -> list[str]:
    host = ["-h", PG["host"], "-p", str(PG["port"]), "-U", PG["user"], "-d", DB]
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *host]


def write_floor(tmp: Path, data: Path, timeout: float) -> dict:
    script = tmp / "floor.sql"
    script.write_text(
        "BEGIN;\nDROP TABLE IF EXISTS events_floor;\n"
        "CREATE TABLE events_floor (LIKE events_out INCLUDING ALL);\n"
        f"\\copy events_floor FROM '{data}' WITH (FORMAT binary)\nCOMMIT;\n"
    )
    return measure([*psql_cmd(), "-f", str(script)], tmp, timeout)


def pandas_site(option: str | None) -> tuple[str | None, str]:
    """Where the pandas chain finds pandas: a folder for its PYTHONPATH, or this venv (with a warning)."""
    import importlib.util

    folder = option or os.environ.get("OSIRIS_BENCH_PANDAS_SITE")
    if folder is None and (DEFAULT_PANDAS_SITE / "pandas").is_dir():
        folder = str(DEFAULT_PANDAS_SITE)
    if folder and (Path(folder) / "pandas").is_dir():
        return folder, f"pandas from {folder} (PYTHONPATH of the chain only; the worker's venv has no pandas)"
    if importlib.util.find_spec("pandas") is not None:
        return None, (
            "pandas from this venv: WARNING, the worker imports it too (via pyarrow.dataset), "
            "which slows every run of ours; see the docstring"
        )
    # Not there yet: install it beside the venv, never into it, so that only the chain sees it.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(DEFAULT_PANDAS_SITE),
            "pandas>=2.2,<4",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode == 0 and (DEFAULT_PANDAS_SITE / "pandas").is_dir():
        return str(DEFAULT_PANDAS_SITE), f"pandas installed into {DEFAULT_PANDAS_SITE} for the chain only"
    raise BenchError(f"pandas is not installed and could not be: {proc.stderr.strip()[-300:]}")


def run_pandas(tmp: Path, site: str | None, timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if site:
        env["PYTHONPATH"] = site
    log = tmp / "pandas.log"
    m = measure(
        [sys.executable, str(Path(__file__).resolve()), "--pandas-chain"], tmp, timeout, log=log, env=env
    )
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    m["work"] = json.loads(lines[-1]) if lines else {}
    return m


def pandas_chain() -> None:
    """The straightforward chain, as a script would write it. Runs in its own process (--pandas-chain)."""
    import warnings

    started = time.perf_counter()
    import duckdb
    import pandas as pd
    import psycopg
    import pymysql

    stamps = {"imports": time.perf_counter() - started}
    t = time.perf_counter()
    con = pymysql.connect(**MYSQL, database=DB, read_timeout=600)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pandas prefers SQLAlchemy; a DBAPI connection works
        df = pd.read_sql("SELECT * FROM events", con)
    con.close()
    stamps["read_sql"] = time.perf_counter() - t
    t = time.perf_counter()
    duck = duckdb.connect()
    duck.register("input_df", df)
    out = duck.sql(TRANSFORM).df()
    duck.close()
    stamps["duckdb"] = time.perf_counter() - t
    t = time.perf_counter()
    buf = io.StringIO()
    out.to_csv(buf, index=False, header=False)
    data = buf.getvalue()
    stamps["to_csv"] = time.perf_counter() - t
    t = time.perf_counter()
    columns = ", ".join(f'"{c}"' for c in out.columns)
    with psycopg.connect(**PG, dbname=DB, options="-c statement_timeout=300000") as pg:  # one transaction
        pg.execute("DROP TABLE IF EXISTS events_pandas__stage")
        pg.execute("CREATE TABLE events_pandas__stage (LIKE events_out INCLUDING ALL)")
        with pg.cursor().copy(f"COPY events_pandas__stage ({columns}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(data)
        pg.execute("DROP TABLE IF EXISTS events_pandas")
        pg.execute("ALTER TABLE events_pandas__stage RENAME TO events_pandas")
        pg.execute("ALTER INDEX events_pandas__stage_pkey RENAME TO events_pandas_pkey")
    stamps["copy_swap"] = time.perf_counter() - t
    stamps["rows"] = len(out)
    print(json.dumps(stamps))


# --- events.jsonl ------------------------------------------------------------------------------------------


def timeline(m: dict) -> dict:
    """Where one whole `osiris-action run` went, from its launcher times and the worker's events."""
    events = m["events"]

    def ts(event: dict) -> float:
        return datetime.fromisoformat(event["ts"]).timestamp()

    start = next(e for e in events if e["event"] == "run_start")
    end = next(e for e in events if e["event"] == "run_complete")
    first_step = next(e for e in events if e["event"] == "step_start")
    steps = {e["step_id"]: e["duration_ms"] / 1000 for e in events if e["event"] == "step_complete"}
    return {
        "before_worker": ts(start) - m["started_at"],  # host: imports, compile, bundle, sandbox, worker start
        "verify": ts(first_step) - ts(start),
        "steps": steps,
        "worker_run": end["duration_ms"] / 1000,
        "after_worker": m["ended_at"] - ts(end),  # host: fetch artifacts, redact, report, exit
    }


# --- profile -----------------------------------------------------------------------------------------------


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Sampler:
    """Samples this process's RSS every 5 ms, so a peak inside a step is seen with the step that made it."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), rss_mib()))
            time.sleep(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def peak(self, start: float, end: float) -> float:
        return max((r for t, r in self.samples if start <= t <= end), default=float("nan"))


HOST_MODULES = (
    "osiris_action.cli",
    "osiris_action.run",
    "osiris_action.manifest",
    "pydantic",
    "osiris_action.render",
    "osiris_action.report",
    "jsonschema",
    "duckdb",
)


def host_imports(timeout: float) -> list[tuple[str, float]]:
    """What the host's modules cost to import: cli at start-up, run/render in `run`, jsonschema and
    duckdb during validation."""
    code = "import osiris_action.cli, osiris_action.run, osiris_action.render, jsonschema, duckdb"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=True,
    )
    found: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() in HOST_MODULES and parts[2].strip() not in found:
            found[parts[2].strip()] = int(parts[1]) / 1e6
    return [(name, found[name]) for name in HOST_MODULES if name in found]


def import_costs(timeout: float) -> list[tuple[str, float, float]]:
    """What the worker's imports cost in a fresh interpreter, in the order its steps import them."""
    code = r"""
import json, resource, time
groups = [("pyarrow, pymysql, connectorx (extract)", "import pyarrow, pyarrow.compute, pymysql, connectorx"),
          ("duckdb (first fingerprint)", "import duckdb"),
          ("adbc_driver_postgresql.dbapi, psycopg (load)",
           "import adbc_driver_manager, adbc_driver_postgresql.dbapi, psycopg.conninfo")]
out = []
for name, stmt in groups:
    t = time.perf_counter(); exec(stmt); out.append((name, time.perf_counter() - t,
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
import sys
out.append(("pandas imported as a side effect", 0.0, float("pandas" in sys.modules)))
print(json.dumps(out))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env, check=True
    )
    return [tuple(x) for x in json.loads(proc.stdout)]


class Timers:
    """Wraps functions by attribute (module or class) with wall-clock timers; undone on exit."""

    def __init__(self):
        self.calls: list[tuple[str, float]] = []
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, owner, name: str, label=None) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                text = label(*args, **kwargs) if callable(label) else (label or name)
                self.calls.append((text, time.perf_counter() - t))

        self._undo.append((owner, name, original))
        setattr(owner, name, timed)

    def total(self, text: str) -> tuple[int, float]:
        hits = [s for label, s in self.calls if label == text]
        return len(hits), sum(hits)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)


def profile_in_process(pipeline: Path, expected: dict) -> dict:
    """One run of the real worker code in this process, with timers around the fingerprint, the
    extractor's and the writer's parts and every statement sent through ADBC, and an RSS sampler."""
    import adbc_driver_manager.dbapi as adbc_dbapi
    from osiris_drivers import _postgres, mysql_extractor, supabase_writer

    from osiris_action import worker
    from osiris_action.run import RunOptions, prepare

    prepared = prepare(pipeline, RunOptions())
    prepared.bundle.seal()
    marks: list[tuple[float, dict]] = []
    tables: dict[str, object] = {}

    class Stream(io.StringIO):
        def write(self, text):
            for line in text.splitlines():
                if line.strip():
                    marks.append((time.perf_counter(), json.loads(line)))
            return len(text)

    original_run_step = worker.run_step

    def keeping_run_step(step, tables_, *args, **kwargs):
        original_run_step(step, tables_, *args, **kwargs)
        if step["id"] in tables_:
            tables[step["id"]] = tables_[step["id"]]

    with Timers() as timers, tempfile.TemporaryDirectory() as tmp:
        timers.wrap(worker, "fingerprint", lambda table: f"fingerprint {table.num_rows:,} rows")
        timers.wrap(worker, "run_step", None)
        worker.run_step = keeping_run_step
        timers.wrap(mysql_extractor, "_probe", "extract: PyMySQL probe (LIMIT 0 + JSON columns)")
        timers.wrap(mysql_extractor, "connect", "extract: PyMySQL connect")
        timers.wrap(mysql_extractor, "_read_connectorx", "extract: connectorx read + normalise (all)")
        timers.wrap(mysql_extractor, "normalise_batch", "extract: normalise_batch (casts)")
        timers.wrap(supabase_writer, "connect", "load: ADBC connect")
        timers.wrap(_postgres, "copyable", "load: copyable() (type fix-ups before COPY)")
        timers.wrap(
            adbc_dbapi.Cursor,
            "execute",
            lambda self, operation, *a, **k: "load SQL: " + " ".join(str(operation).split())[:56],
        )
        timers.wrap(
            adbc_dbapi.Cursor,
            "adbc_ingest",
            "load SQL: adbc_ingest = binary COPY (into the table, or a temp stage)",
        )
        timers.wrap(adbc_dbapi.Connection, "commit", "load SQL: COMMIT")
        root = Path(tmp)
        for rel, data in prepared.bundle.files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        with Sampler() as sampler:
            before = rss_mib()
            started = time.perf_counter()
            code = worker.execute(root, worker.Events("profile", stream=Stream()))
            ended = time.perf_counter()
    if code != 0:
        raise BenchError("the in-process profile run failed: " + json.dumps([e for _, e in marks][-2:]))
    steps = []
    for t_start, event in marks:
        if event["event"] == "step_start":
            sid = event["step_id"]
            t_end = next(t for t, e in marks if e["event"] == "step_complete" and e["step_id"] == sid)
            steps.append((sid, t_end - t_start, sampler.peak(t_start, t_end)))
    return {
        "wall": ended - started,
        "rss_before": before,
        "rss_peak": sampler.peak(started, ended),
        "steps": steps,
        "timers": timers,
        "tables": {k: (t.num_rows, t.nbytes / 2**20) for k, t in tables.items()},
        "transformed": tables.get("transform"),
        "ok": check_output("events_out", expected)[0],
    }


def extract_batch_sizes(rounds: int = 2) -> dict[int, list[float]]:
    """mysql.extractor alone, in-process: its default batch_size against 100k-row batches, A B A B."""
    from osiris_drivers import mysql_extractor
    from osiris_drivers._common import StepContext

    out: dict[int, list[float]] = {10000: [], 100000: []}
    for _ in range(rounds):
        for batch in out:
            step = {"id": "extract", "component": "mysql.extractor", "mode": "extract"}
            step["config"] = {"table": "events", "batch_size": batch}
            with tempfile.TemporaryDirectory() as tmp:
                ctx = StepContext("extract", {**MYSQL, "database": DB}, Path(tmp), Path(tmp))
                t = time.perf_counter()
                table = mysql_extractor.run(step, {}, ctx)
                out[batch].append(time.perf_counter() - t)
                del table
    return out


def writer_alternatives(transformed) -> list[tuple[str, float]]:
    """The same rows into a table that already holds them (as `replace` finds events_out), several ways,
    each one transaction with COMMIT, on one ADBC connection."""
    import adbc_driver_postgresql.dbapi as pgdbapi
    from osiris_drivers._postgres import copyable

    uri = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{DB}?sslmode=disable"
    insert = "INSERT INTO bench_alt SELECT * FROM pg_temp.bench_stage"
    writer = ["stage", "DELETE FROM bench_alt", insert]
    variants = {
        "the staged path (FK-referenced tables, DELETE triggers): stage + DELETE + INSERT ... SELECT": writer,
        "the same, on a table that one earlier replace left unvacuumed (its dead rows still there)": writer,
        "stage + TRUNCATE + INSERT ... SELECT": ["stage", "TRUNCATE bench_alt", insert],
        "as the writer does by default: TRUNCATE + binary COPY straight into the table": [
            "TRUNCATE bench_alt",
            "ingest",
        ],
        "binary COPY into a new table + swap (DROP, RENAME)": [
            "CREATE TABLE bench_alt_new (LIKE events_out INCLUDING ALL)",
            "ingest_new",
            "DROP TABLE bench_alt",
            "ALTER TABLE bench_alt_new RENAME TO bench_alt",
            "ALTER INDEX bench_alt_new_pkey RENAME TO bench_alt_pkey",
        ],
    }
    data = copyable(transformed)
    results = []
    with pgdbapi.connect(uri) as conn:
        for name, statements in variants.items():
            with conn.cursor() as cur:  # set-up, not timed: a table holding the same rows, vacuumed
                cur.execute("DROP TABLE IF EXISTS bench_alt")
                cur.execute("CREATE TABLE bench_alt (LIKE events_out INCLUDING ALL)")
                cur.execute("INSERT INTO bench_alt SELECT * FROM events_out")
            conn.commit()
            conn.adbc_connection.set_autocommit(True)
            with conn.cursor() as cur:
                cur.execute("VACUUM ANALYZE bench_alt")
                if "unvacuumed" in name:
                    cur.execute("DELETE FROM bench_alt")
                    cur.execute("INSERT INTO bench_alt SELECT * FROM events_out")
            conn.adbc_connection.set_autocommit(False)
            t = time.perf_counter()
            with conn.cursor() as cur:
                for statement in statements:
                    if statement == "stage":
                        cur.adbc_ingest("bench_stage", data, mode="create", temporary=True)
                    elif statement.startswith("ingest"):
                        target = "bench_alt_new" if statement == "ingest_new" else "bench_alt"
                        cur.adbc_ingest(target, data, mode="append")
                    else:
                        cur.execute(statement)
            conn.commit()
            results.append((name, time.perf_counter() - t))
            with conn.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS pg_temp.bench_stage")
            conn.commit()
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_alt")
        conn.commit()
    return results


HOST_PARTS = [
    ("osiris_action/run.py", "prepare", "prepare: compile + validate + bundle + resolve secrets"),
    ("osiris_action/oml/sql.py", "check_queries", "  of which SQL checks (DuckDB connection + import)"),
    ("osiris_action/components.py", "validator", "  of which jsonschema validators (import + build)"),
    ("osiris_action/sandbox/local.py", "prepare", "sandbox.prepare: write the bundle files"),
    ("osiris_action/sandbox/local.py", "run", "sandbox.run: the worker's whole life, as the host sees it"),
    (
        "osiris_action/run.py",
        "_on_line",
        "  of which host work per event (parse, redact, events.jsonl, report)",
    ),
    (
        "~",
        "<built-in method posix.waitpid>",
        "  of which waiting for the worker to exit after its last event",
    ),
    ("osiris_action/sandbox/local.py", "fetch", "sandbox.fetch: bring artifacts back"),
    ("osiris_action/redact.py", "redact_file", "  of which redacting the fetched files"),
    ("osiris_action/sandbox/local.py", "close", "sandbox.close: remove the sandbox folder"),
    ("osiris_action/run.py", "_write_outputs", "write report.json + summary.md (render import)"),
]


def host_profile(pipeline: Path, tmp: Path, timeout: float) -> tuple[float, float, list[tuple[str, float]]]:
    """One `osiris-action run` under cProfile (host process only; the worker runs as usual)."""
    import pstats

    stats_file, out = tmp / "host.pstats", tmp / "runs" / "profiled"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(stats_file), "-m", "osiris_action"]
    cmd += ["run", str(pipeline), "--out", str(out), "--timeout", str(timeout)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    m = measure(cmd, tmp, timeout, log=tmp / "profiled.log", env=env, cwd=pipeline.parent)
    stats = pstats.Stats(str(stats_file)).stats
    found = []
    main_cum = 0.0
    for (filename, _line, func), (_cc, _nc, _tt, cum, _callers) in stats.items():
        if filename.endswith("osiris_action/cli.py") and func == "main":
            main_cum = cum
    for suffix, func, label in HOST_PARTS:
        cum = sum(v[3] for (f, _l, fn), v in stats.items() if f.endswith(suffix) and fn == func)
        found.append((label, cum))
    return m["wall"], main_cum, found


def profile(
    pipeline: Path, tmp: Path, ours: list[dict], floor_e2e: float, expected: dict, timeout: float
) -> None:
    print("\n## Profile of our run")
    lines = [timeline(m) for m in ours]
    wall = median([m["wall"] for m in ours])
    print("\nWhere the whole-process wall goes (median of the measured runs; launcher clock and the worker's")
    print("events.jsonl: timestamps, step_complete duration_ms):")
    rows = [
        ("host, until the worker's first event (imports, compile, bundle, worker start)", "before_worker"),
        ("worker: bundle verification (sha256 of each file)", "verify"),
    ]
    rows = [(label, median([t[key] for t in lines])) for label, key in rows]
    for sid in lines[0]["steps"]:
        rows.append((f"worker: step {sid}", median([t["steps"][sid] for t in lines])))
    after = median([t["after_worker"] for t in lines])
    rows.append(("after run_complete (worker exit, fetch, redact, report, host exit)", after))
    for label, value in rows:
        print(f"  {label:<80} {value:6.2f} s  {100 * value / wall:5.1f} %")
    print(f"  {'whole process (median)':<80} {wall:6.2f} s")
    print(f"  {'e2e floor (read floor + write floor, medians)':<80} {floor_e2e:6.2f} s")

    print("\nHost process under cProfile (one extra run; cumulative seconds, cProfile adds some overhead):")
    vacuum("events_out")
    host_wall, main_cum, parts = host_profile(pipeline, tmp, timeout)
    print(f"  {'whole process':<72} {host_wall:6.2f} s")
    print(
        f"  {'interpreter start + importing osiris_action.cli (wall - cli.main)':<72} "
        f"{host_wall - main_cum:6.2f} s"
    )
    for label, cum in parts:
        print(f"  {label:<72} {cum:6.2f} s")
    listed = sum(cum for label, cum in parts if not label.startswith(" "))
    other = "rest of cli.main (lazy imports of run/report/render, pydantic models, printing)"
    print(f"  {other:<72} {main_cum - listed:6.2f} s")

    print("\nHost imports (fresh interpreter, -X importtime, cumulative):")
    for name, seconds in host_imports(timeout):
        print(f"  {name:<58} {seconds:6.3f} s")

    print("\nImports the worker pays (fresh interpreter, in the order its steps import them):")
    for name, seconds, peak in import_costs(timeout):
        if name.startswith("pandas"):
            print(f"  {name:<58} {'yes' if peak else 'no'}")
        else:
            print(f"  {name:<58} {seconds:6.3f} s   peak RSS so far {peak:6.1f} MiB")

    print("\nIn-process run of the same worker code (this interpreter, imports already paid), instrumented:")
    vacuum("events_out")
    prof = profile_in_process(pipeline, expected)
    timers: Timers = prof["timers"]
    ok = "ok" if prof["ok"] else "WRONG"
    print(f"  worker.execute {prof['wall']:.2f} s; output checked in Postgres: {ok}")
    for sid, seconds, peak in prof["steps"]:
        print(f"  step {sid:<10} {seconds:6.2f} s   RSS peak during it {peak:7.1f} MiB")
    print("  parts (count x, total s):")
    seen = []
    for label, _ in timers.calls:
        if label not in seen:
            seen.append(label)
    for label in seen:
        count, total = timers.total(label)
        if total >= 0.005:
            print(f"    {total:6.3f} s  {count:>4}x  {label}")
    fps = [(label, s) for label, s in timers.calls if label.startswith("fingerprint")]
    fp_total = sum(s for _, s in fps)
    print(
        f"  fingerprints: {fp_total:.2f} s in total = {100 * fp_total / prof['wall']:.1f} % of the "
        f"in-process run, {100 * fp_total / wall:.1f} % of our median whole process"
    )
    if len(fps) == 3 and fps[1][0] == fps[2][0]:
        print(
            f"  the load step hashes its input again, the very table the transform step hashed: "
            f"{fps[2][1]:.2f} s spent twice"
        )
    print(
        f"  RSS: {prof['rss_before']:.0f} MiB before the run (imports, this script), "
        f"peak {prof['rss_peak']:.0f} MiB"
    )
    for sid, (n, mib) in prof["tables"].items():
        print(
            f"    output of {sid:<10} {n:>9,} rows  {mib:6.1f} MiB of Arrow buffers, kept until the run ends"
        )

    print("\nmysql.extractor alone (in-process, A B A B): default batch_size 10000 vs 100000")
    for batch, times in extract_batch_sizes().items():
        print(f"  batch_size {batch:>6}: " + ", ".join(f"{t:.2f}" for t in times) + " s")

    if prof["transformed"] is not None:
        transformed_rows = prof["transformed"].num_rows
        print(
            f"\nreplace into a table already holding the same {transformed_rows:,} rows; same Arrow data; "
            "one transaction each:"
        )
        for name, seconds in writer_alternatives(prof["transformed"]):
            print(f"  {seconds:6.2f} s  {name}")


# --- main --------------------------------------------------------------------------------------------------


def fmt_range(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}" if values else "—"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--pandas-runs", type=int, help="runs of the pandas chain (default: 2, or --runs if fewer)"
    )
    parser.add_argument("--pandas-site", help="folder holding pandas (pip install --target)")
    parser.add_argument("--profile", choices=["auto", "always", "never"], default="auto")
    parser.add_argument("--timeout", type=float, default=300, help="seconds any one command may take")
    parser.add_argument("--pandas-chain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pandas_chain:
        pandas_chain()
        return 0
    if args.rows < 2 or args.runs < 1:
        parser.error("--rows must be at least 2 and --runs at least 1")
    wanted = min(args.runs, 2) if args.pandas_runs is None else args.pandas_runs
    pandas_runs = max(0, min(wanted, args.runs))
    started = time.perf_counter()
    args.load_start = load_average()
    try:
        site, site_note = pandas_site(args.pandas_site)
    except BenchError:
        site, site_note = None, "pandas not found: the pandas chain is skipped (see the docstring)"
        pandas_runs = 0

    expected = ensure_mysql(args.rows)
    pg_version, autovacuum = ensure_pg()
    args.pg = f"PostgreSQL {pg_version} (autovacuum {autovacuum})"
    with tempfile.TemporaryDirectory(prefix="osiris-throughput-") as folder:
        tmp = Path(folder)
        (tmp / "project").mkdir()
        pipeline = write_project(tmp / "project")
        with pg_connect() as con:
            con.execute("DROP TABLE IF EXISTS events_out")  # the warm-up run creates it
        warm = run_ours(pipeline, tmp, "warm", args.timeout)
        ok, text = check_output("events_out", expected)
        if not ok:
            raise BenchError(f"the warm-up run wrote wrong data: {text}")
        floor_rows = export_floor_rows(tmp, args.timeout)

        ours, reads, writes, pandas, checks = [], [], [], [], []
        for i in range(args.runs):  # paired: ours, read floor, write floor, pandas, then again
            vacuum("events_out")  # each replace starts from the same state, as after an autovacuum
            ours.append(run_ours(pipeline, tmp, f"run{i}", args.timeout))
            checks.append(check_output("events_out", expected))
            reads.append(read_floor(tmp, args.timeout))
            writes.append(write_floor(tmp, floor_rows, args.timeout))
            if i < pandas_runs:
                pandas.append(run_pandas(tmp, site, args.timeout))
        pandas_check = check_output("events_pandas", expected) if pandas else None
        floor_check = pg_query("SELECT count(*), sum(amount) FROM events_floor")[0]
        floor_file_mb = floor_rows.stat().st_size / 1e6
        with pg_connect() as con:
            con.execute("DROP TABLE IF EXISTS events_floor")
            con.execute("DROP TABLE IF EXISTS events_pandas")
        report(args, expected, site_note, warm, ours, reads, writes, pandas, floor_file_mb)
        print("\n## Correctness (Postgres after each run, against MySQL's flagged rows)")
        for i, (ok, text) in enumerate(checks):
            print(f"  ours run {i + 1}: {'ok' if ok else 'WRONG'}  {text}")
        print(f"  write floor table events_floor: {floor_check[0]:,} rows, sum(amount) {floor_check[1]}")
        if pandas_check:
            print(f"  pandas chain: {'ok' if pandas_check[0] else 'WRONG'}  {pandas_check[1]}")
        fingerprints = {
            tuple(e.get("fingerprint") for e in m["events"] if e["event"] == "step_complete") for m in ours
        }
        print(f"  step fingerprints identical across our runs: {'yes' if len(fingerprints) == 1 else 'NO'}")

        ours_wall = median([m["wall"] for m in ours])
        floor_e2e = median([m["wall"] for m in reads]) + median([m["wall"] for m in writes])
        peak_mb = max(m["rss_mib"] for m in ours) * 2**20 / 1e6
        slow = ours_wall > PROFILE_FLOOR_RATIO * floor_e2e
        heavy = peak_mb > MEMORY_AIM_MB
        if args.profile == "always" or (args.profile == "auto" and (slow or heavy)):
            why = [f"{ours_wall / floor_e2e:.2f}x the e2e floor"] if slow else []
            why += [f"peak {peak_mb:.0f} MB"] if heavy else []
            print(f"\n(profiling: {', '.join(why) or 'asked with --profile always'})")
            profile(pipeline, tmp, ours, floor_e2e, expected, args.timeout)
        else:
            print(f"\n(no profile: {ours_wall / floor_e2e:.2f}x the e2e floor, peak {peak_mb:.0f} MB)")
    print(
        f"\nbench wall time {time.perf_counter() - started:.0f} s; load average now {load_average()} "
        "(other work on the machine skews every figure above); temporary files removed"
    )
    return 0 if all(ok for ok, _ in checks) else 1


def report(args, expected, site_note, warm, ours, reads, writes, pandas, floor_file_mb) -> None:
    n, kept = expected["rows"], expected["flagged"]
    origin = "reused" if expected["reused"] else f"generated in {expected['build_s']:.1f} s"
    print("# Throughput: MySQL → DuckDB → Postgres, `osiris-action run` against the floors")
    print(
        f"\nsource: MariaDB {expected['mariadb']} `{DB}.events`, {n:,} rows x 11 columns "
        f"({origin}), "
        f"InnoDB {expected['innodb_mb']:.0f} MB, buffer pool {expected['buffer_pool_mb']:.0f} MB; "
        f"score NULL {expected['null_score_pct']:.1f} %, note NULL {expected['null_note_pct']:.1f} % "
        f"(avg {expected['note_len']:.0f} chars)"
    )
    print(
        f"target: {args.pg} `{DB}`, events_out vacuumed (untimed) before each run of ours; "
        f"transform keeps {kept:,} rows: {TRANSFORM}"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average {args.load_start} at the start; "
        f"runs: {args.runs} of ours and of each floor, "
        f"{len(pandas)} of the pandas chain"
        + (" (fewer, for time)" if len(pandas) < args.runs else "")
        + ", paired in that order per round; warm-up run of ours (creates events_out) not counted: "
        f"{warm['wall']:.2f} s"
    )
    print(
        "timing: whole-process wall, CPU (user+sys of the tree) and peak RSS (largest single process of the "
        "tree) from a launcher reading getrusage(RUSAGE_CHILDREN) after the command exits"
    )
    print(f"pandas chain: {site_note}")

    def row(case, ms, rows, note=""):
        walls = [m["wall"] for m in ms]
        wall = median(walls)
        rss = max(m["rss_mib"] for m in ms)
        cpu = median([m["cpu"] for m in ms])
        print(
            f"| {case} | {len(ms)} | {wall:.2f} | {fmt_range(walls)} | {rss:,.0f} | {cpu:.2f} | "
            f"{rows / wall:,.0f} | {note} |"
        )

    print("\n| case | runs | median wall s | min–max | peak RSS MiB | cpu s | rows/s | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    row("ours: `osiris-action run` (compile + local sandbox + worker)", ours, n, "source rows/s")
    row("read floor: `mysql --quick` > /dev/null", reads, n, "source rows/s")
    row(
        "write floor: psql `\\copy` binary into a new table with PK",
        writes,
        kept,
        f"rows written/s; {floor_file_mb:.0f} MB file",
    )
    read_m, write_m = median([m["wall"] for m in reads]), median([m["wall"] for m in writes])
    floor = read_m + write_m
    print(
        f"| e2e floor = read floor + write floor (medians) | — | {floor:.2f} | — | — | — | "
        f"{n / floor:,.0f} | |"
    )
    if pandas:
        row(
            "pandas chain: PyMySQL → pandas → DuckDB → to_csv → psycopg COPY + swap",
            pandas,
            n,
            "source rows/s",
        )

    by_run = ", ".join(f"{m['wall']:.2f}" for m in ours)
    print(f"\nours, run by run: {by_run} s")
    ours_wall = median([m["wall"] for m in ours])
    peak = max(m["rss_mib"] for m in ours)
    print("\n| ratio | value | aim |")
    print("|---|---:|---|")
    print(f"| ours / e2e floor (measured here) | {ours_wall / floor:.2f}x | ≤ 1.25x (reference goal) |")
    print(
        f"| ours / best hand-written chain, {QUOTED_BEST_S} s QUOTED from the reference figures "
        f"(other batch, not measured "
        f"here) | {ours_wall / QUOTED_BEST_S:.2f}x | ≤ 1.14x (2.75 s goal) |"
    )
    if pandas:
        pairs = [p["wall"] / o["wall"] for p, o in zip(pandas, ours, strict=False)]
        print(
            f"| pandas chain / ours (medians; paired per round: {', '.join(f'{x:.1f}' for x in pairs)}) | "
            f"{median([m['wall'] for m in pandas]) / ours_wall:.1f}x | ≥ {PANDAS_AIM:.0f}x |"
        )
    print(
        f"| ours peak RSS vs the {MEMORY_AIM_MB} MB aim | {peak:.0f} MiB = {peak * 2**20 / 1e6:.0f} MB = "
        f"{peak * 2**20 / 1e6 / MEMORY_AIM_MB:.0%} of the aim | ≤ {MEMORY_AIM_MB} MB "
        f"(reference best chain: {QUOTED_BEST_RSS_MIB} MiB, quoted) |"
    )
    if pandas and pandas[0].get("work"):
        work = {k: median([p["work"][k] for p in pandas]) for k in pandas[0]["work"] if k != "rows"}
        print(
            "\npandas chain, in-process stages (median s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in work.items())
        )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
