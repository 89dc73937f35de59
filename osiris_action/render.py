"""How a run report reads: one line per step on a terminal, tables and a flowchart in Markdown.

The same Markdown is the CLI's summary.md, the job step summary and the PR comment, so a user sees
locally exactly what the pull request will show.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from osiris_action.diagnostics import Diagnostic
from osiris_action.github.annotations import Finding
from osiris_action.github.summary import Raw, Summary, escape_text, inline_code, mermaid_label
from osiris_action.report import RunReport

ICON = {
    "success": "✅",
    "failed": "❌",
    "skipped": "⏭️",
    "pending": "⏸️",
    "running": "⏳",
    "failure": "❌",
    "cancelled": "🛑",
}


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value / 1000:.2f} s"


def _n(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def text(report: RunReport) -> str:
    """The terminal report: status, steps, writes, parity, and the error with its hint."""
    lines = [
        f"{report.pipeline}: {report.status.upper()} in {_ms(report.duration_ms)} "
        f"(target {report.target}, run {report.run_id})"
    ]
    for s in report.steps:
        lines.append(
            f"  {s.status:<8} {s.id:<28} {s.component:<26} rows {_n(s.rows_in):>10} → "
            f"{_n(s.rows_out):<10} {_ms(s.duration_ms)}"
        )
        lines += [f"{' ' * 11}note: {note}" for note in s.notes]
        lines += _error_lines(s.error, " " * 11)
    for t in report.targets:
        lines.append(f"  plan: {t.where} is {t.state}; {t.effect or ''}")
        lines += [f"        {difference}" for difference in t.differences]
        lines += [f"        {sql}" for sql in (t.ddl or "").rstrip().splitlines()]
    for w in report.writes:
        atomic = "" if w.atomic is not False else ", not atomic"
        count = f"{written(w)} rows" if w.rows_written_measured else "rows (how many: not measured)"
        lines.append(f"  wrote {count} to {w.where} ({w.mode}, {w.channel}{atomic})")
        if w.channel == "file":  # the file was written in the sandbox; say where its copy is
            copy = next((a for a in report.artifacts if a.endswith("/" + str(w.table))), None)
            lines.append(
                f"        copied back to {copy} in the run folder"
                if copy
                else "        (not copied back: see the skipped artifacts)"
            )
    for d in report.ddl:
        lines.append(
            f"  DDL {'executed' if d.executed else 'planned'} for {d.step_id}: "
            f"{d.sql.splitlines()[0] if d.sql else ''} ..."
        )
    lines += [f"  warning: {warning}" for warning in short_writes(report)]
    for d in report.data_diff:
        lines.append(
            f"  diff {d.table} against {d.base_table}: +{d.added:,} added, -{d.removed:,} removed, "
            f"{d.changed:,} changed, {d.unchanged:,} unchanged"
        )
    lines += [f"  no data diff for {n.step}: {n.reason}" for n in report.diff_unavailable]
    lines += [f"  data diff planned for {n.step}: {n.reason}" for n in report.diff_planned]
    matched = sum(r.match for r in report.parity)
    if not any(r.sandbox_sha256 for r in report.parity):  # the worker never reported a file
        lines.append("  hash parity: not checked (the worker reported no file: it did not start, or crashed)")
    else:
        lines.append(
            f"  hash parity: {'OK' if report.hash_parity else 'FAILED'} "
            f"({matched}/{len(report.parity)} files match)"
        )
    lines += _error_lines(report.error, "  ", "error: ")
    lines += [f"  warning: {warning}" for warning in report.warnings]
    lines += [f"  left in the sandbox: {a['path']} {_left_behind(a)}" for a in report.skipped_artifacts]
    return "\n".join(lines) + "\n"


def _error_lines(error: dict | None, indent: str, label: str = "") -> list[str]:
    if not error:
        return []
    hint = [f"{indent}hint: {error['hint']}"] if error.get("hint") else []
    return [f"{indent}{label}{error.get('message')}", *hint]


def flowchart(report: RunReport) -> str:
    """Mermaid source: one node per step, each edge labelled with the rows that flowed along it."""
    ids = {s.id: f"s{i}" for i, s in enumerate(report.steps)}
    lines = ["flowchart LR"]
    for s in report.steps:
        label = mermaid_label(s.id + "\n" + s.component)
        lines.append(f"  {ids[s.id]}[{label}]")
    for s in report.steps:
        for need in s.needs:
            upstream = report.step(need)
            rows = upstream.rows_out if upstream else None
            edge = f"|{rows:,} rows|" if rows is not None else ""
            lines.append(f"  {ids[need]} -->{edge} {ids[s.id]}")
    for s in report.steps:
        colour = {"success": "#d4edda", "failed": "#f8d7da", "skipped": "#eeeeee"}.get(s.status)
        if colour:
            lines.append(f"  style {ids[s.id]} fill:{colour}")
    return "\n".join(lines)


def line(*parts: object) -> Raw:
    """One line of Markdown from plain text and Raw fragments: only the plain parts are escaped."""
    return Raw("".join(escape_text(p) for p in parts))


def add_report(summary: Summary, report: RunReport, show_values: bool = True) -> Summary:
    """One run; `show_values` False keeps row values of the data diff's sample out (public places)."""
    title = f"{ICON.get(report.status, '')} {report.pipeline}"
    summary.heading(title, 3)
    where = [" · ", inline_code(report.file)] if report.file else []
    summary.paragraph(
        line(
            f"{report.status} · target {report.target} · {_ms(report.duration_ms)} · manifest ",
            inline_code(report.manifest_fingerprint[:19] + "…"),
            *where,
        )
    )
    summary.mermaid(flowchart(report))
    summary.table(
        ["step", "component", "status", "rows in", "rows out", "duration"],
        [
            [
                s.id,
                s.component,
                f"{ICON.get(s.status, '')} {s.status}",
                _n(s.rows_in),
                _n(s.rows_out),
                _ms(s.duration_ms),
            ]
            for s in report.steps
        ],
    )
    for s in report.steps:
        for note in s.notes:
            summary.paragraph(line(inline_code(s.id), f": {note}"))
        if s.error:
            summary.paragraph(line(Raw("<b>"), s.id, " failed:", Raw("</b> "), s.error["message"]))
            if s.error.get("hint"):
                summary.paragraph(f"Hint: {s.error['hint']}")
    if report.error:
        summary.paragraph(line(Raw("<b>Run error:</b> "), report.error.get("message", "")))
        if report.error.get("hint"):
            summary.paragraph(f"Hint: {report.error['hint']}")
    if report.warnings:
        summary.list([line("⚠️ ", warning) for warning in report.warnings])
    add_plan(summary, report)
    if report.writes:
        summary.table(
            ["table", "mode", "rows written", "channel", "DDL"],
            [
                [
                    w.where,
                    w.mode,
                    written(w),
                    w.channel + ("" if w.atomic is not False else " (not atomic)") if w.channel else "—",
                    _ddl_state(report, w.step_id),
                ]
                for w in report.writes
            ],
        )
    add_data_diff(summary, report, show_values)
    for d in report.ddl:
        summary.paragraph(
            line(f"DDL {'executed' if d.executed else 'planned'} by ", inline_code(d.step_id), ":")
        )
        summary.code_block(d.sql, "sql")
    if report.parity:
        ok = sum(r.match for r in report.parity)
        inner = Summary().table(
            ["file", "host sha256", "sandbox sha256", "match"],
            [
                [
                    r.path,
                    (r.host_sha256 or "—")[:16],
                    (r.sandbox_sha256 or "—")[:16],
                    "✅" if r.match else "❌",
                ]
                for r in report.parity
            ],
        )
        if not any(r.sandbox_sha256 for r in report.parity):  # a crash before any check: no verdict
            summary.details("Hash parity: not checked (the worker reported no file)", inner)
        else:
            summary.details(
                f"Hash parity: {ok}/{len(report.parity)} files match", inner, open=not report.hash_parity
            )
    if report.artifacts or report.skipped_artifacts:
        items = [inline_code(a) for a in report.artifacts]
        items += [line(inline_code(a["path"]), " ", _left_behind(a)) for a in report.skipped_artifacts]
        left = f", {len(report.skipped_artifacts)} left in the sandbox" if report.skipped_artifacts else ""
        summary.details(f"Artifacts ({len(report.artifacts)}{left})", Summary().list(items))
    return summary


