"""The run report, built from the worker's events alone, so local and E2B runs report the same way.

`apply` folds the worker's raw events in, so every check reads what the worker measured; `shown` is
the copy that may leave the process, with every known secret masked (docs/report.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from osiris_action.redact import Redactor

REPORT_VERSION = "1"
INCOMPATIBLE = "IncompatibleTarget"


# Plain dataclasses: the report is built from our own worker's events, and a run's host must not spend
# ~0.1 s building validation schemas for it. `dump` writes one as report.json spells it; `_load` reads it
# back. A field's metadata can rename it (`name`), keep it out of report.json (`dumped: False`), or name
# the dataclass of its list's items (`items`).


def dump(value: Any, exclude: frozenset[str] | set[str] = frozenset()) -> Any:
    """A report, or a part of one, as JSON data with report.json's field names (fresh lists and dicts)."""
    if is_dataclass(value):
        return {
            f.metadata.get("name", f.name): dump(getattr(value, f.name))
            for f in fields(value)
            if f.metadata.get("dumped", True) and f.name not in exclude
        }
    if isinstance(value, list | tuple):
        return [dump(item) for item in value]
    if isinstance(value, dict):
        return {key: dump(item) for key, item in value.items()}
    return value


def _load(cls, data: dict[str, Any]):
    values = {}
    for f in fields(cls):
        key = f.metadata.get("name", f.name)
        if key in data:
            item = data[key]
            nested = f.metadata.get("items")
            values[f.name] = [_load(nested, x) for x in item] if nested else item
    return cls(**values)


@dataclass(kw_only=True)
class StepReport:
    id: str
    component: str
    status: Literal["pending", "running", "success", "failed", "skipped"] = "pending"
    rows_in: int | None = None
    rows_out: int | None = None
    duration_ms: float | None = None
    fingerprint: str | None = None
    needs: list[str] = field(default_factory=list)
    error: dict[str, str] | None = None
    columns: list[dict[str, str]] | None = None  # plan mode: what the step would produce
    notes: list[str] = field(default_factory=list)  # what a driver says the reader must know (`step.note`)


@dataclass(kw_only=True)
class WriteCounts:
    """What a write did, as the server measured it: rows received, and of them inserted, updated, and
    left as they were (an upsert's equal rows). `rows_written` None with `rows_written_measured` False:
    the target did not say (REST without a Content-Range total)."""

    rows_in: int | None = None
    inserted: int | None = None
    updated: int | None = None
    unchanged: int | None = None
    rows_written_measured: bool = True

    @property
    def rows_short(self) -> int:
        """Rows received that the target neither wrote nor found unchanged (a BEFORE trigger returning
        NULL, an ignore-duplicates upsert, a row-level security policy); 0 when not measured."""
        if self.rows_in is None:
            return 0
        if self.inserted is not None:
            done = self.inserted + (self.updated or 0) + (self.unchanged or 0)
        elif self.rows_written_measured and getattr(self, "rows_written", None) is not None:
            done = self.rows_written
        else:
            return 0
        return max(self.rows_in - done, 0)


def write_counts(event: dict[str, Any]) -> dict[str, Any]:
    """The WriteCounts fields of a write.complete event."""
    counts = {k: event.get(k) for k in ("rows_in", "inserted", "updated", "unchanged")}
    return {**counts, "rows_written_measured": event.get("rows_written_measured", True) is not False}


@dataclass(kw_only=True)
class DataDiff:
    """One written table against its base (see docs/data-diff.md). `stats` and `note` travel in the
    diff.complete event and the summary, not in report.json, whose data_diff keys are fixed."""

    step: str
    table: str
    base_table: str
    key: list[str] = field(default_factory=list)  # the diff.complete event calls it key_columns
    rows_base: int
    rows_new: int
    added: int
    removed: int
    changed: int
    unchanged: int
    columns: dict[str, int] = field(default_factory=dict)
    schema_changes: list[dict[str, Any]] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict, metadata={"dumped": False})
    note: str = field(default="", metadata={"dumped": False})


@dataclass(kw_only=True)
class DiffNote:
    """A writer that computes no diff, and why; or, in plan mode, the diff a run would compute."""

    step: str
    table: str | None = None
    reason: str


def apply_data_diff(report: RunReport, event: dict[str, Any]) -> bool:
    """Fold the diff events into the report; True when the event was one of them."""
    name, step = event.get("event"), str(event.get("step_id", ""))
    if name == "diff.complete":
        names = {f.name for f in fields(DataDiff)}
        values = {k: v for k, v in event.items() if k in names}
        if "key" not in values and "key_columns" in event:
            values["key"] = event["key_columns"]
        report.data_diff.append(DataDiff(**{**values, "step": step}))
    elif name in ("diff.unavailable", "diff.planned"):
        note = DiffNote(step=step, table=event.get("table"), reason=str(event.get("reason", "")))
        (report.diff_unavailable if name == "diff.unavailable" else report.diff_planned).append(note)
    else:
        return False
    return True


