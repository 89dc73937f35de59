"""Postgres plumbing for supabase.writer and supabase.extractor.

A Supabase (or any Postgres) connection can offer two channels:

- SQL (`sql_copy`): libpq through ADBC. ADBC streams Arrow as binary COPY (measured: 1.07x the binary COPY
  floor) and keeps everything on one session, so a load can be one transaction. Chosen whenever the
  connection gives a DSN, or host + user + database.
- REST (`rest`): PostgREST over HTTP with the project URL and an API key, when that is all there is. It
  cannot run DDL and cannot span requests with a transaction.

Connecting resolves every IPv4 address of the host and tries each one before the name itself, because
Supabase's direct hosts are IPv6-only while its poolers are IPv4, and many CI runners have no IPv6 route.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from osiris_drivers._common import StepError, mapped, reader

# What both Supabase/Postgres components accept from the connection, and which of it a step may override.
CONNECTION_FIELDS = {
    "url": {"type": "string", "pattern": "^https://[a-zA-Z0-9-]+\\.supabase\\.co$"},
    "key": {"type": "string", "minLength": 20},
    "project_id": {"type": "string", "pattern": "^[a-zA-Z0-9-]+$"},
}
CONNECTION_POLICY = {"url": "allowed", "project_id": "allowed", "key": "forbidden"}
SECRET_FIELDS = ["key", "service_role_key", "anon_key", "pg_dsn", "dsn", "password"]

DEFAULT_SSLMODE = "prefer"
DEFAULT_PORT = 5432
REST_PATH = "/rest/v1"
REST_PAGE_MAX = 1000  # PostgREST's usual max-rows (Supabase's default), and the SPEC's maximum `limit`

# Connection fields, with the names Osiris also accepted.
DSN_FIELDS = ("pg_dsn", "dsn", "sql_dsn")
FIELD_ALIASES = {
    "host": ("host", "pg_host"),
    "port": ("port", "pg_port"),
    "user": ("user", "pg_user"),
    "password": ("password", "pg_password"),
    "dbname": ("database", "pg_database", "dbname"),
    "sslmode": ("sslmode",),
}
KEY_FIELDS = ("service_role_key", "key", "anon_key")

# Arrow → Postgres for CREATE TABLE, by str(arrow type); parameterised types are in `pg_type`.
PG_TYPES = {
    "int8": "SMALLINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "uint8": "SMALLINT",
    "uint16": "INTEGER",
    "uint32": "BIGINT",
    "uint64": "NUMERIC(20,0)",
    "halffloat": "REAL",
    "float": "REAL",
    "double": "DOUBLE PRECISION",
    "bool": "BOOLEAN",
    "string": "TEXT",
    "large_string": "TEXT",
    "string_view": "TEXT",
    "binary": "BYTEA",
    "large_binary": "BYTEA",
    "binary_view": "BYTEA",
    "date32[day]": "DATE",
    "date64[ms]": "DATE",
    "null": "TEXT",
}
# Field metadata {b"osiris.type": ...} says what a string column really holds.
OSIRIS_TYPES = {b"json": "JSONB", b"numeric": "NUMERIC", b"uuid": "UUID"}

# Which target columns (by base type name or pg_type.typcategory) accept data of each Arrow kind.
# Numbers go into any numeric column: the server's assignment cast raises on overflow, inside the transaction.
FITS = {
    "number": {"category": {"N"}},
    "bool": {"name": {"bool"}},
    "text": {"category": {"S", "E", "I"}, "name": {"json", "jsonb", "uuid", "xml"}},
    "numeric_text": {"category": {"N", "S"}},  # strings marked osiris.type=numeric
    "binary": {"name": {"bytea"}},
    "timestamp": {"name": {"timestamp", "timestamptz"}},
    "date": {"name": {"date", "timestamp", "timestamptz"}},
    "time": {"name": {"time", "timetz"}},
    "interval": {"name": {"interval"}},
    "list": {"category": {"A"}},
}

# SQLSTATE → what to tell the user to change.
HINTS = {
    "23502": "A NOT NULL column receives NULL: fill the value upstream or relax the constraint.",
    "23505": "The data repeats a key that must be unique: deduplicate it upstream, or use write_mode upsert.",
    "23514": "A row breaks a CHECK constraint of the table: fix the data upstream.",
    "23503": "A row points to a missing parent row (foreign key): load the parent table first.",
    "21000": "The data holds the same primary key more than once: deduplicate it upstream "
    "(for example with DISTINCT ON in a duckdb.processor step).",
    "42P10": "primary_key must name the columns of a primary key or unique index of the table.",
    "42501": "The database user lacks a privilege on the table: grant it, or use a role that has it.",
    "3F000": "Create the schema first, or fix `schema` in the step config.",
    "22003": "A value is out of range for its column type: widen the column or fix the data.",
    "22001": "A value is longer than its column allows: widen the column or trim the data.",
    "57P01": "The database connection was terminated during the write; nothing was committed. Run again.",
}


@dataclass
class SqlChannel:
    params: dict[str, str] = field(repr=False)  # libpq keywords: host, port, user, password, dbname, ...
    name: str = "sql_copy"

    @property
    def where(self) -> str:
        p = self.params
        return (
            f'{p.get("host") or "localhost"}:{p.get("port") or DEFAULT_PORT} database "{p.get("dbname", "")}"'
        )


@dataclass
class RestChannel:
    url: str  # the PostgREST root, ending in /rest/v1
    key: str = field(repr=False)
    name: str = "rest"


@dataclass
class Column:
    name: str
    sql_type: str  # format_type(): what to cast to
    base: str  # base type name (domains resolved), e.g. int4, jsonb
    category: str  # pg_type.typcategory of the base type
    not_null: bool
    has_default: bool


def channels(
    connection: dict[str, Any] | None, config: dict[str, Any]
) -> tuple[SqlChannel | None, RestChannel | None]:
    """The channels the connection (plus the config's allowed url/project_id) offers."""
    conn = dict(connection or {})
    sql = None
    dsn = next((conn[k] for k in DSN_FIELDS if conn.get(k)), None)
    fields = {
        kw: next((conn[n] for n in names if conn.get(n) not in (None, "")), None)
        for kw, names in FIELD_ALIASES.items()
    }
    if dsn or (fields["host"] and fields["user"] and fields["dbname"]):
        params: dict[str, str] = {}
        if dsn:
            from psycopg.conninfo import conninfo_to_dict

            try:
                # SQLAlchemy-style URLs (postgresql+psycopg2://) are common in Osiris projects
                dsn = re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", str(dsn))
                params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
            except Exception as exc:
                raise StepError(
                    "the connection's pg_dsn is not a valid Postgres connection string",
                    "Write it as postgresql://user:password@host:5432/database?sslmode=require, with special "
                    f"characters of the password percent-encoded ({type(exc).__name__}).",
                ) from None
        for kw, value in fields.items():
            if value is not None and kw not in params:
                params[kw] = str(value)
        params.setdefault("sslmode", DEFAULT_SSLMODE)
        params.setdefault("port", str(DEFAULT_PORT))
        if "@" in params.get("host", "") or not all(p.isdigit() for p in params["port"].split(",")):
            if not dsn:  # the fields were written as they are: quoting the port is safe
                raise StepError(
                    f"the connection's port must be a number, got {params['port']!r}",
                    "Fix `port` of the connection in osiris_connections.yaml.",
                )
            # an unescaped `@` or `/` in the password moved part of it into the host or port: never show
            # those values, they hold a piece of the password
            raise StepError(
                "the connection's pg_dsn does not parse into a host and a port",
                "Percent-encode the special characters of the password (@ as %40, / as %2F, : as %3A).",
            )
        sql = SqlChannel(params)

    rest = None
    url = config.get("url") or conn.get("url")
    project = config.get("project_id") or conn.get("project_id")
    if not url and project:
        url = f"https://{project}.supabase.co"
    key = next((conn[k] for k in KEY_FIELDS if conn.get(k)), None)
    if url and key:
        base = str(url).rstrip("/")
        rest = RestChannel(base if base.endswith(REST_PATH) else base + REST_PATH, str(key))
    return sql, rest


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}"


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