def _left_behind(artifact: dict) -> str:
    """An output the download policy left in the sandbox: its size and the setting that brings it back."""
    size = f"({artifact['bytes']:,} bytes) " if isinstance(artifact.get("bytes"), int) else ""
    setting = f"; set {artifact['setting']} to bring it back" if artifact.get("setting") else ""
    return f"{size}not downloaded: {artifact['reason']}{setting}"


def add_plan(summary: Summary, report: RunReport) -> None:
    """Plan mode: the columns each step would produce and what each write would do to its target."""
    if report.mode != "plan":
        return
    summary.heading("Plan", 4)
    summary.table(
        ["step", "columns it would produce"],
        [[s.id, ", ".join(f"{c['name']} {c['type']}" for c in s.columns or []) or "—"] for s in report.steps],
    )
    if report.targets:
        icon = {"missing": "🆕", "compatible": "✅", "incompatible": "❌"}
        summary.table(
            ["target", "state", "what the write would do", "differences"],
            [
                [
                    t.where,
                    f"{icon[t.state]} {t.state}",
                    t.effect or "—",
                    "; ".join(t.differences) or "—",
                ]
                for t in report.targets
            ],
        )
    for t in report.targets:
        if t.ddl:
            summary.paragraph(line("It would create ", inline_code(t.table or ""), ":"))
            summary.code_block(t.ddl, "sql")


