"""How mysql.writer sends rows to the server, batch by batch, inside the caller's transaction.

Two paths, both built from Arrow in bulk (no Python loop over rows or values):
- `load_data`: LOAD DATA LOCAL INFILE of CSV files that pyarrow writes, one file per LOAD_BYTES of CSV, so
  memory stays flat however many rows arrive. Used when the server has local_infile on and the connection
  does not say `local_infile: false`.
- `insert`: multi-row INSERT statements of at most STATEMENT_BYTES, their literals rendered by Arrow
  kernels (text escaped for the session's sql_mode, binary as X'..' hex). Used otherwise (MySQL 8's
  default and most managed servers).

LOCAL INFILE lets the server ask the client for any file by name. The client offers it only on the
connection that may send LOAD DATA, and answers such a request only while its own LOAD DATA statement
runs (`infile_window`); at any other time the request is refused.
"""

from __future__ import annotations

import contextlib
import tempfile

from osiris_drivers._common import StepError
from osiris_drivers._mysql import infile_off, infile_on, quote_ident

LOAD_DATA = (
    "LOAD DATA LOCAL INFILE {path} INTO TABLE {table} CHARACTER SET utf8mb4 "
    "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\\n' "
    "({targets}){assignments}"
)
CSV_NULL = "NULL"  # written unquoted; every string is quoted, so the text 'NULL' stays text
LOAD_BYTES = 64 << 20  # CSV per LOAD DATA statement
STATEMENT_BYTES = (
    4 << 20
)  # per INSERT statement; far below max_allowed_packet (16 MB on MariaDB, 64 on MySQL)


class Sender:
    """Sends a stream of record batches into a table by one path; `send` returns the rows the server
    reports as inserted. Rows go out as they arrive: nothing is held beyond one file or one statement."""

    def __init__(self, cursor, method: str, no_backslash_escapes: bool):
        self.cursor = cursor
        self.method = method
        self.no_backslash_escapes = no_backslash_escapes

    def send(self, target: str, stream) -> int:
        if self.method == "load_data":
            return self._load(target, stream)
        return self._insert(target, stream)

    # --- LOAD DATA LOCAL INFILE ---------------------------------------------------------------------

    def _load(self, target: str, stream) -> int:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        names = stream.schema.names
        binary = [_is_binary(f.type) for f in stream.schema]
        targets = [
            f"@v{i}" if b else quote_ident(n) for i, (n, b) in enumerate(zip(names, binary, strict=True))
        ]
        assignments = [
            f"{quote_ident(n)} = UNHEX(@v{i})"
            for i, (n, b) in enumerate(zip(names, binary, strict=True))
            if b
        ]
        options = pacsv.WriteOptions(include_header=False, null_string=CSV_NULL, quoting_style="needed")
        rows = 0
        with tempfile.TemporaryDirectory(prefix="osiris_mysql_") as folder:
            path = f"{folder}/rows.csv"
            writer, schema = None, None
            for batch in stream:
                batch = plain(batch)
                columns = [_hex(c) if b else c for c, b in zip(batch.columns, binary, strict=True)]
                batch = pa.RecordBatch.from_arrays(columns, names=names)
                if writer is None:
                    schema = batch.schema
                    writer = pacsv.CSVWriter(path, schema, write_options=options)
                writer.write_batch(batch)
                if _size(path) >= LOAD_BYTES:
                    writer.close()
                    writer = None
                    rows += self._load_file(path, target, targets, assignments)
            if writer is not None:
                writer.close()
                rows += self._load_file(path, target, targets, assignments)
        return rows

    def _load_file(self, path: str, target: str, targets: list[str], assignments: list[str]) -> int:
        cursor = self.cursor
        sql = LOAD_DATA.format(
            path=cursor.connection.escape(path),
            table=target,
            targets=", ".join(targets),
            assignments=f" SET {', '.join(assignments)}" if assignments else "",
        )
        with infile_window(cursor.connection):
            rows = cursor.execute(sql)
        # LOAD DATA turns bad values and duplicate keys into warnings: any warning fails the write
        cursor.execute("SHOW WARNINGS")
        warnings = [(code, message) for level, code, message in cursor.fetchall() if level != "Note"]
        if warnings:
            import pymysql

            code, message = warnings[0]
            more = f" (and {len(warnings) - 1} more warnings)" if len(warnings) > 1 else ""
            raise pymysql.err.DataError(code, message + more)
        return rows

    # --- multi-row INSERT ----------------------------------------------------------------------------

    def _insert(self, target: str, stream) -> int:
        import pyarrow.compute as pc

        head = f"INSERT INTO {target} ({', '.join(quote_ident(n) for n in stream.schema.names)}) VALUES "
        head = head.encode()
        rows = 0
        for batch in stream:
            if not batch.num_rows:
                continue
            tuples = self._tuples(plain(batch))
            ends = pc.cumulative_sum(pc.binary_length(tuples)).to_pylist()
            start, base = 0, 0
            for index, end in enumerate(ends):
                if end - base >= STATEMENT_BYTES or index == len(ends) - 1:
                    chunk = tuples.slice(start, index + 1 - start)
                    rows += self.cursor.execute(head + bytes(_joined(chunk))[:-1])
                    start, base = index + 1, end
        return rows

    def _tuples(self, batch):
        """Each row as the bytes `(v1,v2,...),`: SQL literals made by Arrow kernels, column by column."""
        import pyarrow.compute as pc

        cells = [
            self._literal(column, name)
            for name, column in zip(batch.schema.names, batch.columns, strict=True)
        ]
        return pc.binary_join_element_wise("(", pc.binary_join_element_wise(*cells, ","), "),", "")

    def _literal(self, column, name: str):
        import pyarrow as pa
        import pyarrow.compute as pc

        kind = column.type
        if pa.types.is_null(kind):
            return pa.array(["NULL"] * len(column), pa.string())
        if _is_binary(kind):
            text = pc.binary_join_element_wise("X'", _hex(column), "'", "")
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            text = pc.replace_substring(column, "'", "''")
            if not self.no_backslash_escapes:
                text = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), "\0", "\\0")
            text = pc.binary_join_element_wise("'", text, "'", "")
        else:
            try:
                text = pc.cast(column, pa.string())
            except pa.ArrowException as exc:
                raise StepError(
                    f"Column '{name}' ({kind}) cannot be written to MySQL: {exc}.",
                    "Cast it to a plain type (text, number, date) in an upstream duckdb step.",
                ) from None
            if pa.types.is_floating(kind):
                finite = pc.is_finite(column)
                if not pc.all(pc.or_kleene(finite, pc.is_null(column))).as_py():
                    raise StepError(
                        f"Column '{name}' holds NaN or an infinity, which MySQL cannot store.",
                        "Turn them into NULL upstream, e.g. CASE WHEN isfinite(x) THEN x END in DuckDB.",
                    )
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
                text = pc.binary_join_element_wise("'", text, "'", "")  # dates, times: quoted literals
        return pc.fill_null(text, "NULL")