# --- connecting -----------------------------------------------------------------------------------------

# libpq's own words → (what failed, hint, stop trying further addresses)
CONNECT_ERRORS = [
    (
        r"password authentication failed|no password supplied|SCRAM authentication",
        "Postgres rejected the login",
        "Check the user and password of this connection in osiris_connections.yaml (in a pg_dsn, "
        "percent-encode special characters such as @ : / as %40 %3A %2F).",
        True,
    ),
    (
        r'database ".*" does not exist',
        "the database does not exist",
        "Fix the database name in the connection (the path of pg_dsn, or `database`).",
        True,
    ),
    (
        r'role ".*" does not exist',
        "the database user does not exist",
        "Fix the user in the connection (for a Supabase pooler it is postgres.<project-ref>).",
        True,
    ),
    (
        r"no pg_hba\.conf entry",
        "the server refuses connections from this address/user",
        "Allow this client in the server's pg_hba.conf, or set sslmode=require if the server demands SSL.",
        True,
    ),
    (
        r"SSL",
        "the SSL negotiation failed",
        "Set sslmode in the connection (disable for a local server without SSL, require for Supabase).",
        True,
    ),
    (
        r"could not translate host name|Name or service not known|nodename nor servname",
        "the host name does not resolve",
        "Check the host in the connection; Supabase direct hosts (db.<ref>.supabase.co) are IPv6-only, "
        "so from an IPv4-only runner use the session pooler (aws-0-<region>.pooler.supabase.com:5432).",
        False,
    ),
    (
        r"Connection refused",
        "the connection was refused",
        "Check the host and port, and that the server is running and listening on that address.",
        False,
    ),
    (
        r"timeout expired|timed out",
        "the connection timed out",
        "Check the host, port and firewall; raise `timeout` for a slow network.",
        False,
    ),
]