def _ddl_state(report: RunReport, step_id: str) -> str:
    states = [("executed" if d.executed else "planned") for d in report.ddl if d.step_id == step_id]
    return ", ".join(states) or "—"


def markdown(reports: Sequence[RunReport], title: str = "Osiris pipeline run") -> str:
    summary = Summary()
    summary.heading(title, 2)
    for report in reports:
        add_report(summary, report)
    return summary.render()


def findings(diagnostics: Iterable[Diagnostic]) -> list[Finding]:
    """Diagnostics as annotations: the code in the title, the hint after the message."""
    return [
        Finding(
            level=d.severity,
            message=d.message + (f"\nHint: {d.hint}" if d.hint else ""),
            file=d.file,
            line=d.line,
            col=d.column,
            end_line=d.span.end_line,
            end_col=d.span.end_col,
            title=f"{d.code}",
        )
        for d in diagnostics
    ]


# --- what the writes did: counts and the data diff ------------------------------------------------------


def written(w) -> str:
    """The rows a write wrote, as the target measured them ("not measured" when it did not say)."""
    if w.rows_written is None or not w.rows_written_measured:
        return "not measured"
    if w.inserted is None or (not w.updated and not w.unchanged):
        return _n(w.rows_written)
    counts = f"{_n(w.inserted)} inserted, {_n(w.updated)} updated, {_n(w.unchanged)} unchanged"
    return f"{_n(w.rows_written)} ({counts})"


def short_writes(report: RunReport) -> list[str]:
    """One warning per write that wrote fewer rows than it received, with both numbers."""
    return [
        f"{w.step_id} wrote fewer rows than it received: {w.rows_in:,} in, "
        f"{w.rows_in - w.rows_short:,} written or unchanged ({w.rows_short:,} kept out by the target: a "
        "trigger, an ignore-duplicates upsert or a row-level security policy)"
        for w in report.writes
        if w.rows_short
    ]