@dataclass(kw_only=True)
class WriteReport(WriteCounts):
    step_id: str
    table: str | None
    schema_: str | None = field(default=None, metadata={"name": "schema"})
    mode: str | None
    rows_written: int | None
    channel: str | None
    atomic: bool | None = None

    @property
    def where(self) -> str:
        """The table as written in SQL: `schema.table`, or the bare name (a file path) without a schema."""
        return f"{self.schema_}.{self.table}" if self.schema_ else str(self.table)


@dataclass(kw_only=True)
class DdlReport:
    step_id: str
    sql: str
    executed: bool
    channel: str | None = None


@dataclass(kw_only=True)
class TargetPlan:
    """Plan mode: a writer's target table as it is now, and what the write would do to it."""

    step_id: str
    table: str | None = None
    schema_: str | None = field(default=None, metadata={"name": "schema"})
    state: Literal["missing", "compatible", "incompatible"]
    ddl: str | None = None
    differences: list[str] = field(default_factory=list)
    mode: str | None = None
    effect: str | None = None

    @property
    def where(self) -> str:
        """The table as written in SQL: `schema.table`, or the bare name (a file path) without a schema."""
        return f"{self.schema_}.{self.table}" if self.schema_ else str(self.table)


@dataclass(kw_only=True)
class ParityRow:
    path: str
    host_sha256: str | None
    sandbox_sha256: str | None
    match: bool


@dataclass(kw_only=True)
class RunReport:
    report_version: str = REPORT_VERSION
    run_id: str
    pipeline: str
    file: str | None = None
    manifest_fingerprint: str
    target: str
    mode: Literal["run", "plan"] = "run"
    status: Literal["success", "failure", "cancelled"] = "failure"
    duration_ms: float | None = None
    steps: list[StepReport] = field(metadata={"items": StepReport})
    writes: list[WriteReport] = field(default_factory=list, metadata={"items": WriteReport})
    ddl: list[DdlReport] = field(default_factory=list, metadata={"items": DdlReport})
    targets: list[TargetPlan] = field(default_factory=list, metadata={"items": TargetPlan})
    parity: list[ParityRow] = field(default_factory=list, metadata={"items": ParityRow})
    hash_parity: bool = False
    completed: bool = False  # the worker reported run_complete; without it the worker crashed
    exit_code: int | None = None  # the worker's exit status, as the sandbox reported it
    error: dict[str, str] | None = None
    warnings: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    skipped_artifacts: list[dict[str, Any]] = field(default_factory=list)
    bytes_uploaded: int = 0
    data_diff: list[DataDiff] = field(default_factory=list, metadata={"items": DataDiff})
    diff_unavailable: list[DiffNote] = field(default_factory=list, metadata={"items": DiffNote})
    diff_planned: list[DiffNote] = field(default_factory=list, metadata={"items": DiffNote})

    @property
    def rows_read(self) -> int:
        return sum(s.rows_out or 0 for s in self.steps if not s.needs and s.status == "success")

    @property
    def rows_written(self) -> int:
        return sum(w.rows_written or 0 for w in self.writes)

    def step(self, step_id: str) -> StepReport | None:
        return next((s for s in self.steps if s.id == step_id), None)


def new_report(
    manifest: dict, run_id: str, fingerprint: str, target: str, file: str | None, mode: str = "run"
) -> RunReport:
    steps = [StepReport(id=s["id"], component=s["component"], needs=s["needs"]) for s in manifest["steps"]]
    return RunReport(
        run_id=run_id,
        pipeline=manifest["pipeline"]["id"],
        file=file,
        mode=mode,
        manifest_fingerprint=fingerprint,
        target=target,
        steps=steps,
    )


def apply(report: RunReport, event: dict[str, Any]) -> None:
    """Fold one raw worker event into the report (raw: checks must see what the worker measured)."""
    name = event.get("event")
    step = report.step(event.get("step_id", "")) if event.get("step_id") else None
    if apply_data_diff(report, event):
        return
    if name == "step_start" and step:
        step.status = "running"
    elif name == "step_complete" and step:
        step.status = "success"
        step.rows_in, step.rows_out = event.get("rows_in"), event.get("rows_out")
        step.duration_ms, step.fingerprint = event.get("duration_ms"), event.get("fingerprint")
    elif name == "step_planned" and step:
        step.columns, step.duration_ms = event.get("columns"), event.get("duration_ms")
        misfits = [t for t in report.targets if t.step_id == step.id and t.state == "incompatible"]
        step.status = "failed" if misfits else "success"
        if misfits:  # the plan's finding, shown on the step like any failure
            step.error = {
                "error_type": INCOMPATIBLE,
                "message": "the target does not fit the data: " + "; ".join(misfits[0].differences),
                "hint": "Change the table or the step's "
                "output so that their columns match; the plan lists each difference.",
            }
    elif name == "step.note" and step and event.get("note"):
        step.notes.append(str(event["note"]))
    elif name == "plan.target" and step:
        values = {k: event.get(k) for k in ("table", "state", "ddl", "mode", "effect")}
        report.targets.append(
            TargetPlan(
                step_id=step.id,
                schema_=event.get("schema"),
                differences=event.get("differences") or [],
                **values,
            )
        )
    elif name == "step_failed" and step:
        step.status = "failed"
        step.error = {k: str(event.get(k, "")) for k in ("error_type", "message", "hint")}
    elif name == "write.complete" and step:
        report.writes.append(
            WriteReport(
                step_id=step.id,
                table=event.get("table"),
                schema_=event.get("schema"),
                mode=event.get("mode"),
                rows_written=event.get("rows_written"),
                channel=event.get("channel_used"),
                atomic=event.get("atomic"),
                **write_counts(event),
            )
        )
    elif name in ("table.ddl_planned", "table.ddl_executed") and step:
        existing = next((d for d in report.ddl if d.step_id == step.id and d.sql == event.get("sql")), None)
        if existing:
            existing.executed = existing.executed or bool(event.get("executed"))
        else:
            report.ddl.append(
                DdlReport(
                    step_id=step.id,
                    sql=str(event.get("sql", "")),
                    executed=bool(event.get("executed")),
                    channel=event.get("channel"),
                )
            )
    elif name == "run_complete":
        report.completed = True
        report.duration_ms = event.get("duration_ms")
        if event.get("status") == "success":
            report.status = "success"


