"""What the MySQL/MariaDB drivers share: connection parameters, error mapping and the type map.

Column types are decided from the server's column metadata, never from the values: connectorx widens every
DECIMAL to decimal(38,10) (and silently rounds a scale above 10), and cannot read a NULL-typed column, so the
metadata says what each column really is and the Arrow data is cast back to exactly that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from osiris_drivers._common import StepError

# The connection fields both MySQL components accept in config, and which of them a step may override.
CONNECTION_FIELDS = {
    "host": {"type": "string", "minLength": 1},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "database": {"type": "string", "minLength": 1},
    "user": {"type": "string", "minLength": 1},
    "password": {"type": "string"},
}
CONNECTION_POLICY = {
    "host": "allowed",
    "port": "allowed",
    "database": "forbidden",
    "user": "forbidden",
    "password": "forbidden",
    "schema": "allowed",
}

DEFAULT_PORT = 3306
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 600

# Column type codes of the MySQL protocol (pymysql.constants.FIELD_TYPE), spelled out so that importing
# this module does not import pymysql.
(DECIMAL, TINY, SHORT, LONG, FLOAT, DOUBLE, NULL, TIMESTAMP, LONGLONG, INT24) = range(10)
(DATE, TIME, DATETIME, YEAR, NEWDATE, VARCHAR, BIT) = range(10, 17)
(JSON, NEWDECIMAL, ENUM, SET, TINY_BLOB, MEDIUM_BLOB, LONG_BLOB, BLOB, VAR_STRING, STRING, GEOMETRY) = range(
    245, 256
)
UNSIGNED_FLAG = 32
BINARY_CHARSET = 63

# Integer type code → (Arrow type when signed, when unsigned).
INTEGERS = {
    TINY: ("int8", "uint8"),
    SHORT: ("int16", "uint16"),
    INT24: ("int32", "uint32"),
    LONG: ("int32", "uint32"),
    LONGLONG: ("int64", "uint64"),
    YEAR: ("int16", "int16"),
}
TEXTUAL = {VARCHAR, ENUM, SET, TINY_BLOB, MEDIUM_BLOB, LONG_BLOB, BLOB, VAR_STRING, STRING}

# connectorx reads DECIMAL through a 96-bit decimal rescaled to 10 places: exact only up to 18 integer
# digits and a scale of 10.
CX_DECIMAL_MAX_SCALE = 10
CX_DECIMAL_MAX_INTEGER_DIGITS = 18

JSON_METADATA = {b"osiris.type": b"json"}

# Server error codes, grouped by what the user has to fix.
UNREACHABLE = {2002, 2003, 2005}
CONNECTION_LOST = {2006, 2013}
ACCESS_DENIED = {1045, 1698}
DATABASE_DENIED = {1044}
UNKNOWN_DATABASE = {1049}


@dataclass
class Column:
    """One result column: its name, the Arrow type it becomes, and how it has to be read to stay exact."""

    name: str
    type: Any
    json: bool = False
    boolean: bool = False
    select: str = "{}"  # how a table read selects it so that connectorx carries it exactly
    connectorx: bool = True  # False: connectorx cannot read the column as the query returns it

    @property
    def arrow_type(self):
        """JSON travels as Arrow's canonical `arrow.json` extension, which DuckDB keeps and Postgres
        writers turn into JSONB; the field metadata marks it too, for readers that know no extensions."""
        import pyarrow as pa

        return pa.json_(self.type) if self.json else self.type

    def field(self):
        import pyarrow as pa

        return pa.field(self.name, self.arrow_type, metadata=JSON_METADATA if self.json else None)


# ---------------------------------------------------------------------------------------------------------
# Connection


def connection_params(config: dict, connection: dict | None) -> dict:
    """The resolved connection, with the config fields the spec allows to override it (host, port)."""
    params = dict(connection or {})
    for key in ("host", "port"):
        if config.get(key) is not None:
            params[key] = config[key]
    missing = [key for key in ("host", "user", "database") if not params.get(key)]
    if missing:
        raise StepError(
            f"The MySQL connection has no {', '.join(missing)}.",
            "Set them on the connection in osiris_connections.yaml (host, port, database, user, password).",
        )
    params["port"] = _whole_number(params, "port", DEFAULT_PORT)
    params["password"] = params.get("password") or ""
    params["connect_timeout"] = _whole_number(params, "connect_timeout", CONNECT_TIMEOUT)
    params["read_timeout"] = _whole_number(params, "read_timeout", READ_TIMEOUT)
    return params


def _whole_number(params: dict, key: str, default: int) -> int:
    value = params.get(key)
    if value in (None, ""):
        return default
    try:
        number = int(str(value))
    except ValueError:
        number = -1
    if number <= 0 or isinstance(value, bool):
        raise StepError(
            f"The MySQL connection's {key} must be a whole number, got {value!r}.",
            f"Fix `{key}` of the connection in osiris_connections.yaml (or the variable it reads).",
        )
    return number


def connect(params: dict, **options):
    """A PyMySQL connection in utf8mb4 and UTC, with timeouts; a failure becomes a StepError."""
    import pymysql

    try:
        return pymysql.connect(
            host=params["host"],
            port=params["port"],
            user=params["user"],
            # PyMySQL encodes a str password as latin-1; the server hashed the UTF-8 bytes.
            password=params["password"].encode("utf-8"),
            database=params["database"],
            charset="utf8mb4",
            connect_timeout=params["connect_timeout"],
            read_timeout=params["read_timeout"],
            write_timeout=params["read_timeout"],
            init_command="SET time_zone = '+00:00'",
            **options,
        )
    except pymysql.MySQLError as exc:
        raise error_from(exc, params, "connecting") from None


def connectorx_url(params: dict) -> str:
    """Every part percent-encoded, so that a password holding `@ : / % # ?` survives the URL."""

    def part(value: Any) -> str:
        return quote(str(value), safe="")

    timeout_ms = params["connect_timeout"] * 1000
    return (
        f"mysql://{part(params['user'])}:{part(params['password'])}@{part(params['host'])}:{params['port']}"
        f"/{part(params['database'])}?tcp_connect_timeout_ms={timeout_ms}&tcp_keepalive_time_ms=60000"
    )


CX_SESSION = ["SET time_zone = '+00:00'", "SET NAMES utf8mb4"]


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def qualified(schema: str | None, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}" if schema else quote_ident(table)


# ---------------------------------------------------------------------------------------------------------
# Errors


def error_from(exc: BaseException, params: dict, doing: str, hint: str | None = None) -> StepError:
    """One readable sentence for a PyMySQL or connectorx failure, naming host:port and the server's words."""
    code, text = _code_and_text(exc)
    where = f"{params.get('host')}:{params.get('port')}"
    user, database = params.get("user"), params.get("database")
    if code in UNREACHABLE or (code in CONNECTION_LOST and doing == "connecting"):
        error = StepError(
            f"Cannot connect to MySQL at {where}: {_reason(text)}.",
            "Check host and port in the connection, that the server runs and that this machine can reach it "
            f"(the connection waits {params.get('connect_timeout', CONNECT_TIMEOUT)} s: connect_timeout).",
            "ConnectionError",
        )
    elif code in ACCESS_DENIED:
        error = StepError(
            f"MySQL at {where} denied access to user '{user}': {text}.",
            "Check the user and password of the connection (osiris_connections.yaml and the environment "
            "variable it reads the password from).",
            "AuthenticationError",
        )
    elif code in DATABASE_DENIED:
        error = StepError(
            f"MySQL at {where} denied user '{user}' access to database '{database}': {text}.",
            "Grant the user access to the database, or connect to a database it may use.",
            "AuthenticationError",
        )
    elif code in UNKNOWN_DATABASE:
        error = StepError(
            f"Database '{database}' does not exist on MySQL at {where}.",
            "Check `database` in the connection (names are case-sensitive on Linux servers), or create it.",
            "ConnectionError",
        )
    elif code in CONNECTION_LOST:
        error = StepError(
            f"Lost the connection to MySQL at {where} while {doing}: {text}.",
            "The server closed the connection or did not answer in time: check the server, or raise "
            "read_timeout on the connection for long queries.",
            "ConnectionError",
        )
    elif code:
        error = StepError(
            f"MySQL at {where} returned an error while {doing}: {text} (error {code}).",
            hint
            or "Fix the SQL or the object it names (database, table, column); the message is the server's.",
            "SQLError",
        )
    else:
        error = StepError(
            f"MySQL at {where} failed while {doing}: {text}.",
            "Check the connection and the query; the message above comes from the database client.",
        )
    return _scrubbed(error, params.get("password"))


