"""filesystem.csv_extractor: read a CSV file into Arrow with Osiris's options, block by block."""

from __future__ import annotations

import io

from osiris_drivers._common import StepContext, StepError
from osiris_drivers._files import describe_base, resolve

SPEC = {
    "name": "filesystem.csv_extractor",
    "families": ["filesystem"],
    "modes": ["extract", "discover"],
    "connection": {"base_dir": "allowed"},
    "secrets": [],
    "config": {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": {"type": "string", "minLength": 1},
            "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ","},
            "encoding": {"enum": ["utf-8", "utf-16", "ascii", "latin-1", "iso-8859-1"], "default": "utf-8"},
            "header": {"type": ["boolean", "integer"], "default": True},
            "columns": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "skip_rows": {"type": "integer", "minimum": 0, "default": 0},
            "limit": {"type": "integer", "minimum": 1},
            "parse_dates": {
                "oneOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}}],
                "default": False,
            },
            "dtype": {"type": "object", "additionalProperties": {"type": "string"}},
            "na_values": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "chunk_size": {"type": "integer", "minimum": 100, "maximum": 1000000, "default": 10000},
            "skip_blank_lines": {"type": "boolean", "default": True},
            "comment": {"type": "string", "minLength": 1, "maxLength": 1},
            "compression": {"enum": ["infer", "gzip", "bz2", "zip", "xz"], "default": "infer"},
        },
    },
    "constraints": [],
    "requires": ["pyarrow"],
    "helpers": ["_files.py"],
}

# pandas dtype names (what Osiris pipelines say) → the Arrow type the column is read as. Values are
# pyarrow factory names and arguments, resolved only when a step runs, so importing stays cheap.
# pandas' nullable ("Int64") and non-nullable ("int64") integers both become Arrow integers, which allow
# nulls; "category" becomes plain strings.
DTYPES = {
    "int": ("int64",),
    "int8": ("int8",),
    "int16": ("int16",),
    "int32": ("int32",),
    "int64": ("int64",),
    "uint8": ("uint8",),
    "uint16": ("uint16",),
    "uint32": ("uint32",),
    "uint64": ("uint64",),
    "Int8": ("int8",),
    "Int16": ("int16",),
    "Int32": ("int32",),
    "Int64": ("int64",),
    "UInt8": ("uint8",),
    "UInt16": ("uint16",),
    "UInt32": ("uint32",),
    "UInt64": ("uint64",),
    "float": ("float64",),
    "float16": ("float16",),
    "float32": ("float32",),
    "float64": ("float64",),
    "Float32": ("float32",),
    "Float64": ("float64",),
    "str": ("string",),
    "string": ("string",),
    "object": ("string",),
    "category": ("string",),
    "bool": ("bool_",),
    "boolean": ("bool_",),
    "datetime64": ("timestamp", "ns"),
    "datetime64[ns]": ("timestamp", "ns"),
    "datetime64[us]": ("timestamp", "us"),
    "datetime64[ms]": ("timestamp", "ms"),
    "datetime64[s]": ("timestamp", "s"),
    "date": ("date32",),
}

# pandas' default null markers (pyarrow's own list lacks "None" and "<NA>"); `na_values` adds to them.
NULL_MARKERS = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip

COMPRESSION_BY_SUFFIX = {".gz": "gzip", ".bz2": "bz2", ".zip": "zip", ".xz": "xz"}

# `chunk_size` counts rows, pyarrow's block size bytes: this is the row width assumed in between.
BYTES_PER_ROW = 100
MIN_BLOCK, MAX_BLOCK = 1 << 20, 64 << 20


