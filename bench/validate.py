"""How fast is `validate`, against merely parsing the same files with PyYAML, measured in the same run.

Generates 500 varied, realistic pipelines (3-8 steps: MySQL, CSV and Supabase sources, DuckDB SQL with
joins, CTEs and window functions, Supabase, MySQL and CSV sinks) and a connections file into a temp
folder, then times, on the same files:

  validate      `Checker.check`, the code path of `osiris-action validate` (read, parse with positions,
                every rule, DuckDB parsing every query)
  safe_load     `yaml.safe_load(path.read_text())`, PyYAML's pure-Python loader
  CSafeLoader   `yaml.load(path.read_text(), Loader=yaml.CSafeLoader)`, the libyaml loader

Each is the best of several rounds, after one warm-up file (imports). Then the cold start: the wall
time of `osiris-action validate <one file>` as a new process, median of 5.

    .venv/bin/python bench/validate.py [--files 500] [--rounds 3] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from osiris_action.oml import sql  # noqa: E402
from osiris_action.pipelines import Checker  # noqa: E402

CONNECTIONS = """\
version: 1
connections:
  mysql:
    shop:
      default: true
      host: ${MYSQL_HOST}
      port: 3306
      database: shop
      user: ${MYSQL_USER}
      password: ${MYSQL_PASSWORD}
    analytics:
      host: ${MYSQL_HOST}
      database: analytics
      user: ${MYSQL_USER}
      password: ${MYSQL_PASSWORD}
  supabase:
    main:
      default: true
      url: ${SUPABASE_URL}
      service_role_key: ${SUPABASE_SERVICE_ROLE_KEY}
      pg_dsn: ${SUPABASE_PG_DSN}
  filesystem:
    local:
      default: true
      base_dir: ./data
