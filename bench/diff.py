"""The data diff of a 1M-row table on the local Postgres, against the COPY write of the same rows.

    .venv/bin/python bench/diff.py [--rows 1000000] [--runs 3]

In a database `osiris_bench_diff` (created, then dropped): each run writes N rows x 6 columns into a
fresh table with a primary key by binary COPY through ADBC, the writer's own path (the baseline, timed),
then the PR's version of them (1 % of rows changed, 0.5 % removed, 0.5 % added), and times
`_diff.describe` + `_diff.compare` of the two, as the writer runs it after an isolated write. Prints
medians and the ratio diff / write; the aim is a diff in at most 2 s and no slower than the write.
Timings are printed, never asserted; the diff's counts are checked against the known differences.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "osiris_bench_diff"
AIM_S = 2.0


def table(rows: int, version: int):
    """Base (version 0) or the PR's rows (version 1): ids 0..rows-1, with known changes in version 1."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pa.array(range(rows), pa.int64())
    amount = pc.divide(pc.cast(pc.bit_wise_and(ids, 8191), pa.float64()), 100.0)
    if version:
        hundred, two_hundred = pc.remainder(ids, 100), pc.remainder(ids, 200)
        amount = pc.if_else(pc.equal(hundred, 1), pc.add(amount, 1.0), amount)  # 1 % changed
        ids = pc.if_else(pc.equal(two_hundred, 3), pc.add(ids, rows), ids)  # 0.5 % to new keys
        keep = pc.not_equal(two_hundred, 2)  # 0.5 % removed
        ids, amount = ids.filter(keep), amount.filter(keep)
    small = pc.remainder(ids, 5000)
    seconds = pc.cast(pc.remainder(ids, 86_400), pa.int64())
    start = 1_704_067_200_000_000  # 2024-01-01 in microseconds
    return pa.table(
        {
            "id": ids,
            "name": pc.binary_join_element_wise("name-", pc.cast(small, pa.string()), ""),
            "amount": amount,
            "qty": pc.cast(pc.remainder(ids, 97), pa.int32()),
            "at": pc.cast(pc.add(pc.multiply(seconds, 1_000_000), start), pa.timestamp("us")),
            "flag": pc.equal(pc.remainder(ids, 3), 0),
        }
    )


def expected(rows: int) -> tuple[int, int, int]:
    """(added, removed, changed) that `table(rows, 1)` holds against `table(rows, 0)`."""
    ids = range(rows)
    removed = sum(1 for i in ids if i % 200 in (2, 3))
    added = sum(1 for i in ids if i % 200 == 3)
    changed = sum(1 for i in ids if i % 100 == 1 and i % 200 not in (2, 3))
    return added, removed, changed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import psycopg
    from osiris_drivers import _diff, _postgres

    admin = psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{DB}"')
    try:
        sql, _ = _postgres.channels({"pg_dsn": f"postgresql://postgres@127.0.0.1:5432/{DB}"}, {})
        base, pr = table(args.rows, 0), table(args.rows, 1)
        want = expected(args.rows)
        writes, diffs = [], []
        for run in range(args.runs):
            conn = _postgres.connect(sql)
            with conn.cursor() as cur:
                cur.execute("CREATE SCHEMA IF NOT EXISTS pr")
                for schema in ("public", "pr"):
                    cur.execute(f"DROP TABLE IF EXISTS {schema}.events")
                    cur.execute(
                        f"CREATE TABLE {schema}.events (id BIGINT PRIMARY KEY, name TEXT, "
                        "amount DOUBLE PRECISION, qty INTEGER, at TIMESTAMP, flag BOOLEAN)"
                    )
                conn.commit()
                started = time.perf_counter()
                _postgres.copy_into(cur, base, "public", "events")
                conn.commit()
                writes.append(time.perf_counter() - started)
                _postgres.copy_into(cur, pr, "pr", "events")
                conn.commit()
                cur.execute("ANALYZE public.events")
                cur.execute("ANALYZE pr.events")
                conn.commit()
                started = time.perf_counter()
                before = _diff.describe(cur, "postgres", "public.events", "public.events")
                after = _diff.describe(cur, "postgres", "pr.events", "pr.events")
                result = _diff.compare(cur, "postgres", before, after)
                diffs.append(time.perf_counter() - started)
                conn.rollback()
            conn.close()
            got = (result["added"], result["removed"], result["changed"])
            status = "ok" if got == want else f"WRONG: got {got}, want {want}"
            print(
                f"run {run + 1}: write (COPY) {writes[-1]:.2f} s, diff {diffs[-1]:.2f} s, "
                f"counts {status}, sample {len(result['sample'])} rows"
            )
        write, diff = statistics.median(writes), statistics.median(diffs)
        print(f"\n{args.rows:,} rows x 6 columns, median of {args.runs}:")
        print(f"  write (binary COPY, primary key)  {write:6.2f} s")
        print(f"  data diff (one pass + sample)     {diff:6.2f} s   aim ≤ {AIM_S:.1f} s")
        print(f"  ratio diff / write                {diff / write:6.2f}   aim ≤ 1.00")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
