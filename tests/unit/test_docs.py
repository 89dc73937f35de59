"""docs/diagnostics.md, osiris_action/codes.py and the source agree, and every documented example is true.

Each code's section holds a complete pipeline and the exact line the tool prints for it; the test runs
the example through the same path as `osiris-action compile` and requires that line in the output, so
the reference cannot drift from the behaviour.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from osiris_action import components
from osiris_action.codes import CODES
from osiris_action.diagnostics import format_text
from osiris_action.pipelines import Checker

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "diagnostics.md").read_text()
HEADING = re.compile(r"^### ((?:OML|CON)\d{3}) (.+)$", re.M)
BLOCK = re.compile(r"^```(\w+)(?: (\S+))?\n(.*?)^```$", re.M | re.S)
META = re.compile(r"^\*\*Severity:\*\* (.+?) · \*\*Osiris:\*\* (.+)$", re.M)


def sections() -> dict[str, tuple[str, str]]:
    """code → (title, section text)."""
    found = list(HEADING.finditer(DOC))
    return {
        m[1]: (m[2], DOC[m.end() : found[i + 1].start() if i + 1 < len(found) else len(DOC)])
        for i, m in enumerate(found)
    }


def blocks(text: str) -> dict[str, str]:
    return {(name or lang): body for lang, name, body in BLOCK.findall(text)}


SHARED_CONNECTIONS = blocks(DOC[: DOC.index("\n### ")])["osiris_connections.yaml"]


def emitted_codes() -> set[str]:
    """Every code the source mentions, outside the table itself."""
    found = set()
    for path in (ROOT / "osiris_action").rglob("*.py"):
        if path.name != "codes.py":
            found |= set(re.findall(r"\b(?:OML|CON)\d{3}\b", path.read_text()))
    return found


def run_example(folder: Path, section: str) -> str:
    files = blocks(section)
    (folder / "pipeline.yaml").write_text(files["pipeline.yaml"])
    (folder / "osiris_connections.yaml").write_text(files.get("osiris_connections.yaml", SHARED_CONNECTIONS))
    return format_text(Checker().compile(Path("pipeline.yaml")).diagnostics)


def test_every_code_is_in_the_table_the_docs_and_the_source():
    documented = sections()
    assert list(documented) == list(CODES), "the reference lists the codes in the table's order"
    assert emitted_codes() == set(CODES)


@pytest.mark.parametrize("code", sorted(CODES))
def test_the_section_matches_the_table(code):
    title, text = sections()[code]
    entry = CODES[code]
    assert title == entry.title
    severity, osiris = META.search(text).groups()
    assert severity.startswith(entry.severity)
    assert osiris.startswith(f"`{entry.osiris}`") if entry.osiris else osiris.startswith("none")
    assert "**Fix:**" in text


@pytest.mark.parametrize("code", sorted(CODES))
def test_the_example_prints_the_documented_line(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OSIRIS_HOME", raising=False)
    if code == "OML047":  # no shipped spec uses the `warning` override policy; the docs say so
        monkeypatch.setitem(components.get("mysql.extractor").spec["connection"], "host", "warning")
    _, text = sections()[code]
    expected = blocks(text)["text"].splitlines()
    assert expected and all(f" {code} " in line for line in expected)
    output = run_example(tmp_path, text).splitlines()
    for line in expected:
        assert line in output, "\n".join(output)