"""

TABLES = ["orders", "customers", "products", "payments", "shipments", "movies", "events", "invoices"]
COLUMNS = ["id", "customer_id", "amount", "status", "country", "created_at", "category", "price", "qty"]


def _extract(rng: random.Random, sid: str) -> str:
    kind = rng.choice(["mysql", "mysql", "csv", "supabase"])
    table = rng.choice(TABLES)
    if kind == "mysql":
        alias = rng.choice(["shop", "analytics"])
        if rng.random() < 0.5:
            source = f"      table: {table}\n      batch_size: {rng.choice([1000, 5000, 20000])}\n"
        else:
            cols = ", ".join(rng.sample(COLUMNS, 4))
            source = (
                f"      query: |\n        SELECT {cols}\n        FROM {table}\n"
                "        WHERE created_at >= '2024-01-01'\n"
            )
        return (
            f"  - id: {sid}\n    component: mysql.extractor\n    mode: read\n    config:\n"
            f'      connection: "@mysql.{alias}"\n{source}'
        )
    if kind == "csv":
        return (
            f"  - id: {sid}\n    component: filesystem.csv_extractor\n    mode: read\n    config:\n"
            f'      connection: "@filesystem.local"\n      path: {table}.csv\n'
            f'      delimiter: "{rng.choice([",", ";", "|"])}"\n      parse_dates: [created_at]\n'
        )
    return (
        f"  - id: {sid}\n    component: supabase.extractor\n    mode: read\n    config:\n"
        f'      connection: "@supabase.main"\n      table: {table}\n'
        f"      limit: {rng.choice([100, 500, 1000])}\n"
    )


def _transform(rng: random.Random, sid: str, inputs: list[str]) -> str:
    frames = ["df_" + i.replace("-", "_") for i in inputs]
    a = frames[0]
    style = rng.choice(["group", "window", "cte", "join"] if len(frames) > 1 else ["group", "window", "cte"])
    if style == "group":
        sql = (
            f"SELECT country, count(*) AS orders, sum(amount) AS revenue, avg(amount) AS avg_amount\n"
            f"FROM {a}\nWHERE status IN ('paid', 'shipped')\nGROUP BY country\nHAVING count(*) > 10\n"
            f"ORDER BY revenue DESC"
        )
    elif style == "window":
        sql = (
            f"SELECT id, customer_id, amount,\n"
            f"       row_number() OVER (PARTITION BY customer_id ORDER BY created_at DESC) AS rn,\n"
            f"       sum(amount) OVER (PARTITION BY customer_id) AS customer_total\nFROM {a}"
        )
    elif style == "cte":
        sql = (
            f"WITH recent AS (\n  SELECT * FROM {a} WHERE created_at > DATE '2024-06-01'\n),\n"
            f"ranked AS (\n  SELECT *, rank() OVER (ORDER BY amount DESC) AS r FROM recent\n)\n"
            f"SELECT * FROM ranked WHERE r <= 100"
        )
    else:
        b = frames[1]
        sql = (
            f"SELECT x.id, x.amount, y.category, coalesce(y.price, 0) * x.qty AS total\n"
            f"FROM {a} AS x\nLEFT JOIN {b} AS y ON y.id = x.id\nWHERE x.amount > 0"
        )
    body = "\n".join("        " + line for line in sql.splitlines())
    return (
        f"  - id: {sid}\n    component: duckdb.processor\n    mode: transform\n"
        f"    needs: [{', '.join(inputs)}]\n    config:\n      query: |\n{body}\n"
    )


def _write(rng: random.Random, sid: str, source: str) -> str:
    kind = rng.choice(["supabase", "supabase", "mysql", "csv"])
    table = rng.choice(TABLES) + "_summary"
    head = f"  - id: {sid}\n    mode: write\n    needs: [{source}]\n"
    if kind == "supabase":
        mode = rng.choice(["append", "replace", "upsert"])
        key = "" if mode == "append" else "      primary_key: [id]\n"
        return (
            head + "    component: supabase.writer\n    config:\n"
            f'      connection: "@supabase.main"\n      table: {table}\n      write_mode: {mode}\n{key}'
            f"      batch_size: {rng.choice([100, 500, 1000])}\n"
        )
    if kind == "mysql":
        mode = rng.choice(["append", "replace", "upsert"])
        keys = "      upsert_keys: [id]\n" if mode == "upsert" else ""
        return (
            head + "    component: mysql.writer\n    config:\n"
            f'      connection: "@mysql.analytics"\n      table: {table}\n      mode: {mode}\n{keys}'
        )
    return (
        head + "    component: filesystem.csv_writer\n    config:\n"
        f'      connection: "@filesystem.local"\n      path: out/{table}.csv\n      newline: lf\n'
    )


def pipeline(rng: random.Random, n: int) -> str:
    """One pipeline of 3-8 steps: 1-3 extractors, transforms over them, 1-2 writers at the end."""
    total = rng.randint(3, 8)
    writers = 1 if total < 5 else rng.randint(1, 2)
    extractors = min(rng.randint(1, 3), total - writers - 1) or 1
    transforms = total - writers - extractors
    steps, produced = [], []
    for i in range(extractors):
        sid = f"extract-{rng.choice(TABLES)}-{i}"
        steps.append(_extract(rng, sid))
        produced.append(sid)
    last = produced[-1]
    for i in range(transforms):
        sid = f"transform-{i}"
        inputs = rng.sample(produced, min(len(produced), rng.choice([1, 1, 2])))
        steps.append(_transform(rng, sid, inputs))
        produced.append(sid)
        last = sid
    for i in range(writers):
        steps.append(_write(rng, f"write-{i}", last))
    return (
        f'oml_version: "0.1.0"\nname: pipeline-{n:04d}\ndescription: Generated pipeline {n}\n'
        f"metadata:\n  owner: data-team\n  tags: [bench, generated]\nsteps:\n" + "".join(steps)
    )


def generate(folder: Path, count: int, seed: int) -> list[Path]:
    rng = random.Random(seed)
    (folder / "osiris_connections.yaml").write_text(CONNECTIONS)
    paths = []
    for n in range(count):
        path = folder / f"pipeline_{n:04d}.yaml"
        path.write_text(pipeline(rng, n))
        paths.append(path)
    return paths


def cpu_now() -> float:
    """CPU seconds of this process and of its SQL parser (validation parses SQL in a child process)."""
    total = time.process_time()
    proc = sql._parser._proc
    if proc is not None:
        with open(f"/proc/{proc.pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def best_of(rounds: int, fn, paths: list[Path]) -> tuple[float, float]:
    """(wall, CPU) seconds, each the best of `rounds`: CPU time shows what other load on the machine
    does to the wall clock."""
    fn(paths[:1])  # warm-up: imports, the DuckDB connection, compiled schema validators
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), cpu_now()
        fn(paths)
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_now() - cpu)
    return min(walls), min(cpus)


def run_validate(paths: list[Path]) -> None:
    checker = Checker()
    for path in paths:
        checker.check(path)


def sql_share(paths: list[Path]) -> float:
    """The share of one validate pass's CPU spent on the SQL (`sql.check_queries`: the round trip to the
    parser process, and the parsing there)."""
    original, spent = sql.check_queries, [0.0]

    def timed(queries):
        started = cpu_now()
        try:
            return original(queries)
        finally:
            spent[0] += cpu_now() - started

    sql.check_queries = timed
    try:
        cpu = cpu_now()
        run_validate(paths)
        return spent[0] / (cpu_now() - cpu)
    finally:
        sql.check_queries = original


def run_safe_load(paths: list[Path]) -> None:
    for path in paths:
        yaml.safe_load(path.read_text())


def run_c_loader(paths: list[Path]) -> None:
    for path in paths:
        yaml.load(path.read_text(), Loader=yaml.CSafeLoader)


def cold_start(path: Path, repeats: int = 5) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of each run of the console script as a new process (its SQL
    parser process, which outlives it by a moment, is not counted)."""
    script = Path(sys.executable).parent / "osiris-action"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "osiris_action"]
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([*command, "validate", str(path)], cwd=path.parent, capture_output=True, check=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="osiris-bench-"))
    try:
        paths = generate(folder, args.files, args.seed)
        checker = Checker()
        findings = [d for p in paths for d in checker.check(p).diagnostics]
        steps = sum(p.read_text().count("\n  - id: ") for p in paths)
        size = sum(p.stat().st_size for p in paths)
        print(f"{len(paths)} pipelines, {steps} steps, {size / 1024:.0f} KiB; {len(findings)} finding(s)")
        if findings:
            print("  first:", findings[0].code, findings[0].message)

        ours = best_of(args.rounds, run_validate, paths)
        pure = best_of(args.rounds, run_safe_load, paths)
        libyaml = best_of(args.rounds, run_c_loader, paths)
        print(f"{'':31}{'wall':>9}{'files/s':>10}{'CPU':>12}")
        for label, (wall, cpu) in [
            ("validate (Checker.check)", ours),
            ("yaml.safe_load", pure),
            ("yaml.load(CSafeLoader)", libyaml),
        ]:
            print(f"{label:31}{wall * 1000:7.0f} ms{len(paths) / wall:10.0f}{cpu * 1000:9.0f} ms")
        for label, base in [("safe_load", pure), ("CSafeLoader", libyaml)]:
            print(
                f"ratio validate / {label:14}{ours[0] / base[0]:7.2f}x wall {ours[1] / base[1]:7.2f}x CPU"
                + ("   (aim < 3x)" if label == "safe_load" else "")
            )

        print(f"share of validate's CPU (with its SQL parser's) spent on the SQL: {sql_share(paths):.0%}")

        walls, cpus = cold_start(paths[0])
        print(
            f"cold start `osiris-action validate <one file>`, median of {len(walls)}: "
            f"{statistics.median(walls):.3f} s wall (min {min(walls):.3f}), "
            f"{statistics.median(cpus):.3f} s CPU of the command itself; aim < 0.4 s"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
