"""Compilation: a canonical manifest, the same bytes everywhere, and never a secret value in it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from osiris_action.manifest_file import Manifest
from osiris_action.pipelines import Checker
from tests.unit.test_validate import CONNECTIONS, CSV_WRITER, PIPELINE, at

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples/osiris-demo/mysql-duckdb-supabase.yaml"
CANARY = "canary-7f3e-do-not-leak"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OSIRIS_HOME", raising=False)


def compile_text(tmp_path: Path, text: str, connections: str = CONNECTIONS, params=None):
    (tmp_path / "p.yaml").write_text(text)
    (tmp_path / "osiris_connections.yaml").write_text(connections)
    return Checker().compile(tmp_path / "p.yaml", params)


def test_the_osiris_demo_compiles_to_a_valid_canonical_manifest():
    checked = Checker().compile(DEMO)
    assert checked.diagnostics == []
    compiled = checked.compiled
    assert compiled.fingerprint == "sha256:" + hashlib.sha256(compiled.data).hexdigest()
    reparsed = json.loads(compiled.data)
    canonical = json.dumps(reparsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert compiled.data == canonical
    Manifest.model_validate_json(compiled.data)
    assert [s["id"] for s in reparsed["steps"]] == [
        "extract-movies",
        "compute-director-stats",
        "write-director-stats",
    ]


def test_steps_come_in_dependency_order(tmp_path):
    steps = PIPELINE[PIPELINE.index("  - id: extract-movies") : PIPELINE.index("  - id: stats")]
    reordered = PIPELINE.replace(steps, "") + steps  # the extractor written last
    compiled = compile_text(tmp_path, reordered).compiled
    assert [s["id"] for s in compiled.manifest["steps"]] == ["extract-movies", "stats", "write-stats"]


def test_an_implicit_chain_is_a_notice_at_the_step_and_explicit_in_the_manifest(tmp_path):
    text = PIPELINE.replace("    needs: [stats]\n", "")
    checked = compile_text(tmp_path, text)
    assert [(d.code, d.severity, d.line, d.column) for d in checked.diagnostics] == [
        ("OML090", "notice", *at(text, "write-stats"))
    ]
    step = checked.compiled.manifest["steps"][2]
    assert (step["needs"], step["needs_inferred"]) == (["stats"], True)
    assert step["inputs"] == {"stats": ["df_stats", "input_df", "stats"]}


def test_defaults_are_explicit_and_references_stay_references(tmp_path):
    steps = compile_text(tmp_path, PIPELINE + CSV_WRITER).compiled.manifest["steps"]
    writer = next(s for s in steps if s["id"] == "write-stats")
    assert writer["connection"] == "@supabase.main"
    assert writer["config"]["batch_size"] == 100 and writer["config"]["schema"] == "public"
    assert writer["config"]["primary_key"] == ["director"]
    assert "connection" not in writer["config"]
    csv = next(s for s in steps if s["id"] == "to-csv")
    assert csv["config"]["newline"] == "lf" and csv["connection"] == "@filesystem.local"


def test_no_secret_value_reaches_the_manifest(tmp_path, monkeypatch):
    for name in ("MYSQL_PASSWORD", "MYSQL_USER", "SUPABASE_SERVICE_ROLE_KEY", "CANARY"):
        monkeypatch.setenv(name, CANARY)
    connections = CONNECTIONS.replace("host: db", "host: ${CANARY}")
    compiled = compile_text(tmp_path, PIPELINE, connections).compiled
    assert CANARY.encode() not in compiled.data
    assert b"@mysql.db_movies" in compiled.data and b"@supabase.main" in compiled.data


def test_a_literal_secret_in_the_pipeline_stops_compilation(tmp_path):
    text = PIPELINE.replace("description: Director statistics", f"metadata: {{token: {CANARY}}}")
    checked = compile_text(tmp_path, text)
    assert checked.compiled is None and [d.code for d in checked.diagnostics] == ["OML048"]


def test_a_literal_secret_in_the_connections_file_warns_and_stays_out_of_the_manifest(tmp_path):
    # Osiris reads literal secrets from a (usually git-ignored) connections file: we warn, never stop
    checked = compile_text(tmp_path, PIPELINE, CONNECTIONS.replace("${MYSQL_PASSWORD}", CANARY))
    assert [(d.code, d.severity) for d in checked.diagnostics] == [("CON002", "warning")]
    assert checked.compiled is not None and CANARY.encode() not in checked.compiled.data


def test_a_pipeline_with_errors_is_refused(tmp_path):
    checked = compile_text(tmp_path, PIPELINE.replace("mode: read", "mode: reed"))
    assert checked.compiled is None and [d.code for d in checked.diagnostics] == ["OML027"]


def test_unresolved_parameter_is_reported_at_its_reference(tmp_path):
    text = PIPELINE.replace("GROUP BY director", "GROUP BY ${params.col}")
    checked = compile_text(tmp_path, text)
    assert [(d.code, d.line, d.column) for d in checked.diagnostics] == [
        ("OML070", *at(text, "${params.col}"))
    ]
    compiled = compile_text(tmp_path, text, params={"col": "director"}).compiled
    assert compiled.manifest["steps"][1]["config"]["query"].endswith("GROUP BY director\n")


def test_a_whole_value_parameter_keeps_its_type(tmp_path):
    text = PIPELINE.replace("description: Director statistics", "params: {size: {default: 500}}").replace(
        "      table: director_stats\n", "      table: director_stats\n      batch_size: ${params.size}\n"
    )
    compiled = compile_text(tmp_path, text).compiled
    assert compiled.manifest["steps"][2]["config"]["batch_size"] == 500
    assert compiled.manifest["pipeline"]["params"] == {"size": 500}


def test_yaml_only_values_become_canonical_json(tmp_path):
    text = PIPELINE.replace("description: Director statistics", "metadata: {2: a, b: .nan, on: 2024-05-01}")
    manifest = json.loads(compile_text(tmp_path, text).compiled.data)
    assert manifest["pipeline"]["metadata"] == {"2": "a", "b": ".nan", "true": "2024-05-01"}


def _compile_in_process(cwd: Path, pipeline: str, out: Path, seed: str) -> tuple[bytes, str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    result = subprocess.run(
        [sys.executable, "-m", "osiris_action", "compile", pipeline, "--out", str(out)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return (out / "mysql-duckdb-supabase-demo" / "manifest.json").read_bytes(), result.stdout.split()[-1]


def test_same_bytes_across_processes_working_directories_and_hash_seeds(tmp_path):
    elsewhere = tmp_path / "some" / "other" / "dir"
    elsewhere.mkdir(parents=True)
    first = _compile_in_process(ROOT, str(DEMO.relative_to(ROOT)), tmp_path / "a", "1")
    second = _compile_in_process(elsewhere, str(DEMO), tmp_path / "b", "4242")
    assert first == second
    assert first[1] == "sha256:" + hashlib.sha256(first[0]).hexdigest()
    assert str(tmp_path).encode() not in first[0] and str(ROOT).encode() not in first[0]


def test_parameter_values_are_checked_once_they_are_known(tmp_path):
    text = PIPELINE.replace("description: Director statistics", "params: {size: {default: 500}}").replace(
        "      table: director_stats\n", "      table: director_stats\n      batch_size: ${params.size}\n"
    )
    checked = compile_text(tmp_path, text, params={"size": "many"})
    found = [(d.code, d.line, d.column) for d in checked.diagnostics]
    assert checked.compiled is None and found == [("OML042", *at(text, "${params.size}"))]
    assert "'batch_size' must be an integer, got string 'many'" in checked.diagnostics[0].message


def test_sql_with_parameters_is_checked_at_compile(tmp_path):
    text = PIPELINE.replace("GROUP BY director", "GROUP BY ${params.col}")
    checked = compile_text(tmp_path, text, params={"col": "director HAVING"})
    found = [(d.code, d.line, d.column) for d in checked.diagnostics]
    assert checked.compiled is None and found == [("OML060", *at(text, "|\n        SELECT director"))]
    assert checked.diagnostics[0].message.endswith("(with parameters substituted)")
    checked = compile_text(tmp_path, text, params={"col": "nope.director"})
    assert checked.compiled is not None and [d.code for d in checked.diagnostics] == []
