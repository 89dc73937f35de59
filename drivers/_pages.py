"""JSON rows from an API, page by page, into Arrow with types that hold across every page.

An API without a declared schema (GraphQL as the extractor sees it) gives each page's types only from
its values: a column may be null on page 1 and integer on page 5, whole numbers on one page and
fractions on the next. Typing from the first page (or the first row) would be wrong, and typing from all
pages needs them all. So each page becomes one Arrow batch with its own exact types, and is spilled to an
Arrow IPC file in a private temporary folder as soon as it arrives (memory holds one page); when the last
page is in, the types are joined (below) and the batches are read back one at a time, cast to the joined
schema. The reader the step returns streams from disk; the API's pages are fetched before the first
batch leaves, which is the price of a schema that is true for every row.

Each column's type, from the JSON values of one page:
- only nulls: null; only booleans: bool; only integers: int64 (exact, nulls allowed), or, past the int64
  range, their decimal text marked numeric; only numbers: float64 (integers kept exact as numeric text
  when one is too large for a float to hold exactly); only strings: string;
- objects and lists: their JSON text (UTF-8, unescaped), marked json, so writers create JSON columns;
- anything else (mixed kinds): text, non-strings as their JSON text.
Across pages the same rules join the page types: null joins anything, int64 and float64 give float64 when
every integer is exact as a float, numeric text otherwise; any other mix gives text.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARK = b"osiris.type"  # field metadata read by the writers and duckdb.processor: json | numeric | uuid
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT_EXACT = 2**53  # integers up to this magnitude survive a float64


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass
class Kind:
    """A column's type on one page, with what the join across pages needs to know."""

    type: Any  # pyarrow DataType
    mark: bytes | None = None
    max_int: int = 0  # largest |integer| seen, for the int64 → float64 join

    def field(self, name: str):
        import pyarrow as pa

        return pa.field(name, self.type, metadata={MARK: self.mark} if self.mark else None)


def column(values: list) -> tuple[Any, Kind]:
    """One page's values of one column → (Arrow array, its Kind). Exact: no value changes on the way."""
    import pyarrow as pa

    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.nulls(len(values)), Kind(pa.null())
    if kinds == {bool}:
        return pa.array(values, pa.bool_()), Kind(pa.bool_())
    if kinds <= {int, float}:
        ints = [v for v in values if type(v) is int]
        biggest = max((abs(v) for v in ints), default=0)
        if kinds == {int} and min(ints) >= INT64_MIN and max(ints) <= INT64_MAX:
            return pa.array(values, pa.int64()), Kind(pa.int64(), max_int=biggest)
        if kinds == {float} or biggest <= FLOAT_EXACT:
            return pa.array(values, pa.float64()), Kind(pa.float64())
        text = [None if v is None else (str(v) if type(v) is int else repr(v)) for v in values]
        return pa.array(text, pa.string()), Kind(pa.string(), b"numeric")
    if kinds == {str}:
        return pa.array(values, pa.string()), Kind(pa.string())
    if kinds <= {dict, list}:
        text = [None if v is None else json_text(v) for v in values]
        return pa.array(text, pa.string()), Kind(pa.string(), b"json")
    text = [v if isinstance(v, str) or v is None else json_text(v) for v in values]
    return pa.array(text, pa.string()), Kind(pa.string())


def join(kinds: list[Kind]) -> Kind:
    """The one type that holds a column's values from every page."""
    import pyarrow as pa

    present = [k for k in kinds if not pa.types.is_null(k.type)]
    if not present:
        return Kind(pa.null())
    shapes = {(str(k.type), k.mark) for k in present}
    if len(shapes) == 1:
        return Kind(present[0].type, present[0].mark, max(k.max_int for k in present))
    if shapes <= {("int64", None), ("double", None)}:
        if max(k.max_int for k in present) <= FLOAT_EXACT:
            return Kind(pa.float64())
        return Kind(pa.string(), b"numeric")
    if shapes <= {("int64", None), ("double", None), ("string", b"numeric")}:
        return Kind(pa.string(), b"numeric")
    return Kind(pa.string())


@dataclass
class Spill:
    """Pages as Arrow IPC files in a private folder, removed once read back (or on `discard`)."""

    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="osiris-pages-")))
    columns: dict[str, list[Kind]] = field(default_factory=dict)  # name → its kind on each page
    pages: int = 0
    rows: int = 0

    def add(self, names: list[str], values: dict[str, list], count: int) -> None:
        """One page: `values[name]` holds `count` values for each name (None where a row lacks it)."""
        import pyarrow as pa
        import pyarrow.ipc as ipc

        arrays, fields = [], []
        for name in names:
            array, kind = column(values.get(name) or [None] * count)
            arrays.append(array)
            fields.append(kind.field(name))
            self.columns.setdefault(name, []).append(kind)
        batch = pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
        path = self.folder / f"{self.pages:06d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, batch.schema) as writer:
            writer.write_batch(batch)
        self.pages += 1
        self.rows += count

    def schema(self, drop: set[str] | None = None):
        import pyarrow as pa

        return pa.schema(
            [join(kinds).field(name) for name, kinds in self.columns.items() if name not in (drop or set())]
        )

    def reader(self, drop: set[str] | None = None):
        """A RecordBatchReader over every page, each cast to the joined schema; the folder goes at the end."""
        import pyarrow as pa

        schema = self.schema(drop)
        return pa.RecordBatchReader.from_batches(schema, self._batches(schema))

    def _batches(self, schema):
        import pyarrow as pa
        import pyarrow.ipc as ipc

        try:
            for index in range(self.pages):
                with ipc.open_file(str(self.folder / f"{index:06d}.arrow")) as source:
                    batch = source.get_batch(0)
                arrays = []
                for target in schema:
                    position = batch.schema.get_field_index(target.name)
                    if position < 0:
                        arrays.append(pa.nulls(batch.num_rows, target.type))
                        continue
                    arrays.append(_cast(batch.column(position), target.type))
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
        finally:
            self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _cast(array, target):
    """A page's column in the joined type (numbers and booleans as text read as in JSON: 5, 1.5, true)."""
    import pyarrow as pa

    if array.type == target:
        return array
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), target)
    return array.cast(target, safe=True)
