"""The Diagnostic contract and its text, JSON and SARIF renderings.

Every problem the tool finds is one Diagnostic with an exact position, a stable code and a hint.
Output is sorted so that the same input prints the same bytes on every run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "notice"]
TOOL_NAME = "osiris-action"
DOCS_URL = "https://github.com/osiris/run-pipeline/blob/main/docs/diagnostics.md"


@dataclass(frozen=True, slots=True)
class Span:
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None


@dataclass(frozen=True, slots=True)
class Diagnostic:
    file: str
    span: Span
    severity: Severity
    code: str
    message: str
    hint: str = ""

    @property
    def line(self) -> int:
        return self.span.line

    @property
    def column(self) -> int:
        return self.span.col

    def sort_key(self) -> tuple:
        return (self.file, self.span.line, self.span.col, self.code, self.message)

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.span.line,
            "column": self.span.col,
            "end_line": self.span.end_line,
            "end_column": self.span.end_col,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
        }


def ordered(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(set(diagnostics), key=Diagnostic.sort_key)


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)


def format_text(diagnostics: list[Diagnostic]) -> str:
    lines = []
    for d in ordered(diagnostics):
        lines.append(f"{d.file}:{d.line}:{d.column}: {d.severity} {d.code} {d.message}")
        if d.hint:
            lines.append(f"  hint: {d.hint}")
    return "\n".join(lines) + ("\n" if lines else "")


def format_json(diagnostics: list[Diagnostic]) -> str:
    items = [d.to_dict() for d in ordered(diagnostics)]
    summary = {
        "errors": sum(d["severity"] == "error" for d in items),
        "warnings": sum(d["severity"] == "warning" for d in items),
    }
    return json.dumps({"diagnostics": items, **summary}, indent=2, sort_keys=True) + "\n"


_SARIF_LEVEL = {"error": "error", "warning": "warning", "notice": "note"}


def format_sarif(diagnostics: list[Diagnostic], rules: dict[str, str], version: str) -> str:
    """SARIF 2.1.0, as GitHub code scanning accepts it: every finding, not only the first ten."""
    items = ordered(diagnostics)
    used = sorted({d.code for d in items})
    results = []
    for d in items:
        region = {"startLine": d.line, "startColumn": d.column}
        if d.span.end_line:
            region["endLine"] = d.span.end_line
            region["endColumn"] = d.span.end_col or d.column
        text = d.message + (f"\nHint: {d.hint}" if d.hint else "")
        results.append(
            {
                "ruleId": d.code,
                "ruleIndex": used.index(d.code),
                "level": _SARIF_LEVEL[d.severity],
                "message": {"text": text},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": d.file}, "region": region}}],
            }
        )
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": version,
                        "informationUri": DOCS_URL,
                        "rules": [
                            {
                                "id": code,
                                "shortDescription": {"text": rules.get(code, code)},
                                "helpUri": f"{DOCS_URL}#{code.lower()}",
                            }
                            for code in used
                        ],
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2, sort_keys=True) + "\n"