def run(step: dict, inputs: dict, ctx: StepContext):
    """Read the CSV file into an Arrow table, with pandas' meaning of each option.

    Where pyarrow and pandas differ, the option keeps its pandas (Osiris) meaning:
    - `header: false` names the columns "0", "1", ... (pandas uses the integers 0, 1, ...; Arrow column
      names are strings). `header: N` reads the header from row N after `skip_rows`, dropping rows
      before it. Blank and repeated header names become "Unnamed: i" and "name.1", as in pandas.
    - `parse_dates: false` (the default) keeps date and time columns as text, as pandas does; `true`
      lets pyarrow infer ISO-8601 dates, times and timestamps; a list reads those columns as
      timestamps and keeps the other ones as text.
    - `na_values` are added to pandas' null markers ("", "NA", "NULL", "None", "nan", ...), and these
      markers make text columns null too.
    - `columns` selects columns in the order given (pandas' usecols keeps the file's order).
    - `comment` drops lines that start with the character; unlike pandas it does not cut a comment
      off the end of a line, since that would need a quote-aware scan of every line in Python.
    Types are inferred from the whole file (as pandas does); with `limit` the file is read only as far
    as needed, and types come from the rows read.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    config = step["config"]
    path, shown = resolve(config["path"], ctx)
    if not path.is_file():
        raise StepError(
            f"CSV file '{shown}' not found in {describe_base(ctx)}.",
            hint="Check the path: it is relative to the base_dir of the filesystem connection, or to the "
            "pipeline's folder when the step has no connection.",
        )
    source = _source(path, shown, config)
    header = config["header"]
    read = {
        "skip_rows": config["skip_rows"] + (0 if isinstance(header, bool) else header),
        "autogenerate_column_names": header is False,
        "block_size": min(max(config["chunk_size"] * BYTES_PER_ROW, MIN_BLOCK), MAX_BLOCK),
        "encoding": "utf8" if config.get("comment") else config["encoding"],
    }
    # Quoted values may span lines (pandas reads them, and our writer produces them); pyarrow must be
    # told, or a block boundary inside such a value splits the row.
    parse = pacsv.ParseOptions(
        delimiter=config["delimiter"],
        ignore_empty_lines=config["skip_blank_lines"],
        newlines_in_values=True,
    )
    convert = {
        "null_values": [*NULL_MARKERS, *config.get("na_values", [])],
        "strings_can_be_null": True,
    }

    first = _load(source, read, parse, convert, shown, config, peek=True)
    names = _pandas_names(first.names) if header is not False else [str(i) for i in range(len(first.names))]
    if names != first.names:
        read = {**read, "column_names": names, "autogenerate_column_names": False}
        read["skip_rows"] += header is not False
    parse_dates = config["parse_dates"]
    requested = {
        "columns": config.get("columns") or [],
        "dtype": list(config.get("dtype") or {}),
        "parse_dates": parse_dates if isinstance(parse_dates, list) else [],
    }
    for option, wanted in requested.items():
        unknown = [name for name in wanted if name not in names]
        if unknown:
            raise StepError(
                f"{option} names {', '.join(map(repr, unknown))}, not a column of '{shown}'.",
                hint=f"The file's columns are: {', '.join(names)}.",
            )

    types = {name: _arrow_type(dtype, name) for name, dtype in (config.get("dtype") or {}).items()}
    for name, field in zip(names, first, strict=True):
        if name in types:
            continue
        if name in requested["parse_dates"]:
            types[name] = field.type if pa.types.is_timestamp(field.type) else pa.timestamp("us")
        elif parse_dates is not True and pa.types.is_temporal(field.type):
            types[name] = pa.string()
    if config.get("columns"):
        convert["include_columns"] = config["columns"]

    if not config.get("limit"):
        stream = _streamed(source, read, parse, {**convert, "column_types": types}, shown, config)
        if stream is not None:
            return stream
    table = _load(source, read, parse, {**convert, "column_types": types}, shown, config)
    if parse_dates is not True:
        # The first block decided which columns are dates; a column empty there can still turn out to
        # be one, and is then read again as text.
        late = [f.name for f in table.schema if pa.types.is_temporal(f.type) and f.name not in types]
        if late:
            types.update(dict.fromkeys(late, pa.string()))
            table = _load(source, read, parse, {**convert, "column_types": types}, shown, config)
    undecodable = [f.name for f in table.schema if pa.types.is_binary(f.type)]
    if undecodable:
        raise StepError(
            f"Column {undecodable[0]!r} of '{shown}' is not valid {config['encoding']} text.",
            hint="Set encoding to the file's encoding (e.g. latin-1 or utf-16).",
        )
    # A column without a single value has no type to infer; pandas reads it as text or float NaN.
    nulls = [i for i, f in enumerate(table.schema) if pa.types.is_null(f.type)]
    for i in nulls:
        table = table.set_column(i, table.field(i).name, table.column(i).cast(pa.string()))
    return table


def plan(step: dict, inputs: dict, ctx: StepContext):
    """Plan mode: the columns and types a run would produce, as an empty table.

    Types are inferred from the whole file, as in a run (a sample could type a column differently from
    the run, and a plan that disagrees with its run is worse than a slower one), so the file is read
    and its rows dropped; reading a local file changes nothing.
    """
    from osiris_drivers._common import reader

    table = reader(run(step, inputs, ctx)).read_all()
    ctx.report("extract.planned", path=resolve(step["config"]["path"], ctx)[1], rows=table.num_rows)
    return table.schema.empty_table()


def _streamed(source, read: dict, parse, convert: dict, shown: str, config: dict):
    """The file as a stream of record batches, block by block, with the types a whole-file read infers;
    None when only a whole-file read can give them (or say what is wrong with the file).

    A streaming reader fixes each column's type from the first block, where a whole-file read widens a
    type when a later block needs it (a float after integers, a value in a column empty so far). So the
    file is read once without keeping anything: if every block converts with the first block's types,
    those are the whole file's types, and the file is read again as a stream with exactly them."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        with source() as stream:
            checking = pacsv.open_csv(
                stream, pacsv.ReadOptions(**read), parse, pacsv.ConvertOptions(**convert)
            )
            for _ in checking:
                pass
            schema = checking.schema
    except Exception:  # a wider type later on, or a broken file: the whole-file read decides and explains
        return None
    if any(pa.types.is_binary(f.type) for f in schema):
        return None  # text that is not in the encoding: the whole-file read says so
    # A column without a single value has no type to infer; pandas reads it as text or float NaN.
    final = {f.name: pa.string() if pa.types.is_null(f.type) else f.type for f in schema}
    out = pa.schema([pa.field(name, kind) for name, kind in final.items()])
    exact = pacsv.ConvertOptions(**{**convert, "column_types": final})

    def batches():
        try:
            with source() as stream:
                for batch in pacsv.open_csv(stream, pacsv.ReadOptions(**read), parse, exact):
                    yield batch if batch.schema == out else batch.cast(out)
        except (pa.ArrowException, UnicodeError, OSError) as exc:
            raise StepError(
                f"Could not read CSV file '{shown}': {exc}",
                hint="The file changed while it was read, or cannot be read: check it and run again.",
            ) from None

    return pa.RecordBatchReader.from_batches(out, batches())


