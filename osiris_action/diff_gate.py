"""`fail-on-diff`: thresholds on the data diff that fail the step, and the `data-diff` output.

A gate is `<count> <op> <number>[%]`, several separated by commas or lines, e.g. `removed > 0, changed > 5%`.
Counts: added, removed, changed, unchanged, rows_base, rows_new. A percentage is of the base table's rows
(of the new rows when the base is empty). Anything else is refused when the inputs are read, never guessed.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from osiris_action.github import command
from osiris_action.render import short_writes
from osiris_action.report import DataDiff, RunReport, dump

METRICS = ("added", "removed", "changed", "unchanged", "rows_base", "rows_new")
OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}
_GATE = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|==|>|<)\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")


@dataclass(frozen=True)
class Gate:
    metric: str
    op: str
    value: float
    percent: bool

    def __str__(self) -> str:
        number = f"{self.value:g}"
        return f"{self.metric} {self.op} {number}{'%' if self.percent else ''}"

    def measure(self, diff: DataDiff) -> float:
        count = getattr(diff, self.metric)
        if not self.percent:
            return count
        whole = diff.rows_base or diff.rows_new
        return 100.0 * count / whole if whole else 0.0

    def failed(self, diff: DataDiff) -> bool:
        return OPERATORS[self.op](self.measure(diff), self.value)


def parse(text: str) -> list[Gate]:
    """Every gate of the input; ValueError naming the first part that is not one."""
    gates = []
    for part in re.split(r"[,\n]", text or ""):
        if not part.strip():
            continue
        match = _GATE.match(part)
        if not match or match.group(1) not in METRICS:
            raise ValueError(
                f"Input 'fail-on-diff' has {part.strip()!r}, which is not `<count> <op> <number>[%]` "
                f"with a count among {', '.join(METRICS)} and an operator among {' '.join(OPERATORS)}"
            )
        metric, op, value, percent = match.groups()
        gates.append(Gate(metric, op, float(value), bool(percent)))
    return gates


def check(
    reports: list[RunReport], gates: list[Gate], line_of: Callable[[RunReport, str], int | None]
) -> None:
    """Annotate each write that wrote fewer rows than it received (a warning) and each diff that breaks
    a gate (an error on the writer step's line); a broken gate fails its run, so the step fails."""
    lines = []
    for report in reports:
        for write, warning in zip(
            [w for w in report.writes if w.rows_short], short_writes(report), strict=True
        ):
            lines.append(
                command.annotation(
                    "warning",
                    warning,
                    file=report.file,
                    line=line_of(report, write.step_id),
                    title=f"Fewer rows written by step {write.step_id}",
                )
            )
        for diff in report.data_diff:
            broken = [g for g in gates if g.failed(diff)]
            if not broken:
                continue
            message = (
                f"the data diff of {diff.table} against {diff.base_table} breaks fail-on-diff: "
                + "; ".join(f"{g} (measured {g.measure(diff):g}{'%' if g.percent else ''})" for g in broken)
            )
            lines.append(
                command.annotation(
                    "error",
                    message,
                    file=report.file,
                    line=line_of(report, diff.step),
                    title=f"Data diff gate for step {diff.step}",
                )
            )
            report.status = "failure"
            report.error = report.error or {
                "message": message,
                "hint": "Review the data diff below; change the pipeline, or the fail-on-diff input.",
            }
    command.emit(lines)


def output(reports: list[RunReport]) -> str:
    """The `data-diff` output: report.json's data_diff of every run, without the sample."""
    return json.dumps([dump(d, exclude={"sample"}) for r in reports for d in r.data_diff], sort_keys=True)
