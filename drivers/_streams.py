"""How a step's output flows to the steps that read it, measured on the way.

A `Stream` passes a driver's record batches on to the one step that reads them, counting rows,
accumulating the fingerprint and reporting progress batch by batch; `Spilled` is an output written once to
an Arrow IPC file for several readers; `Ready` is an output its driver returned whole. The worker wires
steps together with them; nothing here knows about drivers or events beyond an `emit` function.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path


def fingerprint(table) -> str:
    """Order-independent: the same rows in any order give the same value, on any machine. The reference
    for `Fingerprint`, which computes the same value on a stream."""
    fp = Fingerprint(table.schema)
    for batch in table.to_batches():
        fp.add(batch)
    return fp.value()


class Fingerprint:
    """sha256 of (schema, row count, the sum of DuckDB's hash of every row), accumulated batch by batch.

    A sum does not depend on the order of the rows or on how they are cut into batches, so the value of a
    stream equals the value of the same rows as one table. Batches are hashed in groups of about
    GROUP_ROWS rows (a DuckDB query per small batch would cost more than the hashing itself). With
    `background`, a thread hashes the groups while the stream moves on (DuckDB releases the GIL), at most
    QUEUED groups behind it."""

    GROUP_ROWS, GROUP_BYTES, QUEUED = 32_768, 4 << 20, 2

    def __init__(self, schema, background: bool = False):
        self.schema = schema
        self.count = self.total = 0
        self._pending: list = []
        self._pending_rows = self._pending_bytes = 0
        self._con = None
        self._queue = self._thread = self._error = None
        if background:
            import queue
            import threading

            self._queue = queue.Queue(maxsize=self.QUEUED)
            self._thread = threading.Thread(target=self._drain, daemon=True)
            self._thread.start()

    def add(self, batch) -> None:
        if not batch.num_rows:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        if self._pending_rows >= self.GROUP_ROWS or self._pending_bytes >= self.GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        group, self._pending, self._pending_rows, self._pending_bytes = self._pending, [], 0, 0
        if not group:
            return
        if self._queue is not None:
            self._queue.put(group)
        else:
            self._hash(group)

    def _drain(self) -> None:
        while (group := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._hash(group)
                except BaseException as exc:  # reported by value()
                    self._error = exc

    def _hash(self, group: list) -> None:
        import pyarrow as pa

        if self._con is None:
            from osiris_drivers._duckdb import connect

            self._con = connect(threads=1)
        self._con.register("t", pa.Table.from_batches(group, self.schema))
        count, total = self._con.execute("SELECT count(*), coalesce(sum(hash(t)), 0) FROM t").fetchall()[0]
        self._con.unregister("t")
        self.count += count
        self.total += int(total)

    def value(self) -> str:
        self._flush()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            if self._error is not None:
                raise self._error
        if self._con is not None:
            self._con.close()
            self._con = None
        schema = ",".join(f"{f.name}:{f.type}" for f in self.schema)
        return hashlib.sha256(f"{schema}|{self.count}|{self.total}".encode()).hexdigest()[:16]


class Progress:
    """Rate-limited `write.progress` / `step.progress` events: a step's row count at most every INTERVAL
    seconds, so a long job shows that it moves and events.jsonl stays small."""

    INTERVAL = 2.0

    def __init__(self, emit):
        self.emit = emit  # emit(event, step_id=..., **fields)
        self.last: dict[str, float] = {}

    def tick(self, sid: str, event: str, rows: int, started: float) -> None:
        now = time.perf_counter()
        if now - self.last.get(sid, started) < self.INTERVAL:
            return
        self.last[sid] = now
        self.emit(event, step_id=sid, rows=rows, elapsed_ms=round((now - started) * 1000, 1))


class Stream:
    """One step's output as it flows to the next step: it counts rows, accumulates the fingerprint and
    reports progress batch by batch, and ends the step when the last batch has passed (`on_end`).

    A failure raised by the step's own source is remembered in `failures` before it travels on, because
    a consumer (DuckDB, ADBC) may turn it into its own error text on the way."""

    def __init__(self, sid: str, source, started: float, progress: Progress, failures: list, on_end):
        self.sid = sid
        self.schema = source.schema
        self.rows = 0
        self.done = False
        self.print: str | None = None
        # seconds spent producing batches (this step and, nested in it, the steps it reads) and hashing them
        self.busy_s = self.hash_s = 0.0
        self._source = source
        self._started, self._progress, self._failures = started, progress, failures
        self._on_end = on_end
        self._fp = Fingerprint(source.schema, background=True)
        self._batches = self._flow()
        self._opened = False

    def _flow(self):
        source = iter(self._source)
        clock = time.perf_counter
        while True:
            pulled = clock()
            try:
                batch = next(source)
            except StopIteration:
                break
            except BaseException as exc:
                self._failures.append((self.sid, exc))
                raise
            finally:
                self.busy_s += clock() - pulled
            self.rows += batch.num_rows
            hashed = clock()
            self._fp.add(batch)
            self.hash_s += clock() - hashed
            self._progress.tick(self.sid, "step.progress", self.rows, self._started)
            yield batch
        hashed = clock()
        self.print = self._fp.value()
        self.hash_s += clock() - hashed
        self.done = True
        self._on_end(self)

    def reader(self):
        """The stream for its one consumer."""
        import pyarrow as pa

        if self._opened:
            raise RuntimeError(f"the output of step {self.sid} was already handed to a consumer")
        self._opened = True
        return pa.RecordBatchReader.from_batches(self.schema, self._batches)

    def drain(self) -> None:
        """Pull whatever the consumer left (a LIMIT, a failed write), so counts and fingerprint stay whole."""
        for _ in self._batches:
            pass


@dataclass
class Spilled:
    """A step's output written once to an Arrow IPC file, for several consumers (or a second look)."""

    path: Path
    rows: int
    print: str | None
    readers: int  # consumers still to come; the file is removed when the last one is done


class Ready:
    """A step's output that its driver returned whole, as a table: measured at once, shared by its readers."""

    def __init__(self, table, readers: int):
        self.table, self.rows, self.print, self.readers = table, table.num_rows, fingerprint(table), readers

    def reader(self):
        from osiris_drivers._common import reader

        return reader(self.table)


class EmptyOutput:
    """Plan mode: an upstream step's output is its columns without rows, for every consumer."""

    def __init__(self, table):
        self.table, self.rows, self.print = table, 0, None

    def reader(self):
        from osiris_drivers._common import reader

        return reader(self.table)