def check_parity(report: RunReport, host: dict[str, str], verified: dict[str, str | None]) -> None:
    """Compare the host's hashes with what the worker says it received; every host file must match."""
    rows = []
    for path in sorted(set(host) | set(verified)):
        if not (path.endswith(".py") or path.endswith(".json")) or path == "bundle.json":
            continue
        rows.append(
            ParityRow(
                path=path,
                host_sha256=host.get(path),
                sandbox_sha256=verified.get(path),
                match=host.get(path) is not None and host.get(path) == verified.get(path),
            )
        )
    report.parity = rows
    report.hash_parity = bool(rows) and all(r.match for r in rows)


def finish(report: RunReport, cancelled: bool = False) -> None:
    """Steps that never started are `skipped`; the status is success only if every step succeeded."""
    for step in report.steps:
        if step.status in ("pending", "running"):
            step.status = "skipped" if step.status == "pending" else "failed"
    incompatible = any(t.state == "incompatible" for t in report.targets)
    complete = report.hash_parity and all(s.status == "success" for s in report.steps)
    if cancelled:
        report.status = "cancelled"
    elif report.status == "success" and (incompatible or not complete):
        report.status = "failure"


def shown(report: RunReport, redactor: Redactor) -> RunReport:
    """The copy of a finished report that may be printed or written: every string redacted.

    Verdicts are decided on the raw report before this copy is made. Numbers and the enumerated words
    (status, mode, state) stay as they are in the model, which needs them typed; every renderer
    redacts its text again, and `shown_data` masks them when the report is serialised.
    """
    raw = dump(report)
    copy = _load(RunReport, _keep_words(raw, redacted_strings(raw, redactor)))
    for mine, theirs in zip(copy.data_diff, report.data_diff, strict=True):  # fields a dump leaves out
        mine.stats, mine.note = redacted_strings(theirs.stats, redactor), redactor.redact(theirs.note)
    return copy


def redacted_strings(value: Any, redactor: Redactor) -> Any:
    """Every string of a structure of our own (a report) redacted. No field is masked by its name, as
    user config is (`redact_obj`): here a name like a data diff's `key` (its key columns) says nothing
    about secrecy, and the known-value and pattern layers still catch every secret in the text."""
    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, dict):
        return {redacted_strings(k, redactor): redacted_strings(v, redactor) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted_strings(item, redactor) for item in value]
    return value


_WORDS = ("status", "mode", "state")  # typed words: a password "success" must not break the model


def _keep_words(raw: Any, redacted: Any) -> Any:
    if isinstance(raw, dict) and isinstance(redacted, dict) and len(raw) == len(redacted):
        return {
            # the model's own keys stay as they are: a password "rows" must not rename `rows_in`
            old: raw[old] if old in _WORDS else _keep_words(raw[old], redacted[key])
            for old, key in zip(raw, redacted, strict=True)
        }
    if isinstance(raw, list) and isinstance(redacted, list):
        return [_keep_words(a, b) for a, b in zip(raw, redacted, strict=True)]
    return redacted


def shown_data(obj: Any, redactor: Redactor, by_name: bool = True) -> Any:
    """A JSON-like structure as it may be written (`by_name=False` for our own reports, see
    `redacted_strings`): strings redacted, and a number whose digits contain a
    known secret (a password `1000`, a row count 21000) replaced by the mask, so the secret never shows
    and the JSON stays valid (masking the serialised text instead would leave `"rows": ***`)."""
    from osiris_action.redact import MASK

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [walk(item) for item in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return MASK if redactor.redact(str(value)) != str(value) else value
        return value

    return walk(redactor.redact_obj(obj) if by_name else redacted_strings(obj, redactor))
