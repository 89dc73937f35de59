"""supabase.writer (also postgres.writer): write an Arrow stream into a Postgres/Supabase table.

SQL channel (`sql_copy`), used whenever the connection gives pg_dsn/dsn or host + user + database. The write
is ONE transaction, which also holds the CREATE TABLE of a missing table: any failure rolls it all back and
the target is exactly as before. ADBC streams the Arrow batches as binary COPY on the same libpq session, in
one of two ways; write.complete says which as `method` (and, when staged, why as `staged_because`):

- direct_copy: COPY straight into the target, for append and replace whenever that stores exactly what the
  staged INSERT would (`_postgres.copy_blockers` says when: no value needs a cast, a plain table without
  rules or row-level security for this user; for replace also no foreign key referencing it, no ON DELETE
  or ON TRUNCATE trigger, no inheritance child, no publication of its deletes). It is checked once more
  after locking the table as the write needs it, so DDL committed in between cannot slip past.
  - append:  COPY into the table.
  - replace: LOCK the table, count its rows (rows_deleted), TRUNCATE, COPY. About 2x faster than the staged
             DELETE + INSERT ... SELECT: the rows are written once, and no dead tuples are left behind.
             TRUNCATE is transactional (a rollback brings the rows back). The price: its ACCESS EXCLUSIVE
             lock is held until COMMIT, so readers wait for the load instead of seeing the old rows (and the
             lock first waits for queries already reading the table); a transaction whose snapshot is older
             than the COMMIT sees the table empty (TRUNCATE is not MVCC-safe). TRUNCATE fires ON TRUNCATE
             triggers instead of ON DELETE ones, which is why a table with either keeps the DELETE path.
- staged: COPY into a temporary staging table (adbc_ingest, temporary=True; dropped before COMMIT, gone with
  a rollback), then on the same session:
  - append:  INSERT INTO target SELECT ... FROM staging, with the casts the columns need.
  - replace: DELETE FROM target, then the INSERT. The table itself stays (grants, RLS policies, triggers,
             dependent views, foreign keys), readers see the old rows until COMMIT.
  - upsert (always staged, ON CONFLICT needs the rows as a relation): INSERT ... ON CONFLICT (primary_key)
             DO UPDATE SET ... WHERE the row really changed, so unchanged rows cost no dead tuple;
             rows_written counts inserted and changed rows.
rows_written is the server's count: the INSERT's row count, or what this transaction's inserted-row counter
for the table grew by during a direct COPY (adbc_ingest returns the rows it sent, which includes any a
BEFORE trigger skipped).

REST channel (`rest`, PostgREST as Supabase serves it), used only when the connection gives just a url and a
key: JSON batches of `batch_size` rows. It is NOT atomic: a failure part-way leaves the batches already sent,
and replace (delete every row through a filter on primary_key, then insert) shows an empty or partial table
while it runs. write.complete says `atomic: false`. 5xx and 429 answers are retried (exponential backoff,
`retries` times): after a gateway timeout an append batch the database did commit may land twice.
Over REST a missing table cannot be created: the driver writes ddl.sql and fails, naming the pg_dsn to
add, rather than succeeding with zero rows.

Naive timestamps are taken as UTC. `prefer: resolution=ignore-duplicates` makes upsert keep existing rows
(ON CONFLICT DO NOTHING); `returning` and the other `prefer` values change nothing (rows are never returned).
`timeout` bounds connecting and each HTTP request, not the load itself. `ddl_channel` is accepted for
compatibility: DDL always runs on the SQL channel (Osiris's http_sql needed a custom endpoint Supabase
does not have).
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from osiris_drivers import _diff
from osiris_drivers._common import StepContext, StepError, counted
from osiris_drivers._postgres import (
    CONNECTION_FIELDS,
    CONNECTION_POLICY,
    SECRET_FIELDS,
    RestChannel,
    SqlChannel,
    channels,
    connect,
    content_range_total,
    copy_blockers,
    copy_into,
    create_table_sql,
    fits,
    hint_for,
    kind,
    needs_cast,
    qualified,
    quote,
    server_error,
    stage,
    table_columns,
)

SPEC = {
    "name": "supabase.writer",
    "aliases": ["postgres.writer"],
    "families": ["supabase", "postgres"],
    "modes": ["write", "discover"],
    "connection": CONNECTION_POLICY,
    "secrets": SECRET_FIELDS,
    "config": {
        "type": "object",
        "additionalProperties": False,
        "required": ["table"],
        "properties": {
            **CONNECTION_FIELDS,
            "table": {"type": "string", "minLength": 1},
            "schema": {"type": "string", "minLength": 1, "default": "public"},
            "write_mode": {"enum": ["append", "replace", "upsert"], "default": "append"},
            "primary_key": {
                "oneOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
                ]
            },
            "returning": {"type": "string", "x-no-effect": "rows are written in bulk and never read back"},
            "create_if_missing": {"type": "boolean", "default": True},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            "timeout": {"type": "integer", "minimum": 5, "maximum": 300, "default": 30},
            "retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3},
            "ddl_channel": {
                "enum": ["auto", "http_sql", "psycopg2"],
                "x-no-effect": "DDL always runs on the SQL channel (pg_dsn), in the write's transaction",
            },
            "prefer": {
                "enum": [
                    "return=minimal",
                    "return=representation",
                    "resolution=merge-duplicates",
                    "resolution=ignore-duplicates",
                ],
                "default": "return=minimal",
                "x-no-effect-values": {
                    "return=minimal": "rows are never read back",
                    "return=representation": "rows are never read back",
                    "resolution=merge-duplicates": "upsert always updates the rows whose key exists",
                },
            },
        },
    },
    "constraints": [{"when": {"write_mode": ["replace", "upsert"]}, "require": "primary_key"}],
    "requires": ["pyarrow", "adbc_driver_postgresql", "psycopg", "httpx"],
    "helpers": ["_postgres.py", "_diff.py"],
}


MODES = ("append", "replace", "upsert")
EFFECTS = {
    "append": "insert the incoming rows",
    "replace": "delete every row, then insert the incoming rows (the table, its grants, policies, triggers "
    "and views stay)",
    "upsert": "insert new rows and update changed ones on ({pk})",
}
# Types without an equality operator: upsert compares them as text to tell whether a row changed.
NO_EQUALITY = {"json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle"}


def run(step: dict, inputs: dict, ctx: StepContext) -> None:
    cfg, data, schema, table, mode, pk = _request(step, inputs)
    data, seen = counted(data)
    sql, rest = _channels(ctx, cfg, schema, table)
    ctx.report("write.start", table=table, schema=schema, mode=mode, channel=(sql or rest).name)
    how = {}
    if sql is not None:
        written, deleted, how = _write_sql(sql, data, schema, table, mode, pk, cfg, ctx)
    else:
        written, deleted = _write_rest(rest, data, schema, table, mode, pk, cfg, ctx)
        how = {"rows_written_measured": written is not None}
    extra = {"rows_deleted": deleted} if deleted is not None else {}
    compared = how.pop("diff", None)
    ctx.report(
        "write.complete",
        table=table,
        schema=schema,
        mode=mode,
        rows_in=seen[0],
        rows_written=written,
        channel_used=(sql or rest).name,
        atomic=sql is not None,
        **extra,
        **how,
    )
    if compared is not None and "unavailable" in compared:
        ctx.report("diff.unavailable", table=table, reason=compared["unavailable"])
    elif compared is not None:
        ctx.report("diff.complete", **compared)
    elif sql is not None and ctx.create_schema:
        _isolation_diff(sql, cfg, schema, table, pk, ctx)
    elif sql is None and (ctx.diff or ctx.create_schema):
        ctx.report("diff.unavailable", table=table, reason=NO_REST_DIFF)


NO_REST_DIFF = (
    "the REST channel cannot compare rows inside the database; add pg_dsn to the connection for a data diff"
)


def _isolation_diff(channel: SqlChannel, cfg: dict, schema: str, table: str, pk: list[str], ctx) -> None:
    """Per-PR isolation: the table this run wrote against the same table in the schema the pipeline
    names, on the same server, read after the write committed."""
    import adbc_driver_manager

    base = ctx.base_schema or "public"
    conn = connect(channel, int(cfg.get("timeout") or 30))
    try:
        with conn.cursor() as cur:
            sides = [(qualified(s, table), f"{s}.{table}") for s in (schema, base)]
            ctx.report("diff.complete", **_diff.against_base(cur, "postgres", *sides, pk))
    except adbc_driver_manager.Error as exc:
        ctx.report("diff.unavailable", table=table, reason=server_error(exc)[0])
    finally:
        _rollback(conn)
        conn.close()


def plan(step: dict, inputs: dict, ctx: StepContext) -> None:
    """Plan mode: inspect the target (read-only) and report what the write would do, as `plan.target`
    {table, schema, state: missing | compatible | incompatible, ddl, differences, mode, effect}."""
    cfg, data, schema, table, mode, pk = _request(step, inputs)
    sql, rest = _channels(ctx, cfg, schema, table)
    if sql is not None:
        state, ddl, differences = _plan_sql(sql, data, schema, table, pk, cfg, ctx)
    else:
        state, ddl, differences = _plan_rest(rest, data, schema, table, mode, pk, cfg, ctx)
    effect = EFFECTS[mode].format(pk=", ".join(pk))
    if state == "missing":
        effect = "create the table, then " + effect
    effect += " in one transaction" if sql is not None else " over REST in batches, not atomic"
    counted = state != "missing" and mode == "replace" and sql is not None
    if counted and (rows := _row_count(sql, schema, table, cfg)) is not None:
        effect += f" (replacing the {rows:,} row{'' if rows == 1 else 's'} now in the table)"
    if ddl:
        (ctx.artifacts_dir / "ddl.sql").write_text(ddl, encoding="utf-8")
    ctx.report(
        "plan.target",
        table=table,
        schema=schema,
        state=state,
        ddl=ddl,
        differences=differences,
        mode=mode,
        effect=effect,
        channel=(sql or rest).name,
    )
    if ctx.diff or ctx.create_schema:
        base = f"{ctx.base_schema or 'public'}.{table}" if ctx.create_schema else f"{schema}.{table}"
        reason = _diff.planned(base, pk, "the written table" if ctx.create_schema else "the incoming rows")
        ctx.report("diff.planned", table=table, reason=reason if sql is not None else NO_REST_DIFF)


def _request(step: dict, inputs: dict):
    cfg = step["config"]
    data = _input(inputs)
    schema, table = cfg.get("schema") or "public", cfg["table"]
    mode = cfg.get("write_mode") or "append"
    pk = _primary_key(cfg.get("primary_key"))
    _check_request(data, mode, pk, schema, table)
    return cfg, data, schema, table, mode, pk


def _channels(ctx: StepContext, cfg: dict, schema: str, table: str):
    sql, rest = channels(ctx.connection, cfg)
    if sql is None and rest is None:
        raise StepError(
            f'no way to reach the database for table "{schema}"."{table}": the connection has neither '
            "pg_dsn/dsn (or host, user, database) nor url + key",
            "Add pg_dsn (postgresql://user:password@host:5432/database) to the connection, or url and "
            "service_role_key for the REST API.",
        )
    return sql, rest


def _input(inputs: dict):
    """The stream to write (a table is accepted too); it is read once, batch by batch."""
    from osiris_drivers._common import reader

    if not inputs:
        raise StepError("the writer received no data", "Add `needs: [<upstream step id>]` to this step.")
    return reader(next(iter(inputs.values())))


def _primary_key(value) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


def _check_request(data, mode: str, pk: list[str], schema: str, table: str) -> None:
    if mode not in MODES:
        raise StepError(f"unknown write_mode '{mode}'", f"Use one of: {', '.join(MODES)}.")
    names = data.schema.names
    if not names:
        raise StepError(f'the data for "{schema}"."{table}" has no columns', "Check the upstream step.")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes or "" in names:
        raise StepError(
            f"the data has duplicate or empty column names: {', '.join(dupes) or '(empty)'}",
            "Give every column a distinct name (AS ...) in the upstream step.",
        )
    if mode == "upsert" and not pk:
        raise StepError(
            "write_mode upsert needs primary_key", "Set primary_key: [col, ...] in the step config."
        )
    absent = [c for c in pk if c not in names]
    if absent:
        raise StepError(
            f"primary_key column(s) {', '.join(absent)} are not in the data (columns: {', '.join(names)})",
            "Fix primary_key, or select those columns in the upstream step.",
        )


# --- SQL channel ------------------------------------------------------------------------------------------


def _write_sql(channel: SqlChannel, data, schema, table, mode, pk, cfg, ctx) -> tuple[int, int | None, dict]:
    """Write in one transaction; returns rows_written, rows_deleted (replace of an existing table) and
    the event fields that say how: `method`, and `staged_because` when the direct COPY was not taken."""
    import adbc_driver_manager

    target = qualified(schema, table)
    conn = connect(channel, int(cfg.get("timeout") or 30))
    ddl = None
    try:
        with conn.cursor() as cur:
            if ctx.create_schema:  # this run's own schema (per-PR isolation); rolled back with the rest
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
            columns = table_columns(cur, schema, table)
            if columns is None:
                ddl = _plan_ddl(data, schema, table, pk, cfg, ctx, channel.name)
                casts = {}
            else:
                casts = _fit(data, columns, schema, table)
            cur.execute("SET LOCAL TIME ZONE 'UTC'")
            if ddl:
                cur.execute(ddl)
                columns = table_columns(cur, schema, table)
                casts = _fit(data, columns, schema, table)
            diff = ctx.diff and not ctx.create_schema  # compare the staged rows before applying them
            blockers = [DIFF_STAGES] if diff else _direct_blockers(cur, data, columns, schema, table, mode)
            deleted, counts, compared = None, {}, None
            if not blockers:
                if mode == "replace" and not ddl:
                    cur.execute(f"SELECT count(*) FROM {target}")
                    deleted = int(cur.fetchone()[0])
                    cur.execute(f"TRUNCATE {target}")
                written = copy_into(cur, data, schema, table)
            else:
                staging = stage(cur, data, f"osiris_stage_{uuid.uuid4().hex[:12]}")
                if diff:
                    cast = {c: f"::{casts[c]}" if c in casts else "" for c in data.schema.names}
                    rows = ", ".join(f"s.{quote(c)}{cast[c]} AS {quote(c)}" for c in data.schema.names)
                    rows = f"SELECT {rows} FROM {staging} AS s"
                    where = (target, f"{schema}.{table}")
                    ignore = mode == "upsert" and cfg.get("prefer") == "resolution=ignore-duplicates"
                    how = "insert_new" if ignore else mode
                    compared = _diff.against_incoming(
                        cur, "postgres", where, rows, data.schema.names, pk, how
                    )
                if mode == "replace" and not ddl:
                    cur.execute(f"DELETE FROM {target}")
                    deleted = cur.rowcount
                no_equality = {c.name for c in columns or [] if c.base in NO_EQUALITY}
                if mode == "upsert":
                    counts = _upsert_counts(cur, target, staging, casts, pk, cfg, no_equality, data)
                    written = counts["inserted"] + counts["updated"]
                else:
                    cur.execute(_insert_sql(target, staging, data.schema.names, casts, mode, pk, cfg))
                    written = cur.rowcount
                cur.execute(f"DROP TABLE {staging}")
        conn.commit()
    except adbc_driver_manager.Error as exc:
        _rollback(conn)
        message, state = server_error(exc)
        raise StepError(
            f'writing into "{schema}"."{table}" at {channel.where} failed, nothing was changed: {message}',
            hint_for(state, "Fix the data or the table; the server's message says what it refused."),
            error_type="DatabaseError",
        ) from None
    except Exception:
        _rollback(conn)
        raise
    finally:
        conn.close()
    if ddl:
        ctx.report(
            "table.ddl_executed", sql=ddl, table=table, schema=schema, executed=True, channel=channel.name
        )
    counts = counts or {"inserted": written, "updated": 0, "unchanged": 0}
    if compared is not None:
        counts["diff"] = compared
    if blockers:
        return written, deleted, {"method": "staged", "staged_because": "; ".join(blockers), **counts}
    return written, deleted, {"method": "direct_copy", **counts}


DIFF_STAGES = "a data diff compares the staged rows with the table before the write"


def _upsert_counts(cur, target, staging, casts, pk, cfg, no_equality, data) -> dict:
    """Run the upsert and measure what it did: the incoming keys the table already holds are counted
    first; RETURNING (xmax = 0) then tells each row the INSERT wrote apart (inserted, or updated). A row
    with an existing key that was not updated was equal (`unchanged`), or, with ignore-duplicates, kept
    out; rows neither inserted nor matched were skipped by the server (a trigger, a policy)."""
    on = " AND ".join(f"t.{quote(c)} = s.{quote(c)}" + (f"::{casts[c]}" if c in casts else "") for c in pk)
    cur.execute(f"SELECT count(*) FROM {staging} AS s JOIN {target} AS t ON {on}")
    matched = int(cur.fetchone()[0])
    merge = _insert_sql(target, staging, data.schema.names, casts, "upsert", pk, cfg, no_equality)
    cur.execute(
        f"WITH w AS ({merge} RETURNING (t.xmax = 0) AS new) "
        "SELECT count(*) FILTER (WHERE new), count(*) FILTER (WHERE NOT new) FROM w"
    )
    inserted, updated = (int(v) for v in cur.fetchone())
    ignored = cfg.get("prefer") == "resolution=ignore-duplicates" and bool(set(data.schema.names) - set(pk))
    return {"inserted": inserted, "updated": updated, "unchanged": 0 if ignored else matched - updated}


def _direct_blockers(cur, data, columns, schema, table, mode) -> list[str]:
    """Why this write goes through a staging table; empty when it can COPY straight into the target.

    The target is looked at twice: first without a lock, so that a write that must stay staged never
    takes replace's ACCESS EXCLUSIVE lock; then again holding the lock the direct write needs (what COPY
    takes anyway for append), so that a trigger, foreign key or rule committed in between cannot slip
    past. Should the second look differ, the write is staged with the lock already held."""
    if mode == "upsert":
        return ["upsert reads its rows from a staging table (INSERT ... ON CONFLICT)"]
    replace = mode == "replace"
    blockers = copy_blockers(cur, schema, table, data.schema, columns, replace)
    if not blockers:
        lock = "ACCESS EXCLUSIVE" if replace else "ROW EXCLUSIVE"
        cur.execute(f"LOCK TABLE {qualified(schema, table)} IN {lock} MODE")
        blockers = copy_blockers(cur, schema, table, data.schema, columns, replace)
    return blockers


def _rollback(conn) -> None:
    with contextlib.suppress(Exception):  # a dead connection has taken its transaction with it
        conn.rollback()


def _insert_sql(target, staging, names, casts, mode, pk, cfg, no_equality=frozenset()) -> str:
    cols = ", ".join(quote(c) for c in names)
    select = ", ".join(f"s.{quote(c)}" + (f"::{casts[c]}" if c in casts else "") for c in names)
    sql = f"INSERT INTO {target} AS t ({cols}) SELECT {select} FROM {staging} AS s"
    if mode != "upsert":
        return sql
    rest = [c for c in names if c not in pk]
    conflict = f" ON CONFLICT ({', '.join(quote(c) for c in pk)})"
    if not rest or cfg.get("prefer") == "resolution=ignore-duplicates":
        return sql + conflict + " DO NOTHING"
    sets = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in rest)
    old = ", ".join(f"t.{quote(c)}" + ("::text" if c in no_equality else "") for c in rest)
    new = ", ".join(f"EXCLUDED.{quote(c)}" + ("::text" if c in no_equality else "") for c in rest)
    return sql + conflict + f" DO UPDATE SET {sets} WHERE ROW({old}) IS DISTINCT FROM ROW({new})"


def _fit(data, columns, schema, table) -> dict[str, str]:
    """Check the data against the existing table before any row moves; return the casts needed."""
    problems = _differences(data, columns)
    if problems:
        raise StepError(
            f'the data does not fit table "{schema}"."{table}", nothing was written: ' + "; ".join(problems),
            "Rename, cast or drop the columns in an upstream duckdb.processor step, or ALTER the table "
            f"(its columns: {', '.join(f'{c.name} {c.sql_type}' for c in columns)}).",
        )
    by_name = {c.name: c for c in columns}
    return {f.name: by_name[f.name].sql_type for f in data.schema if needs_cast(kind(f), by_name[f.name])}


def _differences(data, columns) -> list[str]:
    by_name = {c.name: c for c in columns}
    lower = {c.name.lower(): c.name for c in columns}
    missing = [f.name for f in data.schema if f.name not in by_name]
    wrong = [
        f"{f.name} ({f.type} into {by_name[f.name].sql_type})"
        for f in data.schema
        if f.name in by_name and not fits(kind(f), by_name[f.name])
    ]
    required = [
        c.name for c in columns if c.not_null and not c.has_default and c.name not in data.schema.names
    ]
    problems = []
    if missing:
        near = [f"{m} (the table has {lower[m.lower()]})" for m in missing if m.lower() in lower]
        problems.append(
            f"not in the table: {', '.join(missing)}" + (f"; case differs: {', '.join(near)}" if near else "")
        )
    if wrong:
        problems.append(f"incompatible types: {', '.join(wrong)}")
    if required:
        problems.append(f"NOT NULL columns without a default missing from the data: {', '.join(required)}")
    return problems


def _plan_sql(channel: SqlChannel, data, schema, table, pk, cfg, ctx) -> tuple[str, str | None, list[str]]:
    conn = connect(channel, int(cfg.get("timeout") or 30))
    try:
        with conn.cursor() as cur:
            columns = table_columns(cur, schema, table, schema_may_be_missing=True)
            cur.execute("SELECT true FROM pg_namespace WHERE nspname = $1", (schema,))
            schema_exists = cur.fetchone() is not None
    finally:
        _rollback(conn)
        conn.close()
    if columns is not None:
        differences = _differences(data, columns)
        return ("incompatible" if differences else "compatible"), None, differences
    if not schema_exists and not ctx.create_schema:
        return "incompatible", None, [f'schema "{schema}" does not exist']
    if not cfg.get("create_if_missing", True):
        return "incompatible", None, ["the table does not exist and create_if_missing is false"]
    ddl = create_table_sql(schema, table, data.schema, pk)
    if not schema_exists:
        ddl = f"CREATE SCHEMA IF NOT EXISTS {quote(schema)};\n" + ddl
    return "missing", ddl, []


def _row_count(channel: SqlChannel, schema, table, cfg) -> int | None:
    """The rows a replace would delete; None when they cannot be counted (no SELECT privilege, say)."""
    import adbc_driver_manager

    try:
        conn = connect(channel, int(cfg.get("timeout") or 30))
    except StepError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {qualified(schema, table)}")
            return int(cur.fetchone()[0])
    except adbc_driver_manager.Error:
        return None
    finally:
        _rollback(conn)
        conn.close()


def _plan_ddl(data, schema, table, pk, cfg, ctx, channel: str | None) -> str:
    if not cfg.get("create_if_missing", True):
        raise StepError(
            f'table "{schema}"."{table}" does not exist and create_if_missing is false',
            "Create the table first, fix `table`/`schema`, or set create_if_missing: true.",
        )
    ddl = create_table_sql(schema, table, data.schema, pk)
    (ctx.artifacts_dir / "ddl.sql").write_text(ddl, encoding="utf-8")
    fields = {"reason": "no SQL channel"} if channel is None else {}
    ctx.report(
        "table.ddl_planned",
        sql=ddl,
        table=table,
        schema=schema,
        executed=False,
        channel=channel,
        artifact="ddl.sql",
        **fields,
    )
    return ddl


# --- REST channel -----------------------------------------------------------------------------------------


def _write_rest(channel: RestChannel, data, schema, table, mode, pk, cfg, ctx) -> tuple[int, int | None]:
    from osiris_drivers._postgres import Rest

    if mode == "replace" and not pk:
        raise StepError(
            "write_mode replace over the REST API needs primary_key (rows are deleted by a filter on it)",
            "Set primary_key, or add pg_dsn to the connection for an atomic replace over SQL.",
        )
    client = Rest(
        channel,
        schema,
        int(cfg.get("timeout") or 30),
        int(cfg.get("retries", 3)),
        on_retry=lambda **f: ctx.report("rest.retry", table=table, **f),
    )
    where = f'"{schema}"."{table}" at {channel.url}'
    try:
        if not client.table_exists(table):
            _plan_ddl(data, schema, table, pk, cfg, ctx, None)
            raise StepError(
                f"table {where} does not exist, and the connection has only the REST API, which cannot "
                "create tables; no rows were written",
                "Add pg_dsn (postgresql://postgres.<ref>:<password>@<pooler host>:5432/postgres) to the "
                "connection so the writer can create it, or run the planned ddl.sql in the SQL editor.",
            )
        missing = _missing_columns(client, table, data.schema.names, where)
        if missing:
            raise StepError(
                f"the data does not fit table {where}, nothing was written: "
                f"not in the table: {', '.join(missing)}",
                "Rename or drop the columns in an upstream duckdb.processor step, or ALTER the table.",
            )
        deleted = None
        if mode == "replace":
            resp = client.request(
                "DELETE",
                table,
                params={pk[0]: "not.is.null"},
                headers={"Prefer": "return=minimal,count=exact"},
            )
            if resp.status_code not in (200, 204):
                raise client.error(resp, f"deleting the rows of {where} (replace)")
            deleted = content_range_total(resp)
        prefer, params = "return=minimal,count=exact", {}
        if mode == "upsert":
            ignore = cfg.get("prefer") == "resolution=ignore-duplicates"
            prefer = f"resolution={'ignore' if ignore else 'merge'}-duplicates,{prefer}"
            params["on_conflict"] = ",".join(pk)
        written, sent, size, measured = 0, 0, int(cfg.get("batch_size") or 100), True
        for batch in _rebatched(data, size):
            start, sent = sent, sent + batch.num_rows
            body = json.dumps(json_records(batch), allow_nan=False, separators=(",", ":")).encode()
            resp = client.request("POST", table, params=params, headers={"Prefer": prefer}, content=body)
            if resp.status_code not in (200, 201, 204):
                err = client.error(resp, f"writing rows {start + 1}-{start + batch.num_rows} into {where}")
                err.message += f" ({written} rows were already written: the REST channel is not atomic)"
                raise err
            total = content_range_total(resp)
            measured = measured and total is not None
            written += total or 0
        # without a Content-Range total the server did not say how many rows it wrote: not measured
        return (written if measured else None), deleted
    finally:
        client.close()


def _rebatched(stream, size: int):
    """The stream's rows in batches of `size` (the last one shorter): one REST request each."""
    import pyarrow as pa

    pending, rows = [], 0
    for batch in stream:
        pending.append(batch)
        rows += batch.num_rows
        if rows >= size:
            whole = pa.Table.from_batches(pending, stream.schema)
            cut = rows - rows % size
            for start in range(0, cut, size):
                yield from whole.slice(start, size).combine_chunks().to_batches()
            pending, rows = whole.slice(cut).to_batches(), rows - cut
    if rows:
        yield from pa.Table.from_batches(pending, stream.schema).combine_chunks().to_batches()


