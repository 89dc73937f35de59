"""End-to-end throughput: `osiris-action run` MySQL → DuckDB → Postgres against the best hand-written chain.

    .venv/bin/python bench/throughput.py [--rows 1000000] [--runs 3] [--growth 10000000] [--timeout 600]

One run does everything on the local MariaDB (127.0.0.1:3306, root) and PostgreSQL (127.0.0.1:5432,
postgres):

1. MariaDB database `osiris_bench`: `events_<N>` (N rows x 11 columns) and `users` (100k rows), both
   generated in SQL from MariaDB's sequence engine (seconds even for 10M rows) and reused when present.
2. The pipeline: mysql.extractor → duckdb.processor (`SELECT *, amount*2 AS doubled FROM input_df WHERE
   flag`) → postgres.writer (replace), as a whole `osiris-action run` process, paired run by run (A B A B)
   with the hand-written streaming chain on the same data: connectorx `arrow_stream` → DuckDB
   `to_arrow_reader` → ADBC `adbc_ingest` (TRUNCATE + COPY in one transaction, as our writer does).
3. A join pipeline (events x users, 1M x 100k) and a fan-out pipeline (one extract, two writers).
4. With `--growth M`: the pipeline once more on M rows, for the time and memory growth.

Each case prints its whole-process wall, CPU, peak RSS of the whole process tree (host + worker, sampled
every 20 ms), and each stage's share of the time, from the worker's events: host start-up before the
worker's first event, bundle verification, each step's own time (steps run nested in one another, so a
step's own time excludes the steps it pulls rows from), fingerprinting, and the host's work after the run.
Timings are printed, never asserted. Every output is checked in Postgres against MySQL.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

BIN = Path(sys.executable).parent
DB = "osiris_bench"
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
TRANSFORM = "SELECT *, amount*2 AS doubled FROM input_df WHERE flag"
GENERATOR = "osiris-bench events v1"  # stored as the table comment: a changed generator regenerates
USERS = 100_000  # the small side of the join pipeline
BATCH = 10_000  # rows per batch, for ours and for the chain: mysql.extractor's default batch_size
AIM_CHAIN_RATIO, AIM_RSS_MB, AIM_GROWTH_TIME, AIM_GROWTH_RSS = 1.2, 300, 11.0, 0.20

EVENTS_DDL = """
CREATE TABLE {table} (
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
INSERT INTO {table}
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

# Runs one command, waits for it, and writes wall, CPU and peak RSS as JSON: `tree_mib` is the largest sum
# of the RSS of the command and all its descendants (host + worker), sampled every 20 ms; `largest_mib` the
# peak of the largest single process (getrusage). On timeout: SIGTERM (osiris-action stops its worker),
# then SIGKILL.
LAUNCHER = r"""
import json, os, resource, signal, subprocess, sys, threading, time
out, timeout, *cmd = sys.argv[1:]
page = os.sysconf("SC_PAGE_SIZE")
def tree(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as h:
                    todo += [int(c) for c in h.read().split()]
        except OSError:
            pass
    return pids
def rss(pid):
    try:
        with open(f"/proc/{pid}/statm") as h:
            return int(h.read().split()[1]) * page
    except OSError:
        return 0
peak = [0]
done = threading.Event()
def sample(pid):
    while not done.is_set():
        peak[0] = max(peak[0], sum(rss(p) for p in tree(pid)))
        time.sleep(0.02)
started_at = time.time()
started = time.perf_counter()
proc = subprocess.Popen(cmd)
sampler = threading.Thread(target=sample, args=(proc.pid,), daemon=True)
sampler.start()
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
done.set()
sampler.join()
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as handle:
    json.dump({"code": code, "wall": wall, "started_at": started_at, "ended_at": time.time(),
               "largest_mib": ru.ru_maxrss / 1024, "tree_mib": peak[0] / 2**20,
               "cpu": ru.ru_utime + ru.ru_stime}, handle)
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


def ensure_mysql(rows: int, table: str = "events") -> dict:
    """`table` with `rows` event rows, generated in SQL from MariaDB's sequence engine, only when missing or
    different; its expected output."""
    comment = f"{GENERATOR} rows={rows}"
    con = mysql_connect()
    try:
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DB}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            cur.execute(f"USE `{DB}`")
            cur.execute(
                "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = %s",
                (DB, table),
            )
            found = cur.fetchone()
            reuse = False
            if found and found[0] == comment:
                cur.execute(f"SELECT count(*) FROM {table}")
                reuse = cur.fetchone()[0] == rows
            started = time.perf_counter()
            if not reuse:
                cur.execute(f"DROP TABLE IF EXISTS {table}")
                cur.execute(EVENTS_DDL.format(comment=comment, table=table))
                cur.execute(EVENTS_FILL.format(rows=int(rows), table=table))
                cur.execute(f"ANALYZE TABLE {table}")
                cur.fetchall()
            built = time.perf_counter() - started
            cur.execute(f"SELECT count(*), sum(amount) FROM {table} WHERE flag")
            flagged, amount = cur.fetchone()
            cur.execute(
                f"SELECT count(score), count(note), avg(length(note)) FROM {table}",
            )
            scores, notes, note_len = cur.fetchone()
            cur.execute(
                "SELECT DATA_LENGTH + INDEX_LENGTH FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (DB, table),
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


# --- the pipelines -----------------------------------------------------------------------------------------

USERS_DDL = "CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, tier CHAR(1) NOT NULL)"
USERS_FILL = (
    "INSERT INTO users SELECT seq, CONCAT('user ', seq), ELT(1 + seq % 3, 'a', 'b', 'c') FROM seq_1_to_{n}"
)


def ensure_users() -> None:
    con = mysql_connect(DB)
    try:
        with con.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'users'",
                (DB,),
            )
            if cur.fetchone()[0]:
                cur.execute("SELECT count(*) FROM users")
                if cur.fetchone()[0] == USERS:
                    return
            cur.execute("DROP TABLE IF EXISTS users")
            cur.execute(USERS_DDL)
            cur.execute(USERS_FILL.format(n=USERS))
    finally:
        con.close()


def connections_yaml() -> str:
    return f"""version: 1
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


def extract(step_id: str, table: str) -> str:
    return f"""  - id: {step_id}
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.bench"
      table: {table}
      batch_size: {BATCH}
"""


def transform(step_id: str, needs: list[str], query: str) -> str:
    return f"""  - id: {step_id}
    component: duckdb.processor
    mode: transform
    needs: [{", ".join(needs)}]
    config:
      query: "{query}"
"""


def load(step_id: str, needs: str, table: str) -> str:
    return f"""  - id: {step_id}
    component: postgres.writer
    mode: write
    needs: [{needs}]
    config:
      connection: "@postgres.bench"
      table: {table}
      write_mode: replace
      primary_key: [id]
      create_if_missing: true
"""


def pipelines(folder: Path, events: str) -> dict[str, tuple[Path, list[str]]]:
    """name → (pipeline file, the Postgres tables it writes)."""
    (folder / "osiris_connections.yaml").write_text(connections_yaml())
    joined = (
        "SELECT e.id, e.amount, e.country, u.name, u.tier "
        "FROM df_events e JOIN df_users u ON u.id = e.user_id"
    )
    shapes = {
        "pipeline": (
            extract("extract", events)
            + transform("transform", ["extract"], TRANSFORM)
            + load("load", "transform", "events_out"),
            ["events_out"],
        ),
        "join": (
            extract("events", events)
            + extract("users", "users")
            + transform("joined", ["events", "users"], joined)
            + load("load", "joined", "events_joined"),
            ["events_joined"],
        ),
        "fanout": (
            extract("extract", events)
            + load("load_a", "extract", "events_a")
            + load("load_b", "extract", "events_b"),
            ["events_a", "events_b"],
        ),
    }
    out = {}
    for name, (steps, tables) in shapes.items():
        path = folder / f"{name}.yaml"
        path.write_text(f'oml_version: "0.1.0"\nname: bench-{name}\nsteps:\n{steps}')
        out[name] = (path, tables)
    return out


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


# --- the hand-written chain ------------------------------------------------------------------------------

CHAIN_SQL = (
    "SELECT * REPLACE (amount::DECIMAL(12,2) AS amount, flag::BOOLEAN AS flag), "
    "amount::DECIMAL(12,2) * 2 AS doubled FROM src WHERE flag"
)


def chain(events: str) -> None:
    """connectorx arrow_stream → DuckDB to_arrow_reader → ADBC adbc_ingest, TRUNCATE + COPY in one transaction
    into a copy of events_out. Runs in its own process (--chain); prints its in-process stage times."""
    started = time.perf_counter()
    import adbc_driver_postgresql.dbapi as pgdbapi
    import connectorx
    import duckdb

    stamps = {"imports": time.perf_counter() - started}
    url = f"mysql://{MYSQL['user']}:@{MYSQL['host']}:{MYSQL['port']}/{DB}"
    uri = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{DB}?sslmode=disable"
    t = time.perf_counter()
    source = connectorx.read_sql(url, f"SELECT * FROM {events}", return_type="arrow_stream", batch_size=BATCH)
    con = duckdb.connect()
    con.register("src", source)
    out = con.sql(CHAIN_SQL).to_arrow_reader(BATCH)
    with pgdbapi.connect(uri) as conn:
        with conn.cursor() as cur:
            cur.execute("TRUNCATE events_chain")
            rows = cur.adbc_ingest("events_chain", out, mode="append")
        conn.commit()
    stamps["extract_transform_load"] = time.perf_counter() - t
    stamps["rows"] = rows
    print(json.dumps(stamps))


def run_chain(tmp: Path, events: str, name: str, timeout: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    log = tmp / f"{name}.log"
    m = measure(
        [sys.executable, str(Path(__file__).resolve()), "--chain", events], tmp, timeout, log=log, env=env
    )
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    m["work"] = json.loads(lines[-1]) if lines else {}
    return m


# --- where the time went ---------------------------------------------------------------------------------


def stages(m: dict) -> list[tuple[str, float]]:
    """(stage, seconds) of one whole `osiris-action run`: the launcher's clock and the worker's events."""
    events = m["events"]

    def ts(event: dict) -> float:
        return datetime.fromisoformat(event["ts"]).timestamp()

    start = next(e for e in events if e["event"] == "run_start")
    end = next(e for e in events if e["event"] == "run_complete")
    first = next(e for e in events if e["event"] == "step_start")
    out = [("host: start-up, compile, bundle, worker start", ts(start) - m["started_at"])]
    out.append(("worker: bundle verification", ts(first) - ts(start)))
    fingerprints = 0.0
    for e in events:
        if e["event"] == "step_complete":
            out.append((f"step {e['step_id']} (own time)", e.get("own_ms", e["duration_ms"]) / 1000))
            fingerprints += e.get("fingerprint_ms", 0) / 1000
    out.append(("fingerprints (time the streams waited for them)", fingerprints))
    rest = end["duration_ms"] / 1000 - sum(s for _, s in out[1:])
    if rest >= 0:
        out.append(("worker: rest (imports, events, spill, waits)", rest))
    else:  # stages that ran at the same time on several cores add up to more than the wall time
        out.append(("overlap: stages that ran at the same time", rest))
    out.append(("host: after the run (exit, fetch, report)", m["ended_at"] - ts(end)))
    return out


def print_stages(name: str, m: dict) -> None:
    print(f"\n{name}: each stage's share of {m['wall']:.2f} s")
    for label, seconds in stages(m):
        print(f"  {label:<52} {seconds:6.2f} s  {100 * seconds / m['wall']:5.1f} %")


# --- main ------------------------------------------------------------------------------------------------


def fmt_range(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}" if values else "—"


def row(case: str, ms: list[dict], rows: int) -> None:
    walls = [m["wall"] for m in ms]
    print(
        f"| {case} | {len(ms)} | {median(walls):.2f} | {fmt_range(walls)} | "
        f"{median([m['cpu'] for m in ms]):.2f} | "
        f"{max(m['tree_mib'] for m in ms):,.0f} | {max(m['largest_mib'] for m in ms):,.0f} | "
        f"{rows / median(walls):,.0f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--growth", type=int, metavar="ROWS", help="also run the pipeline once on this many rows"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds any one command may take")
    parser.add_argument("--chain", metavar="TABLE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.chain:
        chain(args.chain)
        return 0
    if args.rows < 2 or args.runs < 1:
        parser.error("--rows must be at least 2 and --runs at least 1")
    started, load_start = time.perf_counter(), load_average()
    compile_package()
    events = f"events_{args.rows}"
    expected = ensure_mysql(args.rows, events)
    ensure_users()
    pg_version, _ = ensure_pg()
    checks: list[tuple[bool, str]] = []
    with tempfile.TemporaryDirectory(prefix="osiris-throughput-") as folder:
        tmp = Path(folder)
        (tmp / "project").mkdir()
        cases = pipelines(tmp / "project", events)
        with pg_connect() as con:
            for table in ("events_out", "events_joined", "events_a", "events_b", "events_chain"):
                con.execute(f"DROP TABLE IF EXISTS {table}")
        run_ours(cases["pipeline"][0], tmp, "warm", args.timeout)  # creates events_out
        with pg_connect() as con:
            con.execute("CREATE TABLE events_chain (LIKE events_out INCLUDING ALL)")
        run_chain(tmp, events, "chain-warm", args.timeout)
        ours, chains = [], []
        for i in range(args.runs):  # paired: ours, chain, ours, chain, ...
            vacuum("events_out")
            ours.append(run_ours(cases["pipeline"][0], tmp, f"run{i}", args.timeout))
            checks.append(check_output("events_out", expected))
            vacuum("events_chain")
            chains.append(run_chain(tmp, events, f"chain{i}", args.timeout))
            checks.append(check_output("events_chain", expected))
        others = {}
        for name in ("join", "fanout"):
            run_ours(cases[name][0], tmp, f"{name}-warm", args.timeout)
            for table in cases[name][1]:
                vacuum(table)
            others[name] = run_ours(cases[name][0], tmp, name, args.timeout)
        joined = pg_query("SELECT count(*), sum(amount) FROM events_joined")[0]
        checks.append(
            (
                joined[0] == expected["rows"],
                f"events_joined: {joined[0]:,} rows (expected {expected['rows']:,})",
            )
        )
        for table in cases["fanout"][1]:
            count, amount = pg_query(f"SELECT count(*), sum(amount) FROM {table}")[0]
            total = mysql_total(events)
            checks.append(
                (
                    count == expected["rows"] and amount == total,
                    f"{table}: {count:,} rows, sum(amount) {amount}",
                )
            )
        growth = None
        if args.growth:
            big = f"events_{args.growth}"
            growth_expected = ensure_mysql(args.growth, big)
            growth_cases = pipelines(tmp / "project", big)
            vacuum("events_out")
            growth = run_ours(growth_cases["pipeline"][0], tmp, "growth", args.timeout * 10)
            checks.append(check_output("events_out", growth_expected))

    print("# Throughput: MySQL → DuckDB → Postgres, `osiris-action run` against the hand-written chain")
    origin = "reused" if expected["reused"] else f"generated in SQL in {expected['build_s']:.1f} s"
    print(
        f"\nsource: MariaDB {expected['mariadb']} `{DB}.{events}`, {args.rows:,} rows x 11 columns "
        f"({origin}), "
        f"InnoDB {expected['innodb_mb']:.0f} MB; `users` {USERS:,} rows. target: PostgreSQL {pg_version}."
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load_start} at the start; batches of {BATCH:,} rows"
    )
    print(
        "\n| case | runs | median wall s | min–max | cpu s | peak RSS host+worker MiB | "
        "largest process MiB | source rows/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    row("ours: extract → DuckDB filter → replace", ours, args.rows)
    row("chain: connectorx → DuckDB → ADBC (hand-written)", chains, args.rows)
    row(f"ours: join {args.rows:,} x {USERS:,} → replace", [others["join"]], args.rows)
    row("ours: fan-out, one extract → two replace writers", [others["fanout"]], args.rows)
    if growth:
        row(f"ours: extract → DuckDB filter → replace, {args.growth:,} rows", [growth], args.growth)
    ours_wall, chain_wall = median([m["wall"] for m in ours]), median([m["wall"] for m in chains])
    pairs = ", ".join(f"{o['wall'] / c['wall']:.2f}" for o, c in zip(ours, chains, strict=True))
    peak = max(m["tree_mib"] for m in ours)
    print("\n| ratio | value | aim |")
    print("|---|---:|---|")
    print(
        f"| ours / chain (medians; paired runs: {pairs}) | {ours_wall / chain_wall:.2f}x "
        f"| ≤ {AIM_CHAIN_RATIO}x |"
    )
    print(f"| ours peak RSS, host + worker | {peak * 2**20 / 1e6:.0f} MB | ≤ {AIM_RSS_MB} MB |")
    if growth:
        time_ratio = growth["wall"] / ours_wall
        rss_ratio = growth["tree_mib"] / peak - 1
        print(
            f"| {args.growth:,} rows / {args.rows:,} rows, time | {time_ratio:.2f}x | "
            f"≤ {AIM_GROWTH_TIME * args.growth / args.rows / 10:.0f}x |"
        )
        print(
            f"| {args.growth:,} rows / {args.rows:,} rows, peak RSS | {rss_ratio:+.0%} "
            f"| within ±{AIM_GROWTH_RSS:.0%} |"
        )
    chain_work = median([c["work"].get("extract_transform_load", float("nan")) for c in chains])
    print(
        f"\nchain, in-process: imports {median([c['work'].get('imports', 0) for c in chains]):.2f} s, "
        f"extract+transform+load {chain_work:.2f} s"
    )
    print_stages("ours (median run)", sorted(ours, key=lambda m: m["wall"])[len(ours) // 2])
    print_stages("join", others["join"])
    print_stages("fan-out", others["fanout"])
    if growth:
        print_stages(f"ours at {args.growth:,} rows", growth)
    print("\n## Correctness (Postgres after each run, against MySQL)")
    for ok, text in checks:
        print(f"  {'ok   ' if ok else 'WRONG'} {text}")
    print(
        f"\nbench wall time {time.perf_counter() - started:.0f} s; load average now {load_average()} "
        "(other work on the machine skews every figure above)"
    )
    return 0 if all(ok for ok, _ in checks) else 1


def compile_package() -> None:
    """Byte-compile the project as an installed package is (a wheel's install writes the .pyc files; an
    editable install under PYTHONDONTWRITEBYTECODE never does, and each run would compile it again)."""
    root = Path(__file__).resolve().parent.parent
    packages = [str(root / "osiris_action"), str(root / "drivers")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True)


def mysql_total(table: str):
    con = mysql_connect(DB)
    try:
        with con.cursor() as cur:
            cur.execute(f"SELECT sum(amount) FROM {table}")
            return cur.fetchone()[0]
    finally:
        con.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