def _source(path, shown: str, config: dict):
    """A function that opens the file afresh (it is read twice: once for its header and first block),
    decompressed, and with comment lines dropped when `comment` is set."""
    import bz2
    import lzma
    import zipfile

    import pyarrow as pa

    compression = config["compression"]
    if compression == "infer":
        compression = COMPRESSION_BY_SUFFIX.get(path.suffix.lower())

    def open_binary():
        if compression in (None, "gzip"):
            return pa.input_stream(str(path), compression=compression)
        if compression == "bz2":
            return bz2.open(path, "rb")
        if compression == "xz":
            return lzma.open(path, "rb")
        archive = zipfile.ZipFile(path)
        members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
        if len(members) != 1:
            raise StepError(
                f"The zip file '{shown}' holds {len(members)} files; it must hold exactly one CSV file.",
                hint="Put a single CSV file in the archive, or unpack it and point path at the file.",
            )
        return archive.open(members[0])

    if not config.get("comment"):
        return open_binary
    return lambda: io.BufferedReader(_SkipCommentLines(open_binary(), config["encoding"], config["comment"]))


def _load(source, read: dict, parse, convert: dict, shown: str, config: dict, peek: bool = False):
    """Read the whole file (with `limit`, only as many blocks as needed; with `peek`, only the schema
    inferred from the first block) and turn every reading failure into a StepError that says where and
    why."""
    import lzma
    import zipfile

    import pyarrow as pa
    import pyarrow.csv as pacsv

    read_options, convert_options = pacsv.ReadOptions(**read), pacsv.ConvertOptions(**convert)
    limit = config.get("limit")
    try:
        with source() as stream:
            if peek:
                schema = pacsv.open_csv(stream, read_options, parse, convert_options).schema
                schema.names  # noqa: B018 - decodes the header here, where a bad encoding is caught
                return schema
            if not limit:
                return pacsv.read_csv(stream, read_options, parse, convert_options)
            reader, batches, rows = pacsv.open_csv(stream, read_options, parse, convert_options), [], 0
            while rows < limit:
                try:
                    batches.append(reader.read_next_batch())
                except StopIteration:
                    break
                rows += batches[-1].num_rows
            return pa.Table.from_batches(batches, reader.schema).slice(0, limit)
    except UnicodeError as exc:
        raise StepError(
            f"CSV file '{shown}' is not valid {config['encoding']} text: {exc}.",
            hint="Set encoding to the file's encoding (e.g. latin-1 or utf-16).",
        ) from None
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "conversion error" in message and limit and not peek:
            # Types came from the first block only; read the file whole, where they come from all of it.
            return _load(source, read, parse, convert, shown, {**config, "limit": None}).slice(0, limit)
        if "CSV parse error" in message and "Row #" not in message and read_options.use_threads:
            # Only the single-threaded reader knows row numbers: read again to name the row.
            return _load(source, {**read, "use_threads": False}, parse, convert, shown, config, peek)
        raise StepError(f"Could not read CSV file '{shown}': {message}", hint=_read_hint(message)) from None
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        raise StepError(
            f"Could not read CSV file '{shown}': {exc}",
            hint="Check that compression matches the file (gzip, bz2, zip, xz, or none).",
        ) from None