_CX_SERVER_ERROR = re.compile(r"ERROR (\d+) \(\w+\): (.*?) \}", re.S)
_CX_CONNECT_ERROR = re.compile(r"Could not connect to address `[^']*': (.*?)(?: \(os error \d+\))? \}", re.S)


def _code_and_text(exc: BaseException) -> tuple[int | None, str]:
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):  # PyMySQL: (code, message)
        return args[0], str(args[1])
    text = str(exc)
    if match := _CX_SERVER_ERROR.search(text):
        return int(match.group(1)), match.group(2)
    if match := _CX_CONNECT_ERROR.search(text):
        return 2003, match.group(1)
    return None, text.splitlines()[0] if text else type(exc).__name__


def _reason(text: str) -> str:
    """`Can't connect to MySQL server on 'h' ([Errno 111] Connection refused)` → `connection refused`."""
    if match := re.search(r"\((?:\[Errno -?\d+\] )?([^()]*)\)\s*$", text):
        text = match.group(1)
    reason = text.strip().rstrip(".")
    if "Name or service not known" in reason or "nodename nor servname" in reason or "lookup" in reason:
        return f"the host name cannot be resolved ({reason})"
    return reason[:1].lower() + reason[1:]


def _scrubbed(error: StepError, password: str | None) -> StepError:
    if password:
        for secret in {password, quote(password, safe="")}:
            error.message = error.message.replace(secret, "***")
            error.hint = error.hint.replace(secret, "***")
        error.args = (error.message,)
    return error