@contextlib.contextmanager
def infile_window(conn):
    """Answer the server's LOCAL INFILE request only for the statement run inside this block."""
    infile_on(conn)
    try:
        yield
    finally:
        infile_off(conn)


def plain(batch):
    """Types both paths can send: UTC wall time for zoned timestamps, microseconds, 0/1 for booleans,
    the storage of extension types (arrow.json), the values of dictionaries."""
    import pyarrow as pa

    columns = []
    for column in batch.columns:
        kind = column.type
        if isinstance(kind, pa.BaseExtensionType):  # e.g. arrow.json: its storage is what travels
            column, kind = column.storage, kind.storage_type
        if pa.types.is_dictionary(kind):
            column, kind = column.cast(kind.value_type), kind.value_type
        if pa.types.is_timestamp(kind) and (kind.tz or kind.unit == "ns"):
            column = column.cast(pa.timestamp("us" if kind.unit == "ns" else kind.unit), safe=False)
        elif pa.types.is_time(kind) and kind.unit == "ns":
            column = column.cast(pa.time64("us"), safe=False)
        elif pa.types.is_date64(kind):
            column = column.cast(pa.date32())
        elif pa.types.is_boolean(kind):
            column = column.cast(pa.int8())
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _is_binary(kind) -> bool:
    import pyarrow as pa

    return (
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
        or pa.types.is_binary_view(kind)
    )


def _hex(column):
    """Binary values as hex text, the whole column in one pass over its data buffer (no per-value Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.cast(pa.large_binary())
    count = len(column)
    _, offsets_buffer, data = column.buffers()
    offsets = pa.Array.from_buffers(pa.int64(), count + 1, [None, offsets_buffer], offset=column.offset)
    first, last = offsets[0].as_py(), offsets[count].as_py()
    digits = bytes(memoryview(data)[first:last]).hex().encode() if data is not None and last > first else b""
    doubled = pc.multiply(pc.subtract(offsets, first), 2)
    mask = column.is_valid().buffers()[1] if column.null_count else None
    text = pa.Array.from_buffers(
        pa.large_string(),
        count,
        [mask, doubled.buffers()[1], pa.py_buffer(digits)],
        null_count=column.null_count,
    )
    return text.cast(pa.string())  # a batch's hex stays far below 2 GB, what plain string offsets hold


def _joined(strings) -> memoryview:
    """The bytes of a string array's values laid end to end, without a copy."""
    import pyarrow as pa

    strings = strings.cast(pa.large_string()) if not pa.types.is_large_string(strings.type) else strings
    _, offsets, data = strings.buffers()
    ends = pa.Array.from_buffers(pa.int64(), len(strings) + 1, [None, offsets], offset=strings.offset)
    return memoryview(data)[ends[0].as_py() : ends[len(strings)].as_py()]


def _size(path: str) -> int:
    import os

    return os.path.getsize(path)
