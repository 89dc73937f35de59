"""filesystem.csv_writer: write an Arrow stream to CSV, keeping the column order of the data."""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import stat

from osiris_drivers._common import StepContext, StepError
from osiris_drivers._files import resolve

SPEC = {
    "name": "filesystem.csv_writer",
    "families": ["filesystem"],
    "modes": ["write"],
    "connection": {"base_dir": "allowed"},
    "secrets": [],
    "config": {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": {"type": "string", "minLength": 1},
            "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ","},
            "header": {"type": "boolean", "default": True},
            "encoding": {"enum": ["utf-8", "utf-16", "ascii", "latin-1"], "default": "utf-8"},
            "newline": {"enum": ["lf", "crlf"], "default": "lf"},
            "quoting": {"enum": ["minimal", "all", "nonnumeric"], "default": "minimal"},
            "chunk_size": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1000},
            "create_dirs": {"type": "boolean", "default": True},
        },
    },
    "constraints": [{"when": {"delimiter": ["\t"]}, "require_value": {"quoting": ["minimal"]}}],
    "requires": ["pyarrow"],
    "helpers": ["_files.py"],
}

NEWLINES = {"lf": "\n", "crlf": "\r\n"}

# Below this many rows per batch the per-batch overhead of the Arrow kernels dominates the write, so a
# smaller chunk_size is raised to it; memory per batch stays small either way.
MIN_BATCH_ROWS = 10_000


