"""posthog.extractor: read PostHog events, persons, sessions or person_distinct_ids through the HogQL API.

One `POST <base>/api/projects/<project_id>/query/` per page, values bound by PostHog's own placeholders
(`values`), never spliced into the query. Pages follow a keyset on (timestamp, uuid) for events
((created_at, id) for persons, ($start_timestamp, session_id) for sessions, (person_id, distinct_id) for
person_distinct_ids) at the full microsecond precision the API returns, so a second holding more events
than a page is read once, and no OFFSET is sent (PostHog refuses OFFSET to personal API keys). Paging
stops at the first page shorter than `page_size`.

Window (events and sessions): from `initial_since` (else 30 days ago) minus `lookback_window_minutes`, to
now. No state is kept between runs (a CI run starts fresh), so every run reads its whole window; the
window is reported on the step (`step.note`, shown in the summary) and in `extract.complete`.

Types are declared, not guessed: the known columns of each table have fixed types (`timestamp` a UTC
timestamp to the microsecond, offsets applied; `uuid` and `person_id` text marked uuid; `properties` the
JSON text exactly as PostHog sends it, marked json: big integers and unicode untouched), and other columns
(sessions) take the ClickHouse types PostHog returns with the first page. So the schema is known after the
first page: it is fetched in `run` (a wrong key fails there) and the rest stream page by page.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

from osiris_drivers._common import StepContext, StepError
from osiris_drivers._http import Http, checked_url, shown_url

SPEC = {
    "name": "posthog.extractor",
    "families": ["posthog"],
    "modes": ["extract", "discover"],
    "connection": {
        "api_key": "forbidden",
        "project_id": "forbidden",
        "region": "allowed",
        "custom_base_url": "allowed",
    },
    "secrets": ["api_key"],
    "config": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "api_key": {"type": "string", "minLength": 1},
            "project_id": {"type": "string", "minLength": 1},
            "region": {"enum": ["us", "eu", "self_hosted"], "default": "us"},
            "custom_base_url": {"type": "string", "minLength": 1},
            "data_type": {
                "enum": ["events", "persons", "sessions", "person_distinct_ids"],
                "default": "events",
            },
            "event_types": {"type": "array", "items": {"type": "string", "minLength": 1, "pattern": "\\S"}},
            "lookback_window_minutes": {"type": "integer", "minimum": 5, "maximum": 60, "default": 15},
            "initial_since": {"type": "string", "format": "date-time", "minLength": 1},
            "page_size": {"type": "integer", "minimum": 100, "maximum": 10000, "default": 1000},
            "deduplication_enabled": {"type": "boolean", "default": True},
        },
    },
    "constraints": [
        {
            "require": "api_key",
            "hint": "Set `api_key: ${ENV_VAR}` (a personal key, phx_...) on the posthog connection.",
        },
        {"require": "project_id", "hint": "Set `project_id` on the posthog connection."},
        {
            "when": {"region": ["self_hosted"]},
            "require": "custom_base_url",
            "hint": "Set `custom_base_url` (https://posthog.example.com) on the connection or the step.",
        },
    ],
    "requires": ["httpx", "pyarrow"],
    "helpers": ["_http.py", "_pages.py"],
}

BASE_URLS = {"us": "https://us.posthog.com", "eu": "https://eu.posthog.com"}
DEFAULT_DAYS = 30
RECENT_UUIDS = 10_000  # how many uuids deduplication remembers (as Osiris does)


# What each data_type reads: its columns (None: every column of the table), its window column, and the
# keyset it pages on (the first key is a timestamp where `timed`).
TABLES = {
    "events": {
        "select": "uuid, event, timestamp, distinct_id, person_id, properties",
        "table": "events",
        "window": "timestamp",
        "keys": ("timestamp", "uuid"),
        "timed": True,
    },
    "persons": {
        "select": "id, created_at, properties, is_identified",
        "table": "persons",
        "window": None,
        "keys": ("created_at", "id"),
        "timed": True,
    },
    "sessions": {
        "select": "*",
        "table": "sessions",
        "window": "$start_timestamp",
        "keys": ("$start_timestamp", "session_id"),
        "timed": True,
    },
    "person_distinct_ids": {
        "select": "distinct_id, person_id",
        "table": "person_distinct_ids",
        "window": None,
        "keys": ("person_id", "distinct_id"),
        "timed": False,
    },
}
# Columns whose type does not depend on what the server says.
DECLARED = {
    "uuid": "uuid",
    "id": "uuid",
    "person_id": "uuid",
    "event": "string",
    "distinct_id": "string",
    "session_id": "string",
    "timestamp": "timestamp",
    "created_at": "timestamp",
    "properties": "json",
    "is_identified": "bool",
}
# ClickHouse type (without Nullable/LowCardinality) → our kind.
CLICKHOUSE = [
    (re.compile(r"U?Int(8|16|32)|Int64"), "int64"),
    (re.compile(r"UInt64"), "uint64"),
    (re.compile(r"U?Int(128|256)|Decimal.*"), "numeric"),
    (re.compile(r"Float(32|64)"), "float64"),
    (re.compile(r"Bool"), "bool"),
    (re.compile(r"DateTime.*"), "timestamp"),
    (re.compile(r"Date(32)?"), "date"),
    (re.compile(r"UUID"), "uuid"),
    (re.compile(r"(Array|Map|Tuple|JSON|Object)\b.*"), "json"),
]


def run(step: dict, inputs: dict, ctx: StepContext):
    """The first page now (its types make the schema; a wrong key fails here), the rest as they are read."""
    import pyarrow as pa

    reading = _Reading(step["config"], ctx)
    try:
        first = reading.fetch()
    except BaseException:
        reading.http.close()
        raise
    schema = pa.schema([kind_field(name, kind) for name, kind in reading.kinds])
    ctx.emit("step.note", note=reading.window_note())
    return pa.RecordBatchReader.from_batches(schema, reading.batches(first, schema))


def plan(step: dict, inputs: dict, ctx: StepContext):
    """One query of one row: the key, project and query are checked by PostHog, the columns named."""
    import pyarrow as pa

    reading = _Reading(step["config"], ctx, page_size=1)
    with reading.http:
        rows = reading.fetch()
    schema = pa.schema([kind_field(name, kind) for name, kind in reading.kinds])
    ctx.report(
        "extract.planned",
        data_type=reading.data_type,
        url=shown_url(reading.url),
        rows_fetched=len(rows),
        columns=len(schema),
        **reading.window_fields(),
        check="LIMIT 1",
    )
    return schema.empty_table()


class _Reading:
    """One extraction: where, what, which window, and the keyset position between pages."""

    def __init__(self, config: dict, ctx: StepContext, page_size: int | None = None):
        connection = ctx.connection or {}
        self.ctx = ctx
        self.data_type = config.get("data_type") or "events"
        self.table = TABLES[self.data_type]
        self.page_size = page_size or int(config.get("page_size") or 1000)
        self.dedup = bool(config.get("deduplication_enabled", True)) and self.data_type == "events"
        api_key = connection.get("api_key") or config.get("api_key") or ""
        project_id = str(connection.get("project_id") or config.get("project_id") or "")
        if not api_key or not project_id:
            missing = " and ".join(k for k, v in (("api_key", api_key), ("project_id", project_id)) if not v)
            raise StepError(
                f"step '{ctx.step_id}': the posthog connection gives no {missing}.",
                "Set api_key (as ${ENV_VAR}: a personal API key, phx_...) and project_id on the posthog "
                "connection in osiris_connections.yaml.",
            )
        if not re.fullmatch(r"[0-9]+|@current", project_id):
            raise StepError(
                f"step '{ctx.step_id}': the posthog connection's project_id is not a project number.",
                "Set project_id to the number in the project's URL (…/project/12345).",
            )
        region = config.get("region") or connection.get("region") or "us"
        base = (
            (config.get("custom_base_url") or connection.get("custom_base_url"))
            if region == "self_hosted"
            else None
        )
        if region == "self_hosted":
            if not base:
                raise StepError(
                    f"step '{ctx.step_id}': region self_hosted needs custom_base_url.",
                    "Set `custom_base_url` (https://posthog.example.com) on the connection or the step.",
                )
            checked_url(base, ctx.step_id, "custom_base_url")
        elif region not in BASE_URLS:
            raise StepError(
                f"step '{ctx.step_id}': unknown PostHog region {str(region)[:40]!r}.",
                "Use region us, eu or self_hosted (with custom_base_url).",
            )
        else:
            base = BASE_URLS[region]
        self.url = f"{base.rstrip('/')}/api/projects/{project_id}/query/"
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.http = Http(
            ctx,
            "PostHog API",
            [api_key],
            "Check api_key of the posthog connection: it must be a personal API key (phx_...) with read "
            "access to this project (a project key, phc_..., cannot query).",
            max_retries=5,
            hints={
                404: "Check project_id and region of the posthog connection: no such project there.",
                400: "PostHog refused the query; the message above is its own.",
            },
        )
        self.event_types = list(config.get("event_types") or []) if self.data_type == "events" else []
        if config.get("event_types") and self.data_type != "events":
            ctx.emit("step.note", note=f"event_types filters events only; it is ignored for {self.data_type}")
        self.until = datetime.now(UTC)
        self.since = None
        if self.table["window"]:
            start = _since(config.get("initial_since"), ctx)
            lookback = int(config.get("lookback_window_minutes") or 15)
            self.basis = (
                f"initial_since {_iso(start)}" if start else f"no initial_since: {DEFAULT_DAYS} days back"
            ) + f", minus the {lookback}-minute lookback"
            start = start or self.until - timedelta(days=DEFAULT_DAYS)
            self.since = start - timedelta(minutes=lookback)
        self.after: tuple | None = None
        self.columns: list[str] | None = None
        self.kinds: list[tuple[str, str]] = []
        self.pages = self.rows = self.duplicates = 0
        self.recent: OrderedDict[str, None] = OrderedDict()

    def query(self) -> tuple[str, dict]:
        t = self.table
        conditions, values = [], {}
        if t["window"]:
            conditions.append(
                f"{t['window']} >= toDateTime({{since}}) AND {t['window']} < toDateTime({{until}})"
            )
            values["since"], values["until"] = _iso(self.since), _iso(self.until)
        if self.event_types:
            conditions.append("event IN {event_types}")
            values["event_types"] = self.event_types
        if self.after is not None:
            first, second = t["keys"]
            key = "toDateTime({after_1})" if t["timed"] else "{after_1}"
            conditions.append(f"({first} > {key} OR ({first} = {key} AND {second} > {{after_2}}))")
            values["after_1"], values["after_2"] = self.after
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        order = ", ".join(f"{k} ASC" for k in t["keys"])
        sql = f"SELECT {t['select']} FROM {t['table']}{where} ORDER BY {order} LIMIT {self.page_size}"
        return sql, values

    def fetch(self) -> list[list]:
        """One page of rows (lists, in the order of `columns`); the keyset moves past its last row."""
        sql, values = self.query()
        body = {"query": {"kind": "HogQLQuery", "query": sql, "values": values}}
        with_note = f"page {self.pages + 1} of {self.data_type}"
        answer = self.http.post_json(self.url, body, self.headers)
        results, columns = (
            (answer.get("results"), answer.get("columns")) if isinstance(answer, dict) else (0, 0)
        )
        if not isinstance(results, list) or not isinstance(columns, list):
            raise self.http.error(
                f"PostHog's answer to {with_note} has no `results` and `columns` lists.",
                "Check that the base URL is the PostHog API (region or custom_base_url).",
                "ResponseError",
            )
        if self.columns is None:
            self.columns = [str(c) for c in columns]
            types = _server_types(answer.get("types"))
            self.kinds = [(c, DECLARED.get(c) or _kind(types.get(c))) for c in self.columns]
        elif [str(c) for c in columns] != self.columns:
            raise self.http.error(
                f"PostHog returned other columns on {with_note} than on page 1.",
                "Run again.",
                "ResponseError",
            )
        self.pages += 1
        for row in results:
            if not isinstance(row, list) or len(row) != len(self.columns):
                raise self.http.error(
                    f"PostHog returned a row of another shape than its columns on {with_note}.",
                    "Run again; if it persists, the server does not speak PostHog's query API.",
                    "ResponseError",
                )
        if results:
            first, second = (self.columns.index(k) if k in self.columns else -1 for k in self.table["keys"])
            if first < 0 or second < 0:
                raise self.http.error(
                    f"PostHog's answer lacks the keyset columns {', '.join(self.table['keys'])}.",
                    "Run again.",
                    "ResponseError",
                )
            after = (results[-1][first], results[-1][second])
            if after == self.after:
                raise self.http.error(
                    f"PostHog returned the same last row again on {with_note}; paging would loop forever.",
                    "Run again; if it persists, report it with the step's events.",
                    "PaginationError",
                )
            self.after = after
        return results

    def batches(self, first: list[list], schema):
        """The batches, page by page; the next page is asked for only when this one has been taken."""
        rows = first
        try:
            while True:
                batch = self.batch(rows, schema)
                self.rows += batch.num_rows
                yield batch
                if len(rows) < self.page_size:
                    break
                rows = self.fetch()
        finally:
            self.http.close()
        self.ctx.report(
            "extract.complete",
            rows=self.rows,
            pages=self.pages,
            requests=self.http.requests,
            retries=self.http.retries,
            rows_deduplicated=self.duplicates,
            columns=len(schema),
            data_type=self.data_type,
            **self.window_fields(),
        )

    def batch(self, rows: list[list], schema):
        import pyarrow as pa

        if self.dedup and rows:
            position = self.columns.index("uuid") if "uuid" in self.columns else None
            if position is not None:
                kept = []
                for row in rows:
                    key = row[position]
                    if key in self.recent:
                        self.duplicates += 1
                        continue
                    self.recent[key] = None
                    if len(self.recent) > RECENT_UUIDS:
                        self.recent.popitem(last=False)
                    kept.append(row)
                rows = kept
        cells = list(zip(*rows, strict=True)) if rows else [()] * len(self.columns)
        arrays = [
            _array(list(values), kind, name, self.ctx.step_id)
            for values, (name, kind) in zip(cells, self.kinds, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def window_fields(self) -> dict:
        if self.since is None:
            return {"window": "whole table (no time window)"}
        return {"window_start": _iso(self.since), "window_end": _iso(self.until)}

    def window_note(self) -> str:
        if self.since is None:
            return f"read all {self.data_type} (no time window); no state is kept between runs"
        return (
            f"read {self.data_type} from {_iso(self.since)} to {_iso(self.until)} ({self.basis}); no "
            "state is kept between runs, so each run reads this whole window"
        )


def _since(value, ctx: StepContext) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise StepError(
            f"step '{ctx.step_id}': initial_since {str(value)[:40]!r} is not an ISO 8601 date-time.",
            "Write it like 2025-01-31T00:00:00Z.",
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _server_types(types) -> dict[str, str]:
    """`types` of a HogQL answer: a list of [name, ClickHouse type] (or of types in column order)."""
    if not isinstance(types, list):
        return {}
    return {str(t[0]): str(t[1]) for t in types if isinstance(t, list | tuple) and len(t) == 2}


def _kind(clickhouse: str | None) -> str:
    if not clickhouse:
        return "string"
    inner = clickhouse
    while match := re.fullmatch(r"(?:Nullable|LowCardinality)\((.*)\)", inner):
        inner = match.group(1)
    return next((kind for pattern, kind in CLICKHOUSE if pattern.fullmatch(inner)), "string")


def _timestamps(values: list):
    """ISO strings with their offset (as PostHog sends them) to UTC microseconds, in bulk; a string
    without an offset is read as UTC, one by one (ClickHouse's own default zone)."""
    import pyarrow as pa

    utc = pa.timestamp("us", "UTC")
    try:
        return pa.array(values, pa.string()).cast(utc)
    except pa.ArrowInvalid:
        parsed = [None if v is None else datetime.fromisoformat(v.replace("Z", "+00:00")) for v in values]
        return pa.array([d if d is None or d.tzinfo else d.replace(tzinfo=UTC) for d in parsed], utc)


def kind_field(name: str, kind: str):
    import pyarrow as pa

    arrow = {
        "int64": pa.int64(),
        "uint64": pa.uint64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", "UTC"),
        "date": pa.date32(),
    }.get(kind, pa.string())
    mark = {"json": b"json", "uuid": b"uuid", "numeric": b"numeric"}.get(kind)
    return pa.field(name, arrow, metadata={b"osiris.type": mark} if mark else None)


def _array(values: list, kind: str, name: str, step_id: str):
    """One column of a page in its declared type; a value that does not fit is an error, never a guess."""
    import pyarrow as pa

    field = kind_field(name, kind)
    try:
        if kind == "timestamp":
            return _timestamps(values)
        if kind == "date":
            return pa.array(values, pa.string()).cast(field.type)
        if kind in ("int64", "uint64", "float64", "bool"):
            return pa.array(values, field.type)
        text = [v if isinstance(v, str) or v is None else json.dumps(v, ensure_ascii=False) for v in values]
        return pa.array(text, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError, AttributeError) as exc:
        raise StepError(
            f"step '{step_id}': PostHog's column {name!r} holds a value that is not a {kind}: "
            f"{str(exc).splitlines()[0][:200]}",
            "Report it: the column's declared type and its values disagree.",
            "ResponseError",
        ) from None