def ipv4_addresses(host: str, port: int) -> list[str]:
    """Unique IPv4 addresses of `host`, in the resolver's order (deterministic, unlike a set)."""
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(info[4][0] for info in infos))


def connect(channel: SqlChannel, timeout: int = 30):
    """An ADBC connection (autocommit off), trying each IPv4 address of the host, then the name."""
    import adbc_driver_postgresql.dbapi as adbc
    from psycopg.conninfo import make_conninfo

    params = dict(channel.params)
    params.setdefault("connect_timeout", str(timeout))
    host = params.get("host", "")
    port = int(params.get("port") or DEFAULT_PORT)
    attempts: list[tuple[str, dict[str, str]]] = []
    if (
        host
        and not host.startswith("/")
        and "," not in host
        and "hostaddr" not in params
        and not _is_ip(host)
    ):
        attempts = [(ip, {**params, "hostaddr": ip}) for ip in ipv4_addresses(host, port)]
    attempts.append((host or "localhost", params))

    secrets = [params.get("password", "")]
    tried: list[str] = []
    reason, hint, text = "could not connect", "Check the connection settings.", ""
    for label, attempt in attempts:
        tried.append(label)
        try:
            return adbc.connect(make_conninfo(**attempt))
        except adbc.Error as exc:
            text = scrub(_libpq_text(str(exc)), secrets)
            reason, hint, final = next(
                ((r, h, f) for pattern, r, h, f in CONNECT_ERRORS if re.search(pattern, text)),
                ("could not connect", "Check the host, port, user and database of the connection.", False),
            )
            if final:
                break
    raise StepError(
        f'Postgres at {channel.where} as user "{params.get("user", "")}": {reason} '
        f"(addresses tried: {', '.join(tried)}): {text}",
        hint,
        error_type="ConnectionError",
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _libpq_text(text: str) -> str:
    text = re.sub(r"^\w+: \[libpq\] (Failed to connect: )?", "", text.strip())
    return " ".join(text.split())


def server_error(exc: Exception) -> tuple[str, str | None]:
    """The server's own message (with its detail) and SQLSTATE from an ADBC error."""
    # an error raised while fetching (a statement whose rows stream back) carries its keys as bytes
    details = {
        (k.decode() if isinstance(k, bytes) else k): v.decode("utf-8", "replace")
        for k, v in (getattr(exc, "details", None) or [])
    }
    state = getattr(exc, "sqlstate", None) or details.get("PG_DIAG_SQLSTATE")
    message = details.get("PG_DIAG_MESSAGE_PRIMARY")
    if message:
        if details.get("PG_DIAG_MESSAGE_DETAIL"):
            message += f" ({details['PG_DIAG_MESSAGE_DETAIL']})"
    else:
        found = re.search(r"SQLSTATE: (\w+)", str(exc))
        state = state or (found.group(1) if found else None)
        if re.search(
            r"terminating connection|server closed the connection|no connection to the server", str(exc)
        ):
            state = state or "57P01"
        message = _libpq_text(re.sub(r"\. SQLSTATE: \w+\s*$", "", str(exc)))
        message = re.sub(
            r"^(\w+: )?Failed to (execute|prepare) (query( '.*?')?|COPY statement): (PGRES_\w+ )?(ERROR: )?",
            "",
            message,
            flags=re.S,
        )
        message = re.split(r" (?:LINE \d+:|Query was:|CONTEXT:)", message)[0]
        message = re.sub(r" DETAIL: (.*?)\.?$", r" (\1)", message)
    return message, state


def hint_for(state: str | None, default: str) -> str:
    return HINTS.get(state or "", default)


# --- catalog ----------------------------------------------------------------------------------------------

_TABLE_SQL = """
SELECT (SELECT true FROM pg_namespace WHERE nspname = $1) AS schema_exists,
       (SELECT c.oid::int8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'f', 'm')) AS oid
"""
_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), coalesce(bt.typname, t.typname)::text,
       coalesce(bt.typcategory, t.typcategory)::text, a.attnotnull,
       a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def table_columns(cur, schema: str, table: str, schema_may_be_missing: bool = False) -> list[Column] | None:
    """The table's columns, or None when it does not exist. A missing schema is an error of its own,
    unless the caller is about to create it (per-PR isolation)."""
    cur.execute(_TABLE_SQL, (schema, table))
    schema_exists, oid = cur.fetchone()
    if not schema_exists and not schema_may_be_missing:
        raise StepError(f'schema "{schema}" does not exist in the database', HINTS["3F000"])
    if oid is None:
        return None
    cur.execute(_COLUMNS_SQL, (oid,))
    return [Column(*row) for row in cur.fetchall()]