def _missing_columns(client, table: str, names: list[str], where: str) -> list[str]:
    """Ask PostgREST for zero rows of exactly these columns, so a missing column fails before any write."""
    resp = client.request("GET", table, params={"select": ",".join(map(_rest_name, names)), "limit": "0"})
    if resp.status_code == 200:
        return []
    if resp.status_code == 400:
        missing = [
            n
            for n in names
            if client.request("GET", table, params={"select": _rest_name(n), "limit": "0"}).status_code != 200
        ]
        if missing:
            return missing
    raise client.error(resp, f"checking the columns of {where}")


def _plan_rest(channel: RestChannel, data, schema, table, mode, pk, cfg, ctx):
    from osiris_drivers._postgres import Rest

    client = Rest(channel, schema, int(cfg.get("timeout") or 30), int(cfg.get("retries", 3)))
    try:
        if not client.table_exists(table):
            ddl = create_table_sql(schema, table, data.schema, pk)
            return "incompatible", ddl, ["the table is missing and REST cannot create it: add pg_dsn"]
        missing = _missing_columns(client, table, data.schema.names, f'"{schema}"."{table}"')
    finally:
        client.close()
    differences = [f"not in the table: {', '.join(missing)}"] if missing else []
    if mode == "replace" and not pk:
        differences.append("replace over REST needs primary_key")
    return ("incompatible" if differences else "compatible"), None, differences