# ---------------------------------------------------------------------------------------------------------
# Types: MySQL column metadata → Arrow


def columns_from_fields(fields: list, json_names: set[str]) -> list[Column]:
    """The Arrow type of each result column, from PyMySQL's field metadata."""
    import pyarrow as pa

    columns = []
    for field in fields:
        code, unsigned = field.type_code, bool(field.flags & UNSIGNED_FLAG)
        column = Column(field.name, pa.string())
        if code == TINY and field.length == 1:  # TINYINT(1), which is what BOOLEAN is
            column.type, column.boolean = pa.bool_(), True
        elif code in INTEGERS:
            column.type = getattr(pa, INTEGERS[code][unsigned])()
        elif code == FLOAT:
            column.type = pa.float32()
        elif code == DOUBLE:
            column.type = pa.float64()
        elif code in (DECIMAL, NEWDECIMAL):
            scale = field.scale
            precision = field.length - (1 if scale else 0) - (0 if unsigned else 1)
            column.type = (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, scale)
            if scale > CX_DECIMAL_MAX_SCALE or precision - scale > CX_DECIMAL_MAX_INTEGER_DIGITS:
                column.select, column.connectorx = "CAST({} AS CHAR)", False  # text, then cast exactly
        elif code in (DATE, NEWDATE):
            column.type = pa.date32()
        elif code == DATETIME:
            column.type = pa.timestamp("us")
        elif code == TIMESTAMP:  # an instant; the session reads it in UTC
            column.type = pa.timestamp("us", tz="UTC")
        elif code == TIME:
            column.type = pa.time64("us")
        elif code == BIT:
            column.type = pa.binary()
        elif code == GEOMETRY:  # WKB when read by table; a query gets MySQL's own SRID-prefixed bytes
            column.type, column.select, column.connectorx = pa.binary(), "ST_AsBinary({})", False
        elif code == NULL or (code == STRING and field.length == 0 and field.charsetnr == BINARY_CHARSET):
            # a bare NULL in a query; a derived table reports it as BINARY(0)
            column.type, column.select, column.connectorx = pa.null(), "CAST({} AS CHAR)", False
        elif code == JSON:
            column.json = True
        elif code in TEXTUAL:
            if field.charsetnr == BINARY_CHARSET:
                column.type = pa.binary()
            column.json = field.name in json_names
        columns.append(column)
    return columns


def json_column_names(cursor, fields: list, database: str) -> set[str]:
    """MariaDB stores JSON as LONGTEXT with a json_valid() check: find the result columns taken from one."""
    candidates = [
        f
        for f in fields
        if f.type_code in (BLOB, LONG_BLOB) and f.charsetnr != BINARY_CHARSET and f.org_table
    ]
    if not candidates:
        return set()
    tables = sorted({f.org_table for f in candidates})
    cursor.execute(  # naming the tables keeps information_schema from opening every table on the server
        "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
        f"WHERE TABLE_NAME IN ({', '.join(['%s'] * len(tables))}) AND CHECK_CLAUSE LIKE 'json_valid(%%)'",
        tables,
    )
    checks = set(cursor.fetchall())
    names = set()
    for f in candidates:
        clause = f"json_valid({quote_ident(f.org_name)})"
        schema = f.db.decode() if isinstance(f.db, bytes) else f.db
        if schema or (database, f.org_table, clause) in checks:
            found = (schema or database, f.org_table, clause) in checks
        else:  # a derived or grouped result names the table but not its database
            found = any(check[1:] == (f.org_table, clause) for check in checks)
        if found:
            names.add(f.name)
    return names


def normalise_batch(batch, columns: list[Column]):
    """Cast one record batch from connectorx to the exact types the metadata asks for."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = []
    for column, array in zip(columns, batch.columns, strict=True):
        if column.boolean and array.type != pa.bool_():
            low, high = pc.min_max(array).values()
            if (low.is_valid and low.as_py() < 0) or (high.is_valid and high.as_py() > 1):
                raise StepError(
                    f"Column '{column.name}' is TINYINT(1), read as a boolean, but holds values other than "
                    "0 and 1.",
                    f"Select it as CAST({quote_ident(column.name)} AS SIGNED) to read it as an integer.",
                )
        if pa.types.is_null(column.type):  # read as text; every value is NULL
            array = pa.nulls(len(array))
        elif array.type != column.arrow_type:
            array = array.cast(column.arrow_type)
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema([c.field() for c in columns]))


# ---------------------------------------------------------------------------------------------------------
# LOCAL INFILE: a server may ask the client for any file by name, at any time, on a connection that offers
# it. Connections offer it only where LOAD DATA is sent (mysql.writer), and PyMySQL answers a request only
# while the flag below is set; it refuses one at any other time. PyMySQL keeps the flag it checks on the
# connection (`_local_infile`, read when the server's request arrives).


def infile_off(conn) -> None:
    conn._local_infile = False


def infile_on(conn) -> None:
    conn._local_infile = True