# --- Arrow types ------------------------------------------------------------------------------------------


def pg_type(f) -> str:
    """The Postgres type that holds an Arrow field without loss (for CREATE TABLE)."""
    import pyarrow as pa

    marked = (f.metadata or {}).get(b"osiris.type")
    if marked in OSIRIS_TYPES:
        return OSIRIS_TYPES[marked]
    t = f.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if isinstance(t, pa.ExtensionType):
        if t.extension_name == "arrow.json":
            return "JSONB"
        if t.extension_name == "arrow.uuid":
            return "UUID"
        t = t.storage_type
    if str(t) in PG_TYPES:
        return PG_TYPES[str(t)]
    if pa.types.is_decimal(t):
        return f"NUMERIC({t.precision},{t.scale})" if t.precision <= 1000 else "NUMERIC"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_time(t):
        return "TIME"
    if pa.types.is_duration(t) or pa.types.is_interval(t):
        return "INTERVAL"
    if pa.types.is_fixed_size_binary(t):
        return "BYTEA"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pg_type(t.value_field) + "[]"
    raise StepError(
        f'column "{f.name}" has Arrow type {t}, which has no Postgres equivalent here',
        "Cast or serialise it in a duckdb.processor step (for example to_json(col) for structs and maps).",
    )


def kind(f) -> str:
    """The family of an Arrow field, for matching it against an existing column (see FITS)."""
    import pyarrow as pa

    t = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
    if (f.metadata or {}).get(b"osiris.type") == b"numeric":
        return "numeric_text"
    if isinstance(t, pa.ExtensionType):
        if t.extension_name in ("arrow.json", "arrow.uuid"):
            return "text"
        t = t.storage_type
    checks = [
        (pa.types.is_null, "null"),
        (pa.types.is_boolean, "bool"),
        (lambda x: pa.types.is_integer(x) or pa.types.is_floating(x) or pa.types.is_decimal(x), "number"),
        (
            lambda x: pa.types.is_string(x) or pa.types.is_large_string(x) or pa.types.is_string_view(x),
            "text",
        ),
        (
            lambda x: (
                pa.types.is_binary(x)
                or pa.types.is_large_binary(x)
                or pa.types.is_fixed_size_binary(x)
                or pa.types.is_binary_view(x)
            ),
            "binary",
        ),
        (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_date, "date"),
        (pa.types.is_time, "time"),
        (lambda x: pa.types.is_duration(x) or pa.types.is_interval(x), "interval"),
        (lambda x: pa.types.is_list(x) or pa.types.is_large_list(x), "list"),
    ]
    return next((name for check, name in checks if check(t)), "other")