def _rest_name(name: str) -> str:
    return name if name.replace("_", "").isalnum() else '"' + name.replace('"', '\\"') + '"'


def json_records(table) -> list[dict]:
    """Rows as JSON-safe dicts: decimals as strings (no float rounding), timestamps ISO 8601, bytes as
    Postgres hex (\\x...), NaN/Infinity as the strings Postgres accepts, JSON columns embedded as JSON."""
    import pyarrow as pa

    columns = []
    for f, col in zip(table.schema, table.columns, strict=True):
        t = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        if pa.types.is_dictionary(col.type):
            col = col.cast(t)
        if getattr(t, "unit", None) == "ns" and (
            pa.types.is_timestamp(t) or pa.types.is_time(t) or pa.types.is_duration(t)
        ):
            t = (
                pa.timestamp("us", t.tz)
                if pa.types.is_timestamp(t)
                else (pa.time64("us") if pa.types.is_time(t) else pa.duration("us"))
            )
            col = col.cast(t, safe=False)
        values = col.to_pylist()
        is_json = (f.metadata or {}).get(b"osiris.type") == b"json" or getattr(
            t, "extension_name", ""
        ) == "arrow.json"
        columns.append(
            [_json_value(v, f.name) for v in values] if is_json else [_jsonable(v) for v in values]
        )
    names = table.column_names
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _json_value(value, column: str):
    if value is None:
        return None
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        raise StepError(
            f'column "{column}" is marked as JSON but holds a value that is not JSON: {str(value)[:60]!r}',
            "Fix the value upstream, or drop the osiris.type=json field metadata.",
        ) from None


def _jsonable(value):
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return "\\x" + value.hex()
    if isinstance(value, timedelta):
        return f"{value.days} days {value.seconds} seconds {value.microseconds} microseconds"
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
