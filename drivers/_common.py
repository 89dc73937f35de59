"""What every driver shares with the worker: the step context, the error that carries a hint, and the
shape in which data moves between steps.

The driver contract: `run(step, inputs, ctx)`.
- `inputs` maps each name an upstream step is visible under (df_<id>, the id, input_df) to a
  `pyarrow.RecordBatchReader`; a step's names all map to the same reader. A reader is a stream: it can be
  read once, batch by batch, and it is never held whole in memory. A driver that has to scan an input more
  than once spills it first (`spill` and `scannable`, below). Tests and older drivers may pass an Arrow
  table instead; `reader` accepts both.
- An extractor or transform returns a `pyarrow.RecordBatchReader` (a table is accepted too). It should
  be lazy: rows are produced as the next step pulls them, so extract, transform and load overlap and
  memory does not grow with the row count.
- A writer consumes its reader inside one transaction and returns None, after `ctx.report("write.complete",
  rows_written=...)`.
The worker measures every stream (rows, fingerprint, progress) as it passes; drivers do not count for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StepError(Exception):
    """A failure the user can fix: `message` says what went wrong, `hint` says what to change."""

    def __init__(self, message: str, hint: str = "", error_type: str = "StepError"):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.error_type = error_type


@dataclass
class StepContext:
    """What a driver gets besides its config and inputs. Drivers never print or read the environment:
    the connection arrives resolved, and everything they report goes through `emit`."""

    step_id: str
    connection: dict[str, Any] | None
    artifacts_dir: Path
    base_dir: Path
    emit: Callable[..., None] = field(default=lambda event, **fields: None)
    plan_only: bool = False  # plan mode: inputs are empty tables; read what is needed, write nothing
    create_schema: bool = False  # the target schema is this run's own (per-PR isolation): create it
    diff: bool = False  # compare the incoming rows with the target inside the write, before applying them
    base_schema: str | None = None  # per-PR isolation: the schema the pipeline names (None: its default)
    results: dict[str, Any] = field(default_factory=dict)
    spill_dir: Path | None = None  # where a driver may spill a stream it must read twice (None: a temp dir)

    def report(self, event: str, **fields: Any) -> None:
        """Emit an event and remember its fields, so the worker can read measured values back."""
        self.results[event] = fields
        self.emit(event, **fields)


# --- streams ---------------------------------------------------------------------------------------------


def reader(data):
    """A RecordBatchReader over `data`: a reader as it is, a table or a record batch without a copy."""
    import pyarrow as pa

    if isinstance(data, pa.RecordBatchReader):
        return data
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return pa.RecordBatchReader.from_batches(data.schema, data.to_batches())
    raise TypeError(f"expected an Arrow RecordBatchReader or table, got {type(data).__name__}")


def mapped(source, schema, convert: Callable[[Any], Any]):
    """A lazy reader of `schema` whose batches are `convert(batch)` of the source's, one at a time."""
    import pyarrow as pa

    def batches() -> Iterator:
        for batch in source:
            yield convert(batch)

    return pa.RecordBatchReader.from_batches(schema, batches())


def counted(source):
    """The stream as a lazy reader, and a one-item list holding the rows that have passed through it:
    a writer reports the rows it received, measured on the way in."""
    seen = [0]

    def count(batch):
        seen[0] += batch.num_rows
        return batch

    return mapped(source, source.schema, count), seen


def spill(source, path: Path) -> int:
    """Write a stream to an Arrow IPC file (LZ4 compressed when available) batch by batch; returns the
    rows written. Only one batch is in memory at a time."""
    import pyarrow as pa

    compression = "lz4" if pa.Codec.is_available("lz4") else None
    rows = 0
    with pa.ipc.new_file(
        str(path), source.schema, options=pa.ipc.IpcWriteOptions(compression=compression)
    ) as out:
        for batch in source:
            out.write_batch(batch)
            rows += batch.num_rows
    return rows


def open_spill(path: Path):
    """A fresh reader over a spilled file; each batch is read from disk as it is pulled (no memory map, so
    the pages read do not stay in the process)."""
    import pyarrow as pa

    handle = pa.OSFile(str(path))
    file = pa.ipc.open_file(handle)

    def batches() -> Iterator:
        try:
            for index in range(file.num_record_batches):
                yield file.get_batch(index)
        finally:
            handle.close()

    return pa.RecordBatchReader.from_batches(file.schema, batches())


def scannable(path: Path):
    """A spilled file as a dataset that DuckDB (or anything else) can scan as often as it needs to."""
    import pyarrow.dataset as ds

    return ds.dataset(str(path), format="ipc")
