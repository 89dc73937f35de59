"""The loader: positions for every key and value, and one clear diagnostic for any bad input, never a crash.

Hostile and broken files go through `Checker.check`, the path the CLI takes, so these tests also prove
that nothing after the loader trips over what the loader lets through.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from osiris_action.diagnostics import Span
from osiris_action.oml import load
from osiris_action.oml.load import load_file, load_text
from osiris_action.pipelines import Checker

GOOD = 'oml_version: "0.1.0"\nname: x\nsteps:\n  - id: a\n    component: duckdb.processor\n'


def check_bytes(tmp_path: Path, data: bytes, name: str = "p.yaml"):
    path = tmp_path / name
    path.write_bytes(data)
    return Checker().check(path).diagnostics


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OSIRIS_HOME", raising=False)


BILLION_LAUGHS = b"""\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

BAD_INPUT = {
    # name: (bytes, code, line, column, words in the message)
    "empty": (b"", "OML004", 1, 1, "empty"),
    "only-white-space": (b"  \n\n\t\n", "OML004", 1, 1, "empty"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "OML004", 1, 1, "binary"),
    "not-utf8": (b'oml_version: "0.1.0"\nname: caf\xe9\n', "OML004", 2, 10, "UTF-8"),
    "billion-laughs": (BILLION_LAUGHS, "OML004", 6, 11, "expands"),
    "deep-flow-nesting": (b"[" * 200_000, "OML004", 1, 65, "deeper"),
    "deep-balanced-nesting": (b"[" * 200_000 + b"]" * 200_000, "OML004", 1, 65, "deeper"),
    "deep-mapping-nesting": (b"{a: " * 100_000, "OML004", 1, 257, "deeper"),
    "deep-block-nesting": (b"- " * 100_000 + b"x", "OML004", 1, 129, "deeper"),
    "pipeline-is-a-list": (b"- id: a\n- id: b\n", "OML010", 1, 1, "got list"),
    "pipeline-is-a-scalar": (b"just text\n", "OML010", 1, 1, "got string"),
    "pipeline-is-null": (b"# only a comment\n", "OML010", 1, 1, "got null"),
    "pipeline-is-a-number": (b"42\n", "OML010", 1, 1, "got integer"),
    "syntax-error": (b"a: [1, 2\nb: 3\n", "OML001", 2, 2, "YAML syntax error"),
    "tab-indentation": (b"a:\n\tb: 1\n", "OML001", 2, 1, "YAML syntax error"),
    "bad-timestamp-tag": (b"a: !!timestamp 'soon'\n", "OML001", 1, 4, "!!timestamp"),
    "bad-int-tag": (b"a: !!int abc\n", "OML001", 1, 4, "!!int"),
    "bad-bool-tag": (b"a: !!bool maybe\n", "OML001", 1, 4, "!!bool"),
    "bad-binary-tag": (b"a: !!binary 'a'\n", "OML001", 1, 4, "!!binary"),
    "two-documents": (b"a: 1\n---\nb: 2\n", "OML003", 2, 1, "more than one YAML document"),
    "unknown-alias": (b"a: *nope\n", "OML003", 1, 4, "unknown alias"),
    "list-as-key": (b"? [a, b]\n: 1\n", "OML003", 1, 3, "plain value"),
    "control-character": (b"a: 1\nb: x\x07\n", "OML001", 2, 5, "U+0007"),
    "control-character-after-utf8": ("a: 1\nb: \u00e9\u00e9\x07\n".encode(), "OML001", 2, 6, "U+0007"),
}


# libyaml 0.2.6 (PyYAML >= 6.0.3 wheels) refuses flow nesting beyond 1,000 levels while scanning ahead,
# before our limit of 64 sees the 65th level: same code and message, libyaml's column.
LIBYAML_DEPTH_COLUMN = {"deep-flow-nesting": 1001, "deep-balanced-nesting": 1001}


@pytest.mark.parametrize("name", sorted(BAD_INPUT))
def test_bad_input_gives_one_clear_diagnostic(tmp_path, name):
    data, code, line, column, words = BAD_INPUT[name]
    diags = check_bytes(tmp_path, data)
    columns = {column, LIBYAML_DEPTH_COLUMN.get(name, column)}
    assert [(d.code, d.line) for d in diags] == [(code, line)] and diags[0].column in columns, diags
    assert words in diags[0].message and diags[0].hint and diags[0].severity == "error"


def test_a_50_mb_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.yaml"
    with path.open("wb") as handle:
        handle.write(b'oml_version: "0.1.0"\nsteps:\n# ')
        handle.truncate(50 * 1024 * 1024)
    diags = Checker().check(path).diagnostics
    assert [(d.code, d.line, d.column) for d in diags] == [("OML004", 1, 1)]
    assert "52.4 MB > 10 MB" in diags[0].message


def test_missing_file_and_folder_are_unreadable(tmp_path):
    for path in (tmp_path / "nope.yaml", tmp_path):
        diags = Checker().check(path).diagnostics
        assert [(d.code, d.line, d.column) for d in diags] == [("OML004", 1, 1)]
        assert "cannot read file" in diags[0].message


def test_many_small_values_stay_under_the_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(load, "MAX_VALUES", 1000)
    diags = check_bytes(tmp_path, b"metadata:\n" + b"".join(b"  k%d: v\n" % i for i in range(600)))
    assert [d.code for d in diags] == ["OML004"]
    assert check_bytes(tmp_path, GOOD.encode()) != [] and "OML004" not in {
        d.code for d in check_bytes(tmp_path, GOOD.encode())
    }