def fits(field_kind: str, column: Column) -> bool:
    if field_kind == "null":
        return True
    rule = FITS.get(field_kind, {})
    return column.base in rule.get("name", ()) or column.category in rule.get("category", ())


def needs_cast(field_kind: str, column: Column) -> bool:
    """Text into json/jsonb/uuid/enum/inet has no assignment cast; everything else relies on one,
    which (unlike an explicit cast) raises on overflow or a too-long varchar instead of truncating."""
    return field_kind in ("text", "numeric_text") and column.category != "S"


def copyable(stream):
    """The stream with the few Arrow types that binary COPY would get wrong cast, batch by batch, to ones it
    gets right: uint64 would wrap into BIGINT, date64 is refused, dictionaries and extensions are decoded.
    A stream that needs none of it is returned as it is."""
    import pyarrow as pa

    stream = reader(stream)
    fields, converters = [], []
    for f in stream.schema:
        t, steps = f.type, []
        if pa.types.is_dictionary(t):
            steps.append(lambda col, to=t.value_type: col.cast(to))
            t = t.value_type
        if isinstance(t, pa.ExtensionType):
            if t.extension_name == "arrow.uuid":
                steps.append(_uuid_text)
                t = pa.string()
            else:
                steps.append(lambda col: col.storage)
                t = t.storage_type
        target = {"uint64": pa.decimal128(20, 0), "date64[ms]": pa.date32()}.get(str(t))
        if target is not None:
            steps.append(lambda col, to=target: col.cast(to))
            t = target
        fields.append(pa.field(f.name, t, f.nullable, f.metadata))
        converters.append(steps)
    if not any(converters):
        return stream
    schema = pa.schema(fields)

    def convert(batch):
        columns = []
        for col, steps in zip(batch.columns, converters, strict=True):
            for step in steps:
                col = step(col)
            columns.append(col)
        return pa.RecordBatch.from_arrays(columns, schema=schema)

    return mapped(stream, schema, convert)


def _uuid_text(col):
    import pyarrow as pa

    return pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())


def create_table_sql(schema: str, table: str, arrow_schema, primary_key: list[str]) -> str:
    lines = []
    for f in arrow_schema:
        not_null = " NOT NULL" if not f.nullable and f.name not in primary_key else ""
        lines.append(f"    {quote(f.name)} {pg_type(f)}{not_null}")
    if primary_key:
        lines.append(f"    PRIMARY KEY ({', '.join(quote(c) for c in primary_key)})")
    return f"CREATE TABLE {qualified(schema, table)} (\n" + ",\n".join(lines) + "\n);\n"


def stage(cur, stream, name: str) -> str:
    """Binary COPY of the Arrow stream, batch by batch, into a temporary table of this session and
    transaction."""
    cur.adbc_ingest(name, copyable(stream), mode="create", temporary=True)
    return f"pg_temp.{quote(name)}"


# --- binary COPY straight into the target -----------------------------------------------------------------

# The base type whose binary form ADBC sends for each Arrow type (uint64 and date64 as `copyable` converts
# them; parameterised types are in `copy_type`). Binary COPY has no assignment casts: the column's own binary
# input reads the bytes, so anything but this type is a near miss, and not every near miss is refused (int64
# into a double precision column arrives as 5e-324).
COPY_TYPES = {
    "int8": "int2",
    "int16": "int2",
    "uint8": "int2",
    "int32": "int4",
    "uint16": "int4",
    "int64": "int8",
    "uint32": "int8",
    "uint64": "numeric",
    "halffloat": "float4",
    "float": "float4",
    "double": "float8",
    "bool": "bool",
    "string": "text",
    "large_string": "text",
    "string_view": "text",
    "binary": "bytea",
    "large_binary": "bytea",
    "binary_view": "bytea",
    "date32[day]": "date",
    "date64[ms]": "date",
}
# Base types whose binary input reads text's binary form as is (and applies the column's length limit).
TEXT_LIKE = {"text", "varchar", "bpchar"}