def add_data_diff(summary: Summary, report: RunReport, show_values: bool = True) -> Summary:
    """The "Data diff" section: per written table the counts first, then the columns by how many rows
    changed, schema changes, and the sample as a before/after table."""
    for warning in short_writes(report):
        summary.paragraph(line("⚠️ ", warning))
    if not (report.data_diff or report.diff_unavailable or report.diff_planned):
        return summary
    summary.heading("Data diff", 4)
    for planned in report.diff_planned:
        summary.paragraph(line(inline_code(planned.step), f": {planned.reason}"))
    for d in report.data_diff:
        key = inline_code(", ".join(d.key)) if d.key else "whole rows (no key)"
        summary.paragraph(
            line(
                Raw("<b>"),
                inline_code(d.table),
                Raw("</b>"),
                " against ",
                inline_code(d.base_table),
                f" · step {d.step} · key ",
                key,
            )
        )
        if d.note:
            summary.paragraph(line(Raw("<i>"), d.note, Raw("</i>")))
        summary.table(
            ["rows before", "rows after", "added", "removed", "changed", "unchanged"],
            [[_n(d.rows_base), _n(d.rows_new), _n(d.added), _n(d.removed), _n(d.changed), _n(d.unchanged)]],
        )
        columns = sorted(d.stats or {c: {} for c in d.columns}, key=lambda c: (-d.columns.get(c, 0), c))
        if columns:
            summary.table(
                ["column", "rows changed", "nulls", "sum", "min", "max"],
                [
                    [c, _n(d.columns.get(c)) if c in d.columns else "—", *_stat_cells(d.stats.get(c, {}))]
                    for c in columns
                ],
            )
        if d.schema_changes:
            summary.list([_schema_change(c) for c in d.schema_changes])
        if d.sample:
            summary.details(
                f"Sample of changed, added and removed rows ({len(d.sample)})",
                sample_table(d.sample, d.key, show_values),
            )
    for note in report.diff_unavailable:
        summary.paragraph(line(inline_code(note.step), ": no data diff: ", note.reason))
    return summary


def _stat_cells(stat: dict) -> list[str]:
    def arrow(pair) -> str:
        if not pair:
            return "—"
        before, after = ("—" if v is None else f"{v:,}" if isinstance(v, int) else str(v) for v in pair)
        return before if before == after else f"{before} → {after}"

    return [arrow(stat.get(name)) for name in ("nulls", "sum", "min", "max")]


def _schema_change(change: dict) -> str:
    if change.get("change") == "retyped":
        return f"column {change['column']} retyped: {change.get('from')} → {change.get('to')}"
    return f"column {change['column']} {change.get('change')} ({change.get('type')})"


SAMPLE_COLUMNS = 12


def sample_table(sample: list[dict], key: list[str], show_values: bool = True) -> Summary:
    """The sample as a before/after table: one row per sampled row, a changed cell as before → after in
    bold. Without values (a public comment), only which rows and which columns changed."""
    inner = Summary()
    if not show_values:
        inner.table(
            ["change", "columns changed"],
            [[s["kind"], ", ".join(s.get("changed") or []) or "—"] for s in sample],
        )
        return inner
    names = list(dict.fromkeys(n for s in sample for n in (s.get("after") or s.get("before") or {})))
    changed = {n for s in sample for n in s.get("changed") or []}
    # a wide table shows the columns that changed first, and at most SAMPLE_COLUMNS of them
    values = sorted((n for n in names if n not in key), key=lambda n: n not in changed)[:SAMPLE_COLUMNS]
    values = [n for n in names if n in values]
    rows = []
    for s in sample:
        before, after = s.get("before") or {}, s.get("after") or {}
        cells = []
        for n in values:
            if s["kind"] == "changed" and n in (s.get("changed") or []):
                cells.append(
                    Raw(f"<b>{escape_text(_v(before.get(n)))} → {escape_text(_v(after.get(n)))}</b>")
                )
            else:
                cells.append(_v((after or before).get(n)))
        copies = f" ×{s['copies']}" if s.get("copies", 1) > 1 else ""
        rows.append([s["kind"] + copies, *[_v((after or before).get(k)) for k in key], *cells])
    inner.table(["change", *key, *values], rows)
    hidden = len(names) - len(key) - len(values)
    if hidden > 0:
        inner.paragraph(
            f"{hidden} more column{'s' if hidden != 1 else ''} not shown; the sample is in report.json."
        )
    return inner


def _v(value) -> str:
    return "NULL" if value is None else str(value)