def run(step: dict, inputs: dict, ctx: StepContext):
    """Write the input table to a CSV file, atomically, in the column order of the data.

    Osiris sorts the columns alphabetically before writing; this driver keeps them as the upstream step
    produced them, so `SELECT b, a` writes b before a. The file is written to a temporary file next to
    the target and moved over it only when complete, so a failure (say a value the encoding cannot
    hold) leaves the previous file as it was and never a half-written one.

    Quoting, for every style: a null is an empty unquoted field and an empty string is `""`, so the two
    stay apart (PostgreSQL's COPY reads them back as NULL and ''). `minimal` quotes only values that
    contain the delimiter, a quote or a line break; `nonnumeric` also quotes every value that is not a
    number (text, dates, timestamps, booleans); `all` quotes every value. Values are rendered by Arrow
    (booleans as true/false, floats in their shortest exact form with 1.0 as 1, timestamps as
    `2024-01-31 12:00:00.000000`). pyarrow's own CSV writer is
    not used because its "needed" style quotes every string value, which is not `minimal`.
    """
    config = step["config"]
    table = _single_input(inputs, step["id"])
    path, shown = resolve(config["path"], ctx)
    if path.is_dir():
        raise StepError(f"'{shown}' is a folder, not a file.", hint="Set path to a file, e.g. out/data.csv.")
    if not path.parent.is_dir() and not config["create_dirs"]:
        raise StepError(
            f"The folder of '{shown}' does not exist.",
            hint="Create the folder, or set create_dirs: true to let the step create it.",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = _write_atomically(path, lambda out: _write_rows(out, table, config))
    except UnicodeEncodeError as exc:
        raise StepError(
            f"Could not write '{shown}' as {config['encoding']}: {exc}.",
            hint="Choose an encoding that can hold every value, such as utf-8.",
        ) from None
    except OSError as exc:
        raise StepError(
            f"Could not write '{shown}': {exc.strerror}.",
            hint="Check that the folder is writable and the disk has space.",
        ) from None
    ctx.report(
        "write.complete",
        table=shown,
        schema=None,
        mode="replace",
        rows_written=rows,
        channel_used="file",
        path=shown,
    )
    return None


def plan(step: dict, inputs: dict, ctx: StepContext) -> None:
    """Plan mode: look at the target file without touching it and report `plan.target` like the database
    writers: missing (the file would be created), compatible (its header names the data's columns, in
    order) or incompatible; the effect says how many rows the file now holds, since a run replaces them.
    """
    config = step["config"]
    table = _single_input(inputs, step["id"])
    path, shown = resolve(config["path"], ctx)
    names = table.schema.names
    differences: list[str] = []
    rows = None
    if path.is_dir():
        state, differences = "incompatible", [f"'{shown}' is a folder, not a file"]
    elif not path.exists():
        state = "missing"
        if not path.parent.is_dir() and not config["create_dirs"]:
            state, differences = "incompatible", ["its folder does not exist and create_dirs is false"]
    else:
        header, rows = _existing(path, config)
        expected = names if config["header"] else [str(i) for i in range(len(names))]
        if header != expected:
            state = "incompatible"
            found = ", ".join(header) or "(none)"
            differences = [f"the file's columns are {found}; the data's are {', '.join(expected)}"]
        else:
            state = "compatible"
    if state == "missing":
        effect = "create the file with the incoming rows"
    else:
        now = "its rows" if rows is None else f"its {rows:,} row" + ("" if rows == 1 else "s")
        effect = f"replace the file ({now}) with the incoming rows, in one rename"
    ctx.report(
        "plan.target",
        table=shown,
        schema=None,
        state=state,
        ddl=None,
        differences=differences,
        mode="replace",
        effect=effect,
        channel="file",
    )
    return None


def _existing(path, config: dict) -> tuple[list[str], int | None]:
    """The header of an existing file (or "0", "1", ... for a file without one) and its row count; a file
    that cannot be read as CSV with the step's options has no columns and an unknown count."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read = pacsv.ReadOptions(autogenerate_column_names=not config["header"], encoding=config["encoding"])
    parse = pacsv.ParseOptions(delimiter=config["delimiter"], newlines_in_values=True)
    convert = pacsv.ConvertOptions(column_types={}, strings_can_be_null=False)
    try:
        with pacsv.open_csv(str(path), read, parse, convert) as reader:
            names = [name if config["header"] else name.removeprefix("f") for name in reader.schema.names]
            return names, sum(batch.num_rows for batch in reader)
    except (pa.ArrowException, OSError, UnicodeError):
        return [], None


def _write_atomically(path, write) -> int:
    """Run `write` on a temporary file next to `path`, then move it over `path` in one rename; on any
    failure remove the temporary file and leave `path` as it was. A new file gets mode 0644, a replaced
    one keeps its mode. (Atomic against failures of the step; without an fsync, not against power loss,
    which a disposable sandbox does not need.)"""
    import tempfile

    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            result = write(out)
        os.chmod(temporary, stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return result


def _write_rows(out, table, config: dict) -> int:
    """Header and rows, batch by batch; returns the number of rows written."""
    encode = _encoder(config["encoding"])
    delimiter, quoting, eol = config["delimiter"], config["quoting"], NEWLINES[config["newline"]]
    if config["header"]:
        out.write(encode(_header(table.schema.names, delimiter, quoting, eol)))
    rows, size = 0, max(config["chunk_size"], MIN_BATCH_ROWS)
    for batch in table:
        for start in range(0, batch.num_rows, size):
            out.write(encode(_render(batch.slice(start, size), delimiter, quoting, eol)))
        rows += batch.num_rows
    return rows


def _single_input(inputs: dict, step_id: str):
    """The one stream to write. The worker hands each upstream stream in under several names (df_<id>,
    the id itself, input_df), so the same stream may appear more than once."""
    from osiris_drivers._common import reader

    tables = list({id(table): table for table in inputs.values()}.values())
    if len(tables) != 1:
        raise StepError(
            f"Step '{step_id}' writes one table but received {len(tables)} ({', '.join(sorted(inputs))}).",
            hint="List exactly one upstream step under needs; join several tables in a duckdb.processor "
            "step first.",
        )
    return reader(tables[0])


def _encoder(encoding: str):
    """UTF-8, what Arrow produces, is written as is; any other encoding is transcoded batch by batch
    (an incremental encoder, so a UTF-16 byte order mark appears once, at the start)."""
    if encoding == "utf-8":
        return lambda data: data
    encoder = codecs.getincrementalencoder(encoding)()
    return lambda data: encoder.encode(bytes(data).decode("utf-8"))


def _header(names: list[str], delimiter: str, quoting: str, eol: str) -> bytes:
    special = (delimiter, '"', "\r", "\n")
    cells = [
        '"' + name.replace('"', '""') + '"'
        if quoting != "minimal" or not name or any(char in name for char in special)
        else name
        for name in names
    ]
    return (delimiter.join(cells) + eol).encode()


def _render(batch, delimiter: str, quoting: str, eol: str) -> memoryview:
    """One batch as CSV lines, built with Arrow kernels column by column: a column is cast to text,
    quoted where its style asks, then the columns are joined into lines and the lines' bytes returned
    without any per-row Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    special = f'[{re.escape(delimiter)}"\\r\\n]'
    # Only text can hold these characters, unless the delimiter itself could occur in how a number,
    # date or boolean is written.
    delimiter_in_values = delimiter.isalnum() or delimiter in " .+-:"
    if not batch.num_columns or not batch.num_rows:
        return memoryview(eol.encode() * batch.num_rows)
    cells = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        is_text = _is_text(column.type)
        is_number = (
            pa.types.is_integer(column.type)
            or pa.types.is_floating(column.type)
            or pa.types.is_decimal(column.type)
        )
        try:
            text = pc.cast(column, pa.string())
        except pa.ArrowException as exc:
            raise StepError(
                f"Column '{name}' ({column.type}) cannot be written as CSV text: {exc}.",
                hint="CSV holds text, numbers, booleans, dates and times; turn other columns (lists, "
                "structs, intervals, binary) into text in an upstream duckdb.processor step, e.g. "
                "CAST(col AS VARCHAR) or to_json(col).",
            ) from None
        if quoting == "all" or (quoting == "nonnumeric" and not is_number):
            text = _quoted(text, escape=is_text)
        elif is_text or delimiter_in_values:
            needs_quotes = pc.match_substring_regex(text, special)
            if is_text:
                needs_quotes = pc.or_(needs_quotes, pc.equal(pc.binary_length(text), 0))
            if pc.any(needs_quotes).as_py():
                text = pc.if_else(needs_quotes, _quoted(text, escape=True), text)
        cells.append(pc.fill_null(text, ""))
    cells[-1] = pc.binary_join_element_wise(cells[-1], eol, "")
    lines = pc.binary_join_element_wise(*cells, delimiter)
    _, offsets, data = lines.buffers()
    offsets = memoryview(offsets).cast("i")
    return memoryview(data)[offsets[lines.offset] : offsets[lines.offset + len(lines)]]


def _quoted(text, escape: bool):
    """Every value in quotes; inner quotes doubled (only text can hold them)."""
    import pyarrow.compute as pc

    if escape:
        text = pc.replace_substring(text, '"', '""')
    return pc.binary_join_element_wise('"', text, '"', "")


def _is_text(arrow_type) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
        or pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
    )