@pytest.mark.parametrize(
    ("encoded", "label"),
    [
        (GOOD.encode("utf-8-sig"), "utf-8 with BOM"),
        (GOOD.encode("utf-16"), "utf-16 with BOM"),
        (GOOD.replace("\n", "\r\n").encode(), "CRLF line ends"),
    ],
)
def test_encodings_and_line_ends_keep_positions(tmp_path, encoded, label):
    path = tmp_path / "p.yaml"
    path.write_bytes(encoded)
    doc, diags = load_file(path)
    assert diags == [], label
    assert doc.data["steps"][0]["component"] == "duckdb.processor"
    assert doc.values[("steps", 0, "component")] == Span(5, 16, 5, 32)
    assert doc.lines[4].strip() == "component: duckdb.processor"


def test_every_key_and_value_has_its_span():
    text = 'a: 1\nb:\n  - x\n  - {c: "q", d: [1, 2]}\ne: |\n  line\n'
    doc, diags = load_text(text, "f.yaml")
    assert diags == []
    assert doc.keys[("a",)] == Span(1, 1, 1, 2)
    assert doc.values[("a",)] == Span(1, 4, 1, 5)
    assert doc.values[("b", 0)] == Span(3, 5, 3, 6)
    assert doc.keys[("b", 1, "c")] == Span(4, 6, 4, 7)
    assert doc.values[("b", 1, "c")] == Span(4, 9, 4, 12)
    assert doc.values[("b", 1, "d", 1)] == Span(4, 21, 4, 22)
    assert doc.values[("e",)].line == 5 and doc.values[("e",)].col == 4
    # a path that is not there falls back to the nearest enclosing node
    assert doc.span(("b", 1, "missing")) == doc.values[("b", 1)]


def test_duplicate_keys_are_all_reported_and_the_last_value_wins():
    doc, diags = load_text("a: 1\nb: 2\na: 3\nm: {x: 1, x: 2}\n", "f.yaml")
    assert [(d.code, d.line, d.column) for d in diags] == [("OML002", 3, 1), ("OML002", 4, 11)]
    assert "first defined on line 1" in diags[0].message
    assert doc.data == {"a": 3, "b": 2, "m": {"x": 2}}


def test_values_are_what_safe_load_gives_with_dates_as_text():
    text = "a: 2024-01-02\nb: 1e3\nc: 0x1f\nd: ~\ne: yes\nf: !!binary aGk=\ng: !!str 12\nh: !custom v\n"
    doc, diags = load_text(text, "f.yaml")
    assert diags == []
    assert doc.data == {"a": "2024-01-02", "b": "1e3", "c": 31, "d": None, "e": True, "f": "hi", "g": "12",
                        "h": "v"}  # fmt: skip


def test_anchors_aliases_and_merge_keys():
    text = "base: &b {x: 1, y: 2}\nk: &k key\nuse:\n  <<: *b\n  y: 3\n*k : v\nagain: *b\n"
    doc, diags = load_text(text, "f.yaml")
    assert diags == []
    assert doc.data["use"] == {"x": 1, "y": 3}
    assert doc.data["key"] == "v"
    assert doc.data["again"] == {"x": 1, "y": 2}


def test_explicit_container_tags_do_not_leak_generators():
    doc, diags = load_text("a: !!omap x\nb: !!set {p, q}\nc: !!map y\n", "f.yaml")
    assert diags == []
    assert doc.data == {"a": "x", "b": {"p": None, "q": None}, "c": "y"}


def test_aliasing_a_long_string_counts_its_length(tmp_path):
    """A 1 MB string aliased 5,000 times is a 1 MB file that would expand to a 5 GB manifest."""
    data = b'oml_version: "0.1.0"\nname: x\nsteps: []\nmetadata:\n  s: &s "' + b"x" * 1_000_000 + b'"\n'
    data += b"  copies: [" + b", ".join([b"*s"] * 5_000) + b"]\n"
    diags = check_bytes(tmp_path, data)
    assert [(d.code, d.line) for d in diags] == [("OML004", 6)] and "expands" in diags[0].message


@pytest.mark.parametrize(
    ("text", "opened", "what"),
    [
        (
            'name: x\nsteps:\n  - id: "abc\n    component: y\n',
            (3, 9),
            "a quoted scalar opened at line 3, column 9",
        ),
        ("name: 'it''s\nsteps: []\n", (1, 7), "a quoted scalar opened at line 1, column 7"),
        ("name: x\nsteps: [a, b\n", (2, 8), "a flow sequence opened at line 2, column 8"),
    ],
)
def test_something_left_open_points_where_it_opened_and_names_the_end(text, opened, what):
    _doc, [diag] = load_text(text, "p.yaml")
    assert (diag.code, diag.line, diag.column) == ("OML001", *opened)
    lines = text.count("\n") + 1
    assert what in diag.message and f"the file ends at line {lines}, column 1" in diag.message


def test_an_error_before_the_end_keeps_its_own_position():
    _doc, [diag] = load_text("name: x\nsteps: [a, b\nother: 1\n", "p.yaml")
    assert (diag.line, diag.column) == (3, 6) and "never closed" not in diag.message
