"""The command line: what it finds, what it prints (text, JSON, SARIF) and the exit codes it returns."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from osiris_action.cli import main
from osiris_action.codes import CODES
from tests.unit.test_validate import CONNECTIONS, PIPELINE

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning|notice) (?P<code>[A-Z]+\d{3}) .+$"
)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OSIRIS_HOME", raising=False)


@pytest.fixture
def repo(tmp_path) -> Path:
    """A repository with good and bad pipelines, a connections file and files that are not pipelines."""
    (tmp_path / "pipelines" / "nested").mkdir(parents=True)
    (tmp_path / "pipelines" / "good.yaml").write_text(PIPELINE)
    (tmp_path / "pipelines" / "nested" / "bad.yml").write_text(PIPELINE.replace("mode: read", "mode: reed"))
    (tmp_path / "pipelines" / "nested" / "warn.yaml").write_text(PIPELINE.replace("movies-demo", "Movies"))
    (tmp_path / "pipelines" / "osiris_connections.yaml").write_text(CONNECTIONS)
    (tmp_path / "pipelines" / "other.yaml").write_text("kind: Deployment\nspec: {}\n")
    (tmp_path / "pipelines" / "notes.txt").write_text("steps: not yaml\n")
    return tmp_path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_text_output_lines_and_hints(repo, capsys):
    code, out, err = run(capsys, "validate", "pipelines/nested/bad.yml")
    assert code == 1
    assert out.splitlines() == [
        "pipelines/nested/bad.yml:7:11: error OML027 invalid mode 'reed'",
        "  hint: Use one of: read, transform, write. Did you mean 'read'?",
    ]
    assert err == "1 pipeline(s) checked: 1 error(s), 0 warning(s)\n"


def test_folders_are_searched_recursively_for_oml_files_only(repo, capsys):
    code, out, _ = run(capsys, "validate", "pipelines")
    assert code == 1
    files = {LINE.match(line)["file"] for line in out.splitlines() if LINE.match(line)}
    assert files == {"pipelines/nested/bad.yml", "pipelines/nested/warn.yaml"}


def test_globs_and_explicit_files(repo, capsys):
    assert run(capsys, "validate", "pipelines/*.yaml")[0] == 0  # good.yaml only: other.yaml is not OML
    assert run(capsys, "validate", "pipelines/**/w*.yaml")[0] == 0  # a warning only
    assert run(capsys, "validate", "pipelines/good.yaml", "pipelines/nested/warn.yaml")[0] == 0


def test_warnings_alone_exit_0_and_errors_exit_1(repo, capsys):
    code, out, err = run(capsys, "validate", "pipelines/nested/warn.yaml")
    assert code == 0 and " warning OML016 " in out and "0 error(s), 1 warning(s)" in err


def test_connections_option(repo, capsys, tmp_path):
    other = tmp_path / "elsewhere.yaml"
    other.write_text(CONNECTIONS.replace("db_movies:", "replica:"))
    code, out, _ = run(capsys, "validate", "pipelines/good.yaml", "--connections", str(other))
    assert code == 1 and "OML052 connection @mysql.db_movies is not defined in" in out
    code, _, err = run(capsys, "validate", "pipelines/good.yaml", "--connections", "missing.yaml")
    assert code == 2 and "connections file not found" in err


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", 2),  # empty
        (b"\x00\x01binary", 2),
        (b"name: caf\xe9\n", 2),  # not UTF-8
        (b"[" * 200_000, 2),  # nesting beyond the limit
        (b"a: [1\n", 1),  # a YAML syntax error is a finding in a file we could read
        (b"- a\n", 1),  # a list is a pipeline with an error
    ],
)
def test_unreadable_input_exits_2_and_findings_exit_1(tmp_path, capsys, content, code):
    (tmp_path / "p.yaml").write_bytes(content)
    assert run(capsys, "validate", "p.yaml")[0] == code


def test_usage_errors_exit_2(repo, capsys):
    assert run(capsys, "validate")[0] == 2
    assert run(capsys, "validate", "--format", "xml", "pipelines")[0] == 2
    code, _, err = run(capsys, "validate", "nope.yaml")
    assert code == 2 and err.startswith("error: no such file or folder: nope.yaml")
    code, _, err = run(capsys, "validate", "pipelines/notes*.yaml")
    assert code == 2 and "no OML pipeline files found" in err


def test_json_output(repo, capsys):
    code, out, _ = run(capsys, "validate", "--format", "json", "pipelines")
    data = json.loads(out)
    assert code == 1 and (data["errors"], data["warnings"]) == (1, 1)
    first = data["diagnostics"][0]
    assert first == {
        "file": "pipelines/nested/bad.yml",
        "line": 7,
        "column": 11,
        "end_line": 7,
        "end_column": 15,
        "severity": "error",
        "code": "OML027",
        "message": "invalid mode 'reed'",
        "hint": "Use one of: read, transform, write. Did you mean 'read'?",
    }


def test_sarif_output(repo, capsys):
    code, out, _ = run(capsys, "validate", "--format", "sarif", "pipelines")
    sarif = json.loads(out)
    assert code == 1 and sarif["version"] == "2.1.0" and "sarif-2.1.0" in sarif["$schema"]
    driver = sarif["runs"][0]["tool"]["driver"]
    assert [r["id"] for r in driver["rules"]] == ["OML016", "OML027"]
    assert driver["rules"][1]["shortDescription"]["text"] == CODES["OML027"].title
    results = sarif["runs"][0]["results"]
    assert [(r["ruleId"], r["level"], r["ruleIndex"]) for r in results] == [
        ("OML027", "error", 1),
        ("OML016", "warning", 0),
    ]
    location = results[0]["locations"][0]["physicalLocation"]
    assert location == {
        "artifactLocation": {"uri": "pipelines/nested/bad.yml"},
        "region": {"startLine": 7, "startColumn": 11, "endLine": 7, "endColumn": 15},
    }


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_output_is_byte_identical_between_runs(repo, capsys, fmt):
    assert run(capsys, "validate", "--format", fmt, "pipelines") == run(
        capsys, "validate", "--format", fmt, "pipelines"
    )


def test_examples_validate_and_compile(tmp_path, capsys):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    code, out, _ = run(capsys, "validate", "examples")
    assert (code, out) == (0, "")
    for pipeline in sorted((tmp_path / "examples").rglob("*.yaml")):
        if pipeline.name != "osiris_connections.yaml":
            code, out, err = run(capsys, "compile", str(pipeline), "--out", "build")
            assert code == 0, err
            assert re.fullmatch(r"build/[\w-]+/manifest\.json  sha256:[0-9a-f]{64}\n", out)


def test_compile_writes_the_manifest_and_prints_the_fingerprint(repo, capsys):
    code, out, err = run(capsys, "compile", "pipelines/good.yaml", "--out", "build")
    assert (code, err) == (0, "")
    path, fingerprint = out.split()
    assert path == "build/movies-demo/manifest.json"
    assert Path(path).read_bytes().startswith(b'{"compiler":')
    assert fingerprint.startswith("sha256:")


def test_compile_refuses_errors_and_unreadable_input(repo, capsys):
    code, out, err = run(capsys, "compile", "pipelines/nested/bad.yml", "--out", "build")
    assert (code, out) == (1, "") and "OML027" in err and not Path("build").exists()
    assert run(capsys, "compile", "missing.yaml")[0] == 2
    assert run(capsys, "compile", "pipelines/good.yaml", "--param", "novalue")[0] == 2


def test_compile_never_writes_outside_the_out_folder(repo, capsys):
    Path("pipelines/evil.yaml").write_text(PIPELINE.replace("name: movies-demo", "name: ../../escaped"))
    code, out, _ = run(capsys, "compile", "pipelines/evil.yaml", "--out", "build")
    assert code == 0 and out.startswith("build/_.._escaped/manifest.json")


def test_the_console_script_runs(tmp_path):
    script = Path(sys.executable).parent / "osiris-action"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "osiris_action"]
    result = subprocess.run(
        [*command, "validate", str(ROOT / "examples")], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "4 pipeline(s) checked: 0 error(s), 0 warning(s)\n"


def test_a_terminal_gets_one_status_line_that_updates_in_place():
    import io

    from osiris_action.cli import _Console

    screen = io.StringIO()
    console = _Console(screen)
    console.line("run r1: p.yaml")
    console.status("  …     extract 100,000 rows")
    console.status("  …     extract 200,000 rows")
    console.line("  ok    extract")
    assert screen.getvalue() == (
        "run r1: p.yaml\n"
        "\r\x1b[K  …     extract 100,000 rows"
        "\r\x1b[K  …     extract 200,000 rows"
        "\r\x1b[K  ok    extract\n"
    )