def _read_hint(message: str) -> str:
    if "Empty CSV file" in message:
        return "The file is empty (after skip_rows); give it a header line or check skip_rows and header."
    if "conversion error" in message:
        return "A value does not fit the column's type: set dtype for that column (e.g. string) or fix it."
    if "Expected" in message and "columns" in message:
        return "Check the delimiter, and that values holding it are quoted."
    return "Check that the file is a CSV file and that compression matches it."


class _SkipCommentLines(io.RawIOBase):
    """The decoded text of a file as UTF-8 without the lines that start with the comment character.

    pyarrow has no comment option, so this filter runs (in Python) only when `comment` is set.
    """

    def __init__(self, binary, encoding: str, comment: str):
        self._text = io.TextIOWrapper(binary, encoding=encoding, newline="")
        self._comment = comment
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            lines = self._text.readlines(1 << 20)
            if not lines:
                return 0
            kept = "".join(line for line in lines if not line.startswith(self._comment))
            self._pending = memoryview(kept.encode())
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        self._text.close()
        super().close()


def _pandas_names(names: list[str]) -> list[str]:
    """pandas' header names: a blank name becomes "Unnamed: i", a repeated one "name.1", "name.2"."""
    result: list[str] = []
    for index, name in enumerate(names):
        name = name or f"Unnamed: {index}"
        candidate, count = name, 0
        while candidate in result:
            count += 1
            candidate = f"{name}.{count}"
        result.append(candidate)
    return result


def _arrow_type(dtype: str, column: str):
    import pyarrow as pa

    if dtype not in DTYPES:
        raise StepError(
            f"dtype of column '{column}' is '{dtype}', which is not a supported type name.",
            hint=f"Use one of: {', '.join(DTYPES)}.",
        )
    factory, *args = DTYPES[dtype]
    return getattr(pa, factory)(*args)
