"""Exact bytes for everything osiris_action.github writes, each read back with runner_parse.

runner_parse models the runner independently of our writers, so a round trip here means the runner
would read what we meant. The REST client runs against a local fake GitHub on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import random
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osiris_action.github import command as cmd
from osiris_action.github.annotations import Annotator, Finding
from osiris_action.github.event import event_from_payload, load_event
from osiris_action.github.file_command import append_entries, format_entry, set_output, set_outputs
from osiris_action.github.inputs import InputError, get_bool, get_choice, get_input, get_multiline
from osiris_action.github.rest import (
    COMMENT_BUDGET,
    Forbidden,
    GitHubClient,
    GitHubError,
    RateLimited,
    fit_comment,
    sticky_marker,
)
from osiris_action.github.summary import (
    Raw,
    Summary,
    escape_cell,
    escape_text,
    inline_code,
    link_to,
    mermaid_label,
)

from .runner_parse import FileCommandError, parse_file_command, parse_stdout, parse_v2, read_file_command

# --- workflow commands --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "data", "prop"),
    [
        ("plain", "plain", "plain"),
        ("100%", "100%25", "100%25"),
        ("a\r\nb", "a%0D%0Ab", "a%0D%0Ab"),
        ("key: a, b", "key: a, b", "key%3A a%2C b"),
        ("literal %0A", "literal %250A", "literal %250A"),
        ("x=y", "x=y", "x=y"),
        ("::error::", "::error::", "%3A%3Aerror%3A%3A"),
    ],
)
def test_escape_vectors(raw, data, prop):
    assert cmd.escape_data(raw) == data
    assert cmd.escape_property(raw) == prop


def test_format_command_skips_empty_properties_and_keeps_order():
    line = cmd.format_command("warning", "msg", title="T", file="", line=None, col=0)
    assert line == "::warning title=T,col=0::msg"
    assert cmd.format_command("endgroup") == "::endgroup::"
    assert cmd.format_command("error", "m", file="") == "::error::m"


@pytest.mark.parametrize("name", ["", "two words", "a::b", "-x"])
def test_format_command_refuses_bad_names(name):
    with pytest.raises(ValueError):
        cmd.format_command(name, "m")


def test_annotation_exact_bytes_and_round_trip():
    line = cmd.annotation(
        "error",
        "bad value: x, y\n100% sure %0A",
        file="pipelines/a,b.yaml",
        line=3,
        end_line=3,
        col=5,
        end_col=9,
        title="OML001: schema",
    )
    assert line == (
        "::error title=OML001%3A schema,file=pipelines/a%2Cb.yaml,line=3,endLine=3,col=5,endColumn=9"
        "::bad value: x, y%0A100%25 sure %250A"
    )
    (parsed,) = parse_stdout(line + "\n").commands
    assert parsed.name == "error"
    assert parsed.data == "bad value: x, y\n100% sure %0A"
    assert parsed.properties == {
        "title": "OML001: schema",
        "file": "pipelines/a,b.yaml",
        "line": "3",
        "endLine": "3",
        "col": "5",
        "endColumn": "9",
    }


@pytest.mark.parametrize(
    ("positions", "expected"),
    [
        ({"line": 4}, "line=4"),
        ({"end_line": 7}, "line=7,endLine=7"),
        ({"col": 2, "end_col": 5}, ""),  # columns need a line
        ({"line": 2, "end_line": 4, "col": 1, "end_col": 3}, "line=2,endLine=4"),
        ({"line": 5, "end_line": 3, "col": 1}, ""),  # reversed lines
        ({"line": 5, "col": 8, "end_col": 2}, "line=5"),  # reversed columns
        ({"line": 5, "end_col": 6}, "line=5,col=6,endColumn=6"),
        ({"line": 0, "col": 0}, ""),  # positions are 1-based
    ],
)
def test_annotation_positions_are_those_the_runner_keeps(positions, expected):
    line = cmd.annotation("warning", "m", **positions)
    assert line == (f"::warning {expected}::m" if expected else "::warning::m")


def test_annotation_rejects_unknown_level_and_truncates_long_messages():
    with pytest.raises(ValueError, match="error, warning, notice"):
        cmd.annotation("fatal", "m")
    (parsed,) = parse_stdout(cmd.annotation("notice", "x" * 5000) + "\n").commands
    assert len(parsed.data) == cmd.MAX_MESSAGE
    assert parsed.data.endswith("x…")


texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(message=texts, title=texts, file=texts)
def test_any_text_round_trips_through_the_runner(message, title, file):
    line = cmd.annotation("warning", message, file=file, line=1, title=title)
    assert "\n" not in line and "\r" not in line
    parsed = parse_v2(line)
    assert parsed is not None and parsed.name == "warning"
    assert parsed.data == message
    # Empty values are left out; `line` comes last, so the runner's trim of the list changes nothing.
    props = {"title": title, "file": file, "line": "1"}
    assert parsed.properties == {k: v for k, v in props.items() if v}


def test_message_cannot_inject_a_second_command():
    line = cmd.annotation("error", "boom\n::add-mask::oops\r##[warning]legacy")
    transcript = parse_stdout(line + "\n")
    assert [c.name for c in transcript.commands] == ["error"]
    assert transcript.masks == []


def test_add_mask_multiline_one_per_line_and_escaped():
    secret = "line-one\n\n  line two \r\nli%ne3\r\n"
    lines = cmd.add_mask(secret)
    assert lines == ["::add-mask::line-one", "::add-mask::line two", "::add-mask::li%25ne3"]
    out = io.StringIO()
    cmd.emit(lines, out)
    out.write("leak: line-one / line two / li%ne3\n")
    transcript = parse_stdout(out.getvalue())
    assert transcript.masks == ["line-one", "line two", "li%ne3"]
    assert transcript.log == ["leak: *** / *** / ***"]


def test_add_mask_skips_blank_values():
    assert cmd.add_mask("") == []
    assert cmd.add_mask(" \n\t\r\n") == []
    assert cmd.add_mask(None) == []


def test_group_and_endgroup():
    assert cmd.group("Validate: a, b") == "::group::Validate: a, b"
    assert cmd.endgroup() == "::endgroup::"
    transcript = parse_stdout(cmd.group("x%\ny") + "\n" + cmd.endgroup() + "\n")
    assert [(c.name, c.data) for c in transcript.commands] == [("group", "x%\ny"), ("endgroup", "")]


UNTRUSTED = "::error::injected\n##[warning]legacy\n::add-mask::x\n  ::notice file=a::n"


def test_untrusted_text_would_inject_without_stop_commands():
    names = [c.name for c in parse_stdout(UNTRUSTED + "\n").commands]
    assert names == ["error", "warning", "add-mask", "notice"]


def test_stop_commands_pauses_parsing_and_resumes_on_a_fresh_line():
    out = io.StringIO()
    with cmd.stop_commands(out) as echo:
        echo(UNTRUSTED)  # no trailing newline on purpose
    out.write(cmd.annotation("error", "after") + "\n")
    text = out.getvalue()
    token = re.match(r"::stop-commands::([0-9a-f]{32})\n", text)[1]
    assert text == f"::stop-commands::{token}\n{UNTRUSTED}\n::{token}::\n::error::after\n"
    transcript = parse_stdout(text)
    assert [c.name for c in transcript.commands] == ["stop-commands", "error"]
    assert transcript.commands[-1].data == "after"
    assert transcript.log == UNTRUSTED.split("\n")
    assert transcript.errors == []


def test_stop_commands_tokens_are_fresh_and_no_extra_newline_is_added():
    seen = []
    for _ in range(2):
        chunks: list[str] = []
        with cmd.stop_commands(chunks.append) as echo:
            echo("done\n")
        seen.append(chunks[0])
        assert chunks[1:] == ["done\n", chunks[0].replace("::stop-commands::", "::")[:-1] + "::\n"]
    assert seen[0] != seen[1]


def test_runner_parse_refuses_unsafe_stop_tokens():
    transcript = parse_stdout("::stop-commands::error\n::warning::still processed\n")
    assert transcript.errors == ["invalid stop-commands token 'error'"]
    assert [c.name for c in transcript.commands] == ["warning"]


def test_runner_parse_edge_cases():
    transcript = parse_stdout(
        "   ::warning::lead\n::unknown::x\n::ERROR line=2,=x,y=,::m\nplain ##[notice]mid\n"
    )
    assert [(c.name, c.properties, c.data) for c in transcript.commands] == [
        ("warning", {}, "lead"),
        ("error", {"line": "2"}, "m"),
        ("notice", {}, "mid"),
    ]
    assert transcript.log == ["::unknown::x"]


def test_runner_parse_keeps_only_ten_annotations_per_type():
    text = "".join(f"::error::e{i}\n::notice::n{i}\n" for i in range(12))
    kept = parse_stdout(text).kept_annotations
    assert [c.data for c in kept if c.name == "error"] == [f"e{i}" for i in range(10)]
    assert len(kept) == 20


def test_emit_to_stdout_callable_and_stream(capsys):
    cmd.emit(["::a::", "::b::"])
    assert capsys.readouterr().out == "::a::\n::b::\n"
    chunks: list[str] = []
    cmd.emit("::c::", chunks.append)
    assert chunks == ["::c::\n"]


# --- annotations --------------------------------------------------------------------------------


def _findings():
    findings = [Finding("error", f"e{i}", file=f"p/{i % 3}.yaml", line=i + 1) for i in range(25)]
    findings += [Finding("warning", f"w{i}", file="p/w.yaml", line=i + 1) for i in range(12)]
    findings += [Finding("notice", f"n{i}", file="p/n.yaml", line=i + 1) for i in range(15)]
    random.Random(7).shuffle(findings)
    return findings


def test_annotator_caps_each_type_and_adds_one_overflow_notice():
    out = io.StringIO()
    lines = Annotator(out).emit(_findings())
    assert out.getvalue() == "".join(f"{line}\n" for line in lines)
    transcript = parse_stdout(out.getvalue())
    names = [c.name for c in transcript.annotations]
    assert names == ["error"] * 10 + ["warning"] * 10 + ["notice"] * 10
    assert transcript.kept_annotations == transcript.annotations  # nothing the runner would drop
    errors = transcript.named("error")
    assert [(c.prop("file"), c.prop("line")) for c in errors[:4]] == [
        ("p/0.yaml", "1"),
        ("p/0.yaml", "4"),
        ("p/0.yaml", "7"),
        ("p/0.yaml", "10"),
    ]
    assert [c.data for c in transcript.named("notice")[:9]] == [f"n{i}" for i in range(9)]
    assert lines[-1] == (
        "::notice title=More findings::23 more findings (15 errors, 2 warnings, 6 notices) not shown as "
        "annotations: GitHub keeps 10 per type per step. All findings are in the job summary and the SARIF "
        "artifact."
    )


def test_annotator_without_overflow_and_with_a_total_cap():
    few = [Finding("warning", "w", file="a.yaml", line=2), Finding("error", "e", file="b.yaml", line=1)]
    assert Annotator(io.StringIO()).lines(few) == [
        "::error file=b.yaml,line=1::e",
        "::warning file=a.yaml,line=2::w",
    ]
    annotator = Annotator(io.StringIO(), max_total=5, overflow_hint="the job summary")
    shown, hidden = annotator.select(_findings())
    assert [f.level for f in shown] == ["error"] * 4 and len(hidden) == 48
    lines = annotator.lines(_findings())
    assert len(lines) == 5
    assert lines[-1].endswith(
        "::48 more findings (21 errors, 12 warnings, 15 notices) not shown as annotations: "
        "GitHub keeps 10 per type per step. All findings are in the job summary."
    )


def test_annotator_prefers_changed_files_and_is_stable():
    findings = [
        Finding("warning", "first", file="z.yaml", line=1),
        Finding("warning", "second", file="z.yaml", line=1),
        Finding("warning", "old", file="a.yaml", line=1),
        Finding("error", "err", file="a.yaml"),
    ]
    ordered = Annotator(prefer_files={"z.yaml"}).order(findings)
    assert [f.message for f in ordered] == ["err", "first", "second", "old"]


def test_finding_level_is_checked():
    with pytest.raises(ValueError, match="error, warning, notice"):
        Finding("info", "m")


# --- GITHUB_OUTPUT / GITHUB_ENV -----------------------------------------------------------------


def test_format_entry_exact_bytes():
    assert format_entry("name", "a\nb", delimiter="EOF") == "name<<EOF\na\nb\nEOF\n"
    assert format_entry("empty", "", delimiter="EOF") == "empty<<EOF\n\nEOF\n"
    assert format_entry("flag", True, delimiter="D") == "flag<<D\ntrue\nD\n"
    assert format_entry("obj", {"b": 1, "a": [1]}, delimiter="D") == 'obj<<D\n{"a":[1],"b":1}\nD\n'


def test_set_output_uses_a_uuid_heredoc(tmp_path):
    path = tmp_path / "set_output_x"
    assert set_output(path, "status", "success")
    text = path.read_text()
    match = re.fullmatch(
        r"status<<(ghadelimiter_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12})\n"
        r"success\n\1\n",
        text,
    )
    assert match
    assert read_file_command(path) == {"status": "success"}


VALUES = {
    "multi": "line 1\nline 2",
    "empty": "",
    "newline": "\n",
    "two-newlines": "\n\n",
    "trailing": "x\n",
    "equals": "a=b",
    "heredoc-like": "a<<b\nEOF\n",
    "spaces": "  padded  ",
    "crlf": "a\r\nb\r\n",
    "unicode": "Zürich ✓",
    "number": 3,
    "bool": False,
    "none": None,
}
EXPECTED = {**VALUES, "number": "3", "bool": "false", "none": ""}


def test_set_outputs_round_trip_in_one_write(tmp_path):
    path = tmp_path / "out"
    path.write_text("earlier=1\n")
    assert set_outputs(path, VALUES)
    assert read_file_command(path) == {"earlier": "1", **EXPECTED}


def test_delimiter_collision_is_refused():
    with pytest.raises(ValueError, match="value should not contain the delimiter"):
        format_entry("n", "x\nEOF\ny", delimiter="EOF")
    with pytest.raises(ValueError, match="name should not contain the delimiter"):
        format_entry("EOF_name", "x", delimiter="EOF")


@pytest.mark.parametrize("name", ["", "a=b", "a<<b", "a\nb", "a\rb"])
def test_bad_names_are_refused_and_nothing_is_written(tmp_path, name):
    path = tmp_path / "out"
    with pytest.raises(ValueError, match="invalid name"):
        append_entries(path, {"good": "1", name: "2"})
    assert not path.exists()


def test_unset_path_writes_nothing():
    assert set_output(None, "a", "b") is False
    assert set_outputs("", {"a": "b"}) is False


# The runner's own cases (actions/runner SetOutputFileCommandL0.cs), replayed against runner_parse.
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=1\nb=2\n", {"a": "1", "b": "2"}),
        ("a=x=y<<z\n", {"a": "x=y<<z"}),
        ("a = 1 \n", {"a ": " 1 "}),
        ("\n\na=1\n\n\nb=2", {"a": "1", "b": "2"}),
        ("a=b<<c\n", {"a": "b<<c"}),
        ("a<<EOF\nline\nEOF\n", {"a": "line"}),
        ("a<<EOF\nEOF\n", {"a": ""}),
        ("a<<EOF\n\nEOF\n", {"a": ""}),
        ("a<<EOF\n\n\nEOF\n", {"a": "\n"}),
        ("a<<EOF\nx\nEOF", {"a": "x"}),
        ("a<<E=F\nv\nE=F\n", {"a": "v"}),
        ("a<<EOF\r\nx\r\nEOF\r\n", {"a": "x\r"}),
        ("a=1\r\n", {"a": "1\r"}),
        ("a=1\na=2\n", {"a": "2"}),
    ],
)
def test_runner_file_command_rules(text, expected):
    assert parse_file_command(text) == expected


@pytest.mark.parametrize(
    ("text", "message", "partial"),
    [
        ("a<<EOF\nx\nEOF \n", "Matching delimiter not found 'EOF'", {}),
        ("a<<EOF\r\nx\nEOF\n", "Matching delimiter not found 'EOF\r'", {}),
        ("a<<EOF\nx", "EOF marker missing new line", {}),
        ("a=1\njunk\nb=2\n", "Invalid format 'junk'", {"a": "1"}),
        ("a=1\n=v\n", "Name must not be empty", {"a": "1"}),
        ("<<EOF\nx\nEOF\n", "delimiter must not be empty", {}),
    ],
)
def test_runner_file_command_failures(text, message, partial):
    with pytest.raises(FileCommandError, match=re.escape(message)) as info:
        parse_file_command(text)
    assert info.value.partial == partial


# --- step summary -------------------------------------------------------------------------------


def test_escaping_vectors():
    assert escape_text("a|b\\c <x> & *y* _z_ #1 [l](u) `c` ~s~") == (
        "a\\|b\\\\c &lt;x&gt; &amp; \\*y\\* \\_z\\_ \\#1 \\[l\\](u) \\`c\\` \\~s\\~"
    )
    assert escape_text("line1\nline2\r\nline3") == "line1<br>line2<br>line3"
    assert escape_cell("") == " "
    assert escape_cell(Raw("a\nb")) == "a<br>b"
    assert escape_text(Raw("<b>ok</b>")) == "<b>ok</b>"
    assert link_to("a<b", 'https://x/?q="1"&r=2') == '<a href="https://x/?q=&quot;1&quot;&amp;r=2">a&lt;b</a>'
    assert inline_code("x_y") == "<code>x\\_y</code>"
    assert mermaid_label('a "b" <c> #1\nd') == '"a #quot;b#quot; #lt;c#gt; #35;1<br>d"'


def test_summary_golden():
    inner = Summary().paragraph("Compiled 3 steps.").code_block("select '```' as x", "sql")
    text = (
        Summary()
        .heading("✅ Osiris: orders <main>")
        .paragraph("- not a list, 1. not ordered")
        .paragraph("12. also not ordered")
        .table(
            ["Pipeline", "Status"], [["a|b.yaml", "ok\nfine"], [link_to("c", "https://e/c"), "x"], ["short"]]
        )
        .details("Details for a & b", inner)
        .mermaid("graph LR\n  A --> B")
        .list(["one", "# two"], ordered=True)
        .link("Run", "https://github.com/o/r/actions/runs/1")
        .render()
    )
    assert text == (
        "## ✅ Osiris: orders &lt;main&gt;\n"
        "\n"
        "\\- not a list, 1. not ordered\n"
        "\n"
        "12\\. also not ordered\n"
        "\n"
        "| Pipeline | Status |\n"
        "| --- | --- |\n"
        "| a\\|b.yaml | ok<br>fine |\n"
        '| <a href="https://e/c">c</a> | x |\n'
        "| short |   |\n"
        "\n"
        "<details><summary>Details for a &amp; b</summary>\n"
        "\n"
        "Compiled 3 steps.\n"
        "\n"
        "````sql\n"
        "select '```' as x\n"
        "````\n"
        "\n"
        "</details>\n"
        "\n"
        "```mermaid\n"
        "graph LR\n"
        "  A --> B\n"
        "```\n"
        "\n"
        "1. one\n"
        "2. \\# two\n"
        "\n"
        '<a href="https://github.com/o/r/actions/runs/1">Run</a>\n'
    )


def test_summary_budget_trims_long_tables_and_says_how_many_rows():
    summary = Summary(budget=20_000, overflow_hint="See osiris-artifacts.")
    summary.heading("Results").table(["k", "v"], [["small", "1"]])
    summary.table(["Step", "Detail"], [[f"step-{i}", "x" * 80] for i in range(1000)])
    text = summary.render()
    assert len(text.encode()) <= 20_000
    assert "| small | 1 |" in text
    shown = len(re.findall(r"^\| step-\d+ ", text, re.M))
    match = re.search(r"^\*(\d+) more rows not shown\. See osiris-artifacts\.\*$", text, re.M)
    assert match and shown + int(match[1]) == 1000
    assert shown > 150  # the budget is used, not thrown away


def test_summary_max_rows_and_hard_cut():
    text = Summary().table(["n"], [[i] for i in range(5)], max_rows=2).render()
    assert (
        text
        == "| n |\n| --- |\n| 0 |\n| 1 |\n\n*3 more rows not shown. The full list is in the artifacts.*\n"
    )
    huge = Summary(budget=5_000).paragraph("word " * 1000 + "\n" + "é" * 4000).render()
    assert len(huge.encode()) <= 5_000
    assert huge.endswith(
        "*Summary cut to fit GitHub's step summary limit. The full list is in the artifacts.*\n"
    )


def test_summary_write_appends_once_within_the_remaining_budget(tmp_path):
    path = tmp_path / "step_summary_x"
    path.write_text("earlier")
    summary = Summary(budget=3_000).table(["n"], [[f"row {i}"] for i in range(500)])
    assert summary.write(path) is True
    assert summary.write(path) is False
    content = path.read_text()
    assert content.startswith("earlier\n\n| n |\n")
    assert len(content.encode()) <= 3_000
    assert Summary().paragraph("x").write(None) is False
    assert Summary().write(path) is False


# --- inputs -------------------------------------------------------------------------------------


def test_inputs_keep_hyphens_and_trim():
    env = {"INPUT_PIPELINE-PATH": "  pipelines/a.yaml \n", "INPUT_MY_INPUT": "x", "INPUT_PIPELINE_PATH": "no"}
    assert get_input("pipeline-path", env) == "pipelines/a.yaml"
    assert get_input("Pipeline-Path", env) == "pipelines/a.yaml"
    assert get_input("my input", env) == "x"
    assert get_input("missing", env) == ""
    with pytest.raises(InputError) as info:
        get_input("github-token", env, required=True)
    assert info.value.message == "Input 'github-token' is required and was not supplied"
    assert "INPUT_GITHUB-TOKEN" in info.value.hint


@pytest.mark.parametrize(
    ("raw", "value"),
    [(v, True) for v in ("true", "True", "TRUE", " true ")]
    + [(v, False) for v in ("false", "False", "FALSE")],
)
def test_get_bool_accepts_yaml_core_values(raw, value):
    assert get_bool("changed-only", {"INPUT_CHANGED-ONLY": raw}) is value


@pytest.mark.parametrize("raw", ["yes", "1", "on", "tRUE", "no", ""])
def test_get_bool_refuses_everything_else(raw):
    with pytest.raises(InputError) as info:
        get_bool("changed-only", {"INPUT_CHANGED-ONLY": raw})
    assert isinstance(info.value, ValueError)
    assert info.value.message.startswith("Input 'changed-only' must be a boolean, got ")
    assert info.value.hint == "Allowed values: true | True | TRUE | false | False | FALSE."
    assert get_bool("changed-only", {}, default=True) is True


def test_get_multiline_and_get_choice():
    env = {
        "INPUT_PIPELINES": "a.yaml\n\n  b.yaml  \r\n \nc.yaml",
        "INPUT_MODE": "Compile",
        "INPUT_BAD": "deploy",
    }
    assert get_multiline("pipelines", env) == ["a.yaml", "b.yaml", "c.yaml"]
    assert get_choice("mode", ["validate", "compile", "run"], env=env) == "compile"
    assert get_choice("comment", ["off", "always"], default="off", env=env) == "off"
    with pytest.raises(InputError) as info:
        get_choice("bad", ["validate", "compile", "run"], env=env)
    assert str(info.value) == "Input 'bad' must be one of validate, compile, run, got 'deploy'"
    assert info.value.hint == "Allowed values for 'bad': validate | compile | run."


# --- event --------------------------------------------------------------------------------------


def _pr_payload(head_repo="octo/data", user="alice", action="synchronize"):
    return {
        "action": action,
        "number": 42,
        "pull_request": {
            "number": 42,
            "user": {"login": user},
            "base": {"sha": "b" * 40, "ref": "main", "repo": {"full_name": "octo/data"}},
            "head": {
                "sha": "h" * 40,
                "ref": "feature",
                "repo": {"full_name": head_repo} if head_repo else None,
            },
        },
        "repository": {"full_name": "octo/data"},
        "sender": {"login": user},
    }


def test_event_pull_request_same_repo(tmp_path):
    path = tmp_path / "event.json"
    path.write_text(json.dumps(_pr_payload()))
    env = {
        "GITHUB_EVENT_PATH": str(path),
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_REF": "refs/pull/42/merge",
    }
    event = load_event(env)
    assert (event.name, event.action, event.pr_number, event.repository, event.ref) == (
        "pull_request",
        "synchronize",
        42,
        "octo/data",
        "refs/pull/42/merge",
    )
    assert (event.base_sha, event.head_sha, event.base_repo, event.head_repo) == (
        "b" * 40,
        "h" * 40,
        "octo/data",
        "octo/data",
    )
    assert not event.is_fork and not event.is_dependabot and event.is_pull_request


def test_event_fork_dependabot_closed_and_comment():
    assert event_from_payload("pull_request", _pr_payload(head_repo="mallory/data")).is_fork
    assert event_from_payload("pull_request", _pr_payload(head_repo=None)).is_fork  # deleted fork
    assert event_from_payload("pull_request", _pr_payload(user="dependabot[bot]")).is_dependabot
    assert event_from_payload("push", {}, {"GITHUB_ACTOR": "dependabot[bot]"}).is_dependabot
    assert event_from_payload("pull_request", _pr_payload(action="closed")).action == "closed"
    comment = {"action": "created", "issue": {"number": 7, "pull_request": {}, "user": {"login": "bob"}}}
    assert event_from_payload("issue_comment", comment).pr_number == 7
    assert event_from_payload("issues", {"issue": {"number": 8}}).pr_number is None


def test_event_tolerates_a_missing_payload_but_not_a_broken_one(tmp_path):
    env = {
        "GITHUB_EVENT_PATH": str(tmp_path / "absent.json"),
        "GITHUB_EVENT_NAME": "workflow_dispatch",
        "GITHUB_REPOSITORY": "octo/data",
        "GITHUB_SHA": "s" * 40,
    }
    event = load_event(env)
    assert (event.name, event.repository, event.sha, event.pr_number) == (
        "workflow_dispatch",
        "octo/data",
        "s" * 40,
        None,
    )
    assert not event.is_fork and not event.is_pull_request
    assert load_event({}).name == ""
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_event({"GITHUB_EVENT_PATH": str(broken)})


# --- REST client against a local fake GitHub ----------------------------------------------------


class FakeGitHub:
    """Just enough of the GitHub REST API: PR files, issue comments, scripted failures."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix
        self.files = [{"filename": f"pipelines/p{i}.yaml", "status": "modified"} for i in range(250)]
        self.comments: list[dict] = [{"id": 1, "body": "LGTM", "user": {"login": "alice"}}]
        self.failures: list[tuple[int, dict, dict]] = []  # served before routing, one per request
        self.read_only = False
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.handle(self)

            do_POST = do_PATCH = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{prefix}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def handle(self, h: BaseHTTPRequestHandler):
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length)) if length else None
        url = urlsplit(h.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.requests.append(
            {"method": h.command, "path": url.path, "query": query, "headers": h.headers, "body": body}
        )
        if self.failures:
            self.reply(h, *self.failures.pop(0))
            return
        path = url.path.removeprefix(self.prefix)
        if h.command == "GET" and re.fullmatch(r"/repos/octo/data/pulls/42/files", path):
            self.page(h, url.path, query, self.files)
        elif h.command == "GET" and re.fullmatch(r"/repos/octo/data/issues/42/comments", path):
            self.page(h, url.path, query, self.comments)
        elif h.command in ("POST", "PATCH") and self.read_only:
            self.reply(h, 403, {}, {"message": "Resource not accessible by integration"})
        elif h.command == "POST" and re.fullmatch(r"/repos/octo/data/issues/42/comments", path):
            comment = {
                "id": 1000 + len(self.comments),
                "body": body["body"],
                "user": {"login": "github-actions[bot]"},
            }
            self.comments.append(comment)
            self.reply(h, 201, {}, comment)
        elif h.command == "PATCH" and (m := re.fullmatch(r"/repos/octo/data/issues/comments/(\d+)", path)):
            comment = next(c for c in self.comments if c["id"] == int(m[1]))
            comment["body"] = body["body"]
            self.reply(h, 200, {}, comment)
        else:
            self.reply(h, 404, {}, {"message": "Not Found"})

    def page(self, h, path, query, items):
        per_page, page = int(query.get("per_page", 30)), int(query.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            origin = self.url.removesuffix(self.prefix)
            headers["Link"] = f'<{origin}{path}?per_page={per_page}&page={page + 1}>; rel="next"'
        self.reply(h, 200, headers, chunk)

    def reply(self, h, status, headers, payload):
        data = json.dumps(payload).encode()
        h.send_response(status)
        for key, value in {
            "Content-Type": "application/json",
            "Content-Length": str(len(data)),
            **headers,
        }.items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)


@pytest.fixture
def github():
    fake = FakeGitHub()
    yield fake
    fake.close()


@pytest.fixture
def sleeps():
    return []


def _client(fake, sleeps, **kwargs):
    return GitHubClient("t0ken", fake.url, timeout=5.0, backoff=0.25, sleep=sleeps.append, **kwargs)


def test_pagination_follows_link_headers(sleeps):
    fake = FakeGitHub(prefix="/api/v3")  # a GitHub Enterprise Server style GITHUB_API_URL
    try:
        with GitHubClient.from_env("t0ken", {"GITHUB_API_URL": fake.url}, sleep=sleeps.append) as client:
            files = client.list_pr_files("octo/data", 42)
    finally:
        fake.close()
    assert [f["filename"] for f in files] == [f"pipelines/p{i}.yaml" for i in range(250)]
    assert [(r["path"], r["query"]) for r in fake.requests] == [
        ("/api/v3/repos/octo/data/pulls/42/files", {"per_page": "100"}),
        ("/api/v3/repos/octo/data/pulls/42/files", {"per_page": "100", "page": "2"}),
        ("/api/v3/repos/octo/data/pulls/42/files", {"per_page": "100", "page": "3"}),
    ]
    headers = fake.requests[0]["headers"]
    assert headers["Authorization"] == "Bearer t0ken"
    assert headers["Accept"] == "application/vnd.github+json"
    assert headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert sleeps == []


def test_sticky_comment_created_then_updated_then_left_alone(github, sleeps):
    with _client(github, sleeps) as client:
        first = client.upsert_sticky_comment("octo/data", 42, "osiris:ci:validate", "## Run 1")
        second = client.upsert_sticky_comment("octo/data", 42, "osiris:ci:validate", "## Run 2")
        third = client.upsert_sticky_comment("octo/data", 42, "osiris:ci:validate", "## Run 2")
        other = client.upsert_sticky_comment(
            "octo/data", 42, "osiris:ci:run", "## Other", author="github-actions[bot]"
        )
    assert (first.action, second.action, third.action, other.action) == (
        "created",
        "updated",
        "unchanged",
        "created",
    )
    assert first.comment["id"] == second.comment["id"] == third.comment["id"]
    assert [c["body"] for c in github.comments] == [
        "LGTM",
        "## Run 2\n\n<!-- osiris:ci:validate -->\n",
        "## Other\n\n<!-- osiris:ci:run -->\n",
    ]
    assert [r["method"] for r in github.requests] == ["GET", "POST", "GET", "PATCH", "GET", "GET", "POST"]


def test_forbidden_is_its_own_exception(github, sleeps):
    github.read_only = True
    with _client(github, sleeps) as client, pytest.raises(Forbidden) as info:
        client.upsert_sticky_comment("octo/data", 42, "osiris", "body")
    assert info.value.status == 403
    assert "Resource not accessible by integration" in info.value.message
    assert sleeps == []


def test_502_is_retried_on_get_but_not_on_post(github, sleeps):
    github.failures = [(502, {}, {"message": "Bad Gateway"}), (503, {}, {"message": "Unavailable"})]
    with _client(github, sleeps) as client:
        assert len(client.list_issue_comments("octo/data", 42)) == 1
        assert sleeps == [0.25, 0.5]
        github.failures = [(502, {}, {"message": "Bad Gateway"})]
        with pytest.raises(GitHubError) as info:
            client.create_issue_comment("octo/data", 42, "hi")
    assert info.value.status == 502 and not isinstance(info.value, Forbidden)
    assert [r["method"] for r in github.requests] == ["GET", "GET", "GET", "POST"]
    assert len(github.comments) == 1


def test_rate_limits_wait_for_retry_after_within_bounds(github, sleeps):
    secondary = {"message": "You have exceeded a secondary rate limit."}
    github.failures = [(429, {"Retry-After": "2"}, {}), (403, {"Retry-After": "1"}, secondary)]
    with _client(github, sleeps, max_wait=30) as client:
        created = client.create_issue_comment("octo/data", 42, "hi")
        assert created["body"] == "hi" and sleeps == [2.0, 1.0]
        github.failures = [(403, {"Retry-After": "120"}, secondary)]
        with pytest.raises(RateLimited):
            client.list_pr_files("octo/data", 42)
    assert sleeps == [2.0, 1.0]


def test_next_links_to_another_origin_are_refused(github, sleeps):
    github.failures = [(200, {"Link": '<https://evil.example/steal?page=2>; rel="next"'}, [])]
    with _client(github, sleeps) as client, pytest.raises(GitHubError, match="another origin"):
        client.list_issue_comments("octo/data", 42)
    assert len(github.requests) == 1


def test_long_bodies_are_truncated_with_the_marker_kept(github, sleeps):
    body = "\n".join(f"| row {i} | {'x' * 60} |" for i in range(2000))
    with _client(github, sleeps) as client:
        result = client.upsert_sticky_comment("octo/data", 42, "osiris", body)
    posted = result.comment["body"]
    assert len(posted) <= COMMENT_BUDGET
    assert posted.endswith("The full report is in the job summary.*\n\n\n<!-- osiris -->\n")
    kept = posted.split("\n\n*Comment truncated")[0]
    assert body.startswith(kept) and kept.endswith("|")
    omitted = int(re.search(r"truncated: (\d+) characters omitted", posted)[1])
    assert omitted == len(body) - len(kept)  # the cut ends on a whole line


def test_fit_comment_and_marker_rules():
    assert fit_comment("short", "F") == "shortF"
    assert len(fit_comment("y" * 70_000)) <= COMMENT_BUDGET
    assert sticky_marker("k") == "<!-- k -->"
    with pytest.raises(ValueError):
        sticky_marker("a --> b")
    with GitHubClient() as client, pytest.raises(ValueError, match="owner/name"):
        client.list_pr_files("not a repo", 1)
