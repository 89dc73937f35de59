"""Annotations within the runner's limits, most important first, with a visible overflow count.

The runner keeps only the first 10 issues of each type per step (`_maxCountPerIssueType = 10`) and
about 50 per job; the rest still print in the log but show nowhere else, and nothing tells the
reader that some were dropped. So we choose which ones fill the slots (errors, then warnings, then
notices; optionally files changed in the pull request first) and spend the last notice slot on one
notice that says how many more there are and where to find them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from .command import LEVELS, Write, annotation, emit, format_command

PER_TYPE_LIMIT = 10
JOB_LIMIT = 50
_RANK = {level: rank for rank, level in enumerate(LEVELS)}


@dataclass(frozen=True)
class Finding:
    """One problem to annotate; positions are 1-based, as the runner expects."""

    level: str
    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    end_line: int | None = None
    end_col: int | None = None
    title: str | None = None

    def __post_init__(self) -> None:
        if self.level not in _RANK:
            raise ValueError(f"finding level must be one of {', '.join(LEVELS)}, got {self.level!r}")

    def command(self) -> str:
        return annotation(
            self.level, self.message, self.file, self.line, self.end_line, self.col, self.end_col, self.title
        )


class Annotator:
    """Select, order and print annotations; `emit` returns the exact lines it wrote.

    `max_total` bounds the whole step (lower it when other steps of the job annotate too);
    `prefer_files` (e.g. the files changed in the pull request) go first within each level.
    """

    def __init__(
        self,
        write: Write = None,
        *,
        per_type: int = PER_TYPE_LIMIT,
        max_total: int = JOB_LIMIT,
        prefer_files: Collection[str] = (),
        overflow_hint: str = "the job summary and the SARIF artifact",
    ) -> None:
        if per_type < 1 or max_total < 1:
            raise ValueError("per_type and max_total must be at least 1")
        self._write = write
        self.per_type = per_type
        self.max_total = max_total
        self.prefer_files = frozenset(prefer_files)
        self.overflow_hint = overflow_hint

    def order(self, findings: Iterable[Finding]) -> list[Finding]:
        """Errors, warnings, notices; notes about the whole step, then preferred files first; then file,
        line, column (stable)."""
        return sorted(
            findings,
            key=lambda f: (
                _RANK[f.level],
                f.file is not None,  # a note about the whole step (no file) before per-file findings
                (f.file or "") not in self.prefer_files,
                f.file or "",
                f.line or 0,
                f.col or 0,
            ),
        )

    def select(self, findings: Iterable[Finding]) -> tuple[list[Finding], list[Finding]]:
        """Split into (shown, hidden), leaving room for the overflow notice when anything is hidden."""
        shown: list[Finding] = []
        hidden: list[Finding] = []
        counts = dict.fromkeys(LEVELS, 0)
        for finding in self.order(findings):
            if counts[finding.level] < self.per_type and len(shown) < self.max_total:
                counts[finding.level] += 1
                shown.append(finding)
            else:
                hidden.append(finding)
        if hidden and (counts["notice"] == self.per_type or len(shown) == self.max_total):
            # The overflow notice needs a notice slot and a total slot: give up the last one shown,
            # which is the least important of its kind.
            kind = "notice" if counts["notice"] == self.per_type else shown[-1].level
            victim = next(f for f in reversed(shown) if f.level == kind)
            shown.remove(victim)
            hidden.insert(0, victim)
            hidden = self.order(hidden)
        return shown, hidden

    def overflow_notice(self, hidden: list[Finding]) -> str:
        counts = [(sum(f.level == level for f in hidden), level) for level in LEVELS]
        parts = ", ".join(f"{n} {level}{'s' if n != 1 else ''}" for n, level in counts if n)
        total = len(hidden)
        message = (
            f"{total} more finding{'s' if total != 1 else ''} ({parts}) not shown as annotations: "
            f"GitHub keeps {self.per_type} per type per step. All findings are in {self.overflow_hint}."
        )
        return format_command("notice", message, title="More findings")

    def lines(self, findings: Iterable[Finding]) -> list[str]:
        shown, hidden = self.select(findings)
        lines = [f.command() for f in shown]
        if hidden:
            lines.append(self.overflow_notice(hidden))
        return lines

    def emit(self, findings: Iterable[Finding]) -> list[str]:
        lines = self.lines(findings)
        emit(lines, self._write)
        return lines