# What decides whether COPY straight into the table stores what the staged INSERT ... SELECT would.
_COPY_TARGET_SQL = """
SELECT c.relkind::text,
       row_security_active(c.oid),
       EXISTS (SELECT FROM pg_rewrite r WHERE r.ev_class = c.oid),
       ARRAY(SELECT a.attname::text FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                AND (a.attidentity = 'a' OR a.attgenerated <> '')),
       current_setting('track_counts')::boolean,
       EXISTS (SELECT FROM pg_constraint k WHERE k.contype = 'f' AND k.confrelid = c.oid),
       EXISTS (SELECT FROM pg_trigger t
                WHERE t.tgrelid = c.oid AND NOT t.tgisinternal AND t.tgtype & (8 | 32) <> 0),
       EXISTS (SELECT FROM pg_inherits i WHERE i.inhparent = c.oid),
       EXISTS (SELECT FROM pg_publication_tables p JOIN pg_publication pub ON pub.pubname = p.pubname
                WHERE p.schemaname = n.nspname AND p.tablename = c.relname AND pub.pubdelete),
       has_table_privilege(c.oid, 'TRUNCATE') AND has_table_privilege(c.oid, 'SELECT')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2
"""


def copy_type(f) -> str | None:
    """The base type name (pg_type.typname) of what binary COPY sends for an Arrow field; None when unsure."""
    import pyarrow as pa

    t = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
    if isinstance(t, pa.ExtensionType):
        t = pa.string() if t.extension_name == "arrow.uuid" else t.storage_type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = copy_type(t.value_field)
        return None if inner is None or inner.startswith("_") else "_" + inner  # one-dimensional only
    if pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_duration(t) or pa.types.is_interval(t):
        return "interval"
    if pa.types.is_fixed_size_binary(t):
        return "bytea"
    return COPY_TYPES.get(str(t))


def copy_mismatches(arrow_schema, columns: list[Column]) -> list[str]:
    """The fields whose binary COPY form is not exactly what their column reads, i.e. that need a cast."""
    by_name = {c.name: c for c in columns}
    found = []
    for f in arrow_schema:
        column, sent = by_name[f.name], copy_type(f)
        if kind(f) == "null" or sent == column.base or (sent == "text" and column.base in TEXT_LIKE):
            continue  # a column of nulls fits any type: NULL has no binary form
        found.append(f"{f.name} ({f.type} into {column.sql_type})")
    return found


def copy_blockers(
    cur, schema: str, table: str, arrow_schema, columns: list[Column], replace: bool
) -> list[str]:
    """Why COPY straight into the table (after a TRUNCATE, for replace) would not do exactly what the
    staged INSERT ... SELECT (after a DELETE) does; an empty list when it would.

    - Every value must arrive in its column's own binary form (`copy_mismatches`).
    - A plain table: COPY ignores rules, refuses row-level security, and writes GENERATED ALWAYS identity
      columns that INSERT refuses. The inserted-row counter that measures rows_written needs track_counts.
    - replace: TRUNCATE refuses a table that a foreign key references (DELETE checks row by row); it fires
      ON TRUNCATE triggers instead of ON DELETE ones; it empties inheritance children too; a publication
      that publishes deletes would send subscribers one TRUNCATE (or nothing) instead of the deletes; it
      needs the TRUNCATE privilege, and counting the rows it removes needs SELECT.
    """
    cur.execute(_COPY_TARGET_SQL, (schema, table))
    relkind, rls, rules, generated, counts, referenced, triggers, children, published, can = cur.fetchone()
    checks = [
        (relkind != "r", "not a plain table"),
        (rls, "row-level security applies to this user"),
        (rules, "the table has rules"),
        (bool(set(generated) & set(arrow_schema.names)), "the data holds a generated or identity column"),
        (not counts, "track_counts is off"),
    ]
    if replace:
        checks += [
            (referenced, "a foreign key references the table"),
            (triggers, "the table has ON DELETE or ON TRUNCATE triggers"),
            (children, "the table has inheritance children"),
            (published, "a publication publishes its deletes"),
            (not can, "no TRUNCATE or SELECT privilege"),
        ]
    found = [reason for failed, reason in checks if failed]
    mismatches = copy_mismatches(arrow_schema, columns)
    if mismatches:
        found.append("casts needed: " + ", ".join(mismatches))
    return found


def copy_into(cur, stream, schema: str, name: str) -> int:
    """Binary COPY of the Arrow stream straight into an existing table; returns the rows the server
    inserted. adbc_ingest counts the rows it sent, including any that a BEFORE trigger skipped; the
    server's own count is what this transaction's inserted-row counter for the table grew by."""
    counter = "SELECT pg_stat_get_xact_tuples_inserted($1::regclass)"
    cur.execute(counter, (qualified(schema, name),))
    before = cur.fetchone()[0]
    cur.adbc_ingest(name, copyable(stream), mode="append", db_schema_name=schema)
    cur.execute(counter, (qualified(schema, name),))
    return int(cur.fetchone()[0] - before)


# --- REST -------------------------------------------------------------------------------------------------


class Rest:
    """PostgREST calls with retries: 5xx and 429 answers and failed connects are retried with exponential
    backoff (honouring Retry-After), at most `retries` times; anything else is returned to the caller."""

    def __init__(self, channel: RestChannel, schema: str, timeout: int, retries: int, on_retry=None):
        import httpx

        self.httpx = httpx
        self.url = channel.url
        self.schema = schema
        self.retries = retries
        self.on_retry = on_retry or (lambda **_: None)
        headers = {"apikey": channel.key, "Authorization": f"Bearer {channel.key}"}
        self.client = httpx.Client(base_url=channel.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, table: str, *, params=None, headers=None, content: bytes | None = None):
        headers = dict(headers or {})
        if self.schema != "public":
            # PostgREST picks the schema from Accept-Profile on reads and Content-Profile on writes.
            headers["Accept-Profile" if method in ("GET", "HEAD") else "Content-Profile"] = self.schema
        if content is not None:
            headers["Content-Type"] = "application/json"
        path = "/" + table
        for attempt in range(self.retries + 1):
            try:
                resp = self.client.request(method, path, params=params, headers=headers, content=content)
            except (self.httpx.ConnectError, self.httpx.ConnectTimeout) as exc:
                if attempt < self.retries:
                    self._wait(attempt, None, f"{type(exc).__name__}")
                    continue
                raise StepError(
                    f"could not reach the Supabase REST API at {self.url}: {exc}",
                    "Check the url of the connection and the network (or add pg_dsn to use the SQL channel).",
                    error_type="ConnectionError",
                ) from None
            except self.httpx.HTTPError as exc:
                raise StepError(
                    f"{method} {self.url}{path} failed: {type(exc).__name__}: {exc}",
                    "Raise `timeout` for slow responses, or add pg_dsn to use the SQL channel.",
                    error_type="ConnectionError",
                ) from None
            if (resp.status_code >= 500 or resp.status_code == 429) and attempt < self.retries:
                self._wait(attempt, resp.headers.get("Retry-After"), str(resp.status_code))
                continue
            return resp
        raise AssertionError("unreachable")

    def _wait(self, attempt: int, retry_after: str | None, why: str) -> None:
        delay = min(0.5 * 2**attempt, 10.0)
        if retry_after and retry_after.isdigit():
            delay = min(float(retry_after), 30.0)
        self.on_retry(attempt=attempt + 1, reason=why, delay_s=delay)
        time.sleep(delay)

    def error(self, resp, what: str) -> StepError:
        """A StepError carrying PostgREST's own message and code."""
        try:
            body = resp.json()
        except ValueError:
            body = {"message": resp.text[:300]}
        if not isinstance(body, dict):
            body = {"message": str(body)[:300]}
        message = body.get("message") or resp.reason_phrase
        if body.get("details"):
            message += f" ({body['details']})"
        code = body.get("code")
        if resp.status_code in (401, 403) and code != "42501":
            hint = "Check the API key of the connection (service_role_key for writes) and the project url."
        elif code == "PGRST106":
            hint = f'Expose the schema "{self.schema}" in the project\'s API settings, or use pg_dsn.'
        else:
            hint = hint_for(code, "Fix the data or the table definition, or add pg_dsn for the SQL channel.")
        return StepError(f"{what} failed with HTTP {resp.status_code} [{code}]: {message}", hint)

    def table_exists(self, table: str) -> bool:
        """True/False from PostgREST's answer; auth, schema and network failures raise instead of
        passing for a missing table (Osiris treated any exception as "missing")."""
        resp = self.request("GET", table, params={"select": "*", "limit": "0"})
        if resp.status_code == 200:
            return True
        code = _json_code(resp)
        if resp.status_code == 404 and code in ("PGRST205", "42P01", None):
            return False
        raise self.error(resp, f'checking table "{self.schema}"."{table}" at {self.url}')


def _json_code(resp) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def content_range_total(resp) -> int | None:
    """N from `Content-Range: */N` (or a-b/N), which PostgREST sends when asked for count=exact."""
    match = re.search(r"/(\d+)$", resp.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None
