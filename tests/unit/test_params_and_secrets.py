"""Osiris compatibility details and secret handling found by review: profiles and OSIRIS_PARAM_*,
typed --param values, literal secrets in the connections file, and DSN passwords that do not parse."""

from __future__ import annotations

import pytest

from osiris_action.compile import compile_document
from osiris_action.connections import secret_values
from osiris_action.errors import UsageError
from osiris_action.oml.load import load_text
from osiris_action.run import RunOptions, prepare

PIPELINE = """oml_version: "0.1.0"
name: prof
x-defaults: &q {query: "SELECT * FROM range(${params.n})"}
params:
  n: {default: 2}
profiles:
  big: {params: {n: 5}}
steps:
  - id: a
    component: duckdb.processor
    mode: transform
    config: *q
"""


def _query(params=None, profile=None, environ=None) -> str:
    doc, diags = load_text(PIPELINE, "p.yaml")
    assert diags == []
    compiled = compile_document(doc, params, profile, environ or {})
    return compiled.manifest["steps"][0]["config"]["query"]


def test_parameter_precedence_is_osiris_s():
    assert _query() == "SELECT * FROM range(2)"
    assert _query(environ={"OSIRIS_PARAM_N": "7", "OSIRIS_PARAM_UNRELATED": "1"}) == "SELECT * FROM range(7)"
    assert _query(profile="big", environ={"OSIRIS_PARAM_N": "7"}) == "SELECT * FROM range(5)"
    assert _query({"n": "9"}, "big", {"OSIRIS_PARAM_N": "7"}) == "SELECT * FROM range(9)"


def test_an_unrelated_osiris_param_does_not_change_the_manifest():
    doc, _ = load_text(PIPELINE, "p.yaml")
    plain = compile_document(doc, None, None, {})
    noisy = compile_document(doc, None, None, {"OSIRIS_PARAM_FOO": "1"})
    assert plain.data == noisy.data


def test_unknown_profile_is_a_usage_error():
    with pytest.raises(UsageError, match="profile 'nope'"):
        _query(profile="nope")


def test_command_line_values_keep_their_type():
    doc, _ = load_text(PIPELINE, "p.yaml")
    compiled = compile_document(doc, {"n": "3"}, None, {})
    assert compiled.manifest["pipeline"]["params"]["n"] == 3


def test_x_keys_are_accepted_silently(tmp_path):
    from osiris_action.pipelines import Checker

    (tmp_path / "p.yaml").write_text(PIPELINE)
    assert Checker().check(tmp_path / "p.yaml").diagnostics == []


@pytest.mark.parametrize(
    ("dsn", "pieces"),
    [
        ("postgresql://u:PREFIXsecret/ZZsecret9@127.0.0.1:5432/db", ["PREFIXsecret", "ZZsecret9"]),
        ("postgresql://u:CANARY@pg3xyz@127.0.0.1:5432/db", ["CANARY", "pg3xyz"]),
        ("postgresql://u:p%40ss%2Fword@h/db", ["p@ss/word", "p%40ss%2Fword"]),
    ],
)
def test_every_piece_of_a_dsn_password_is_secret(dsn, pieces):
    found = secret_values({"pg_dsn": dsn})
    assert all(piece in found for piece in pieces)


def test_keyword_dsn_password_and_urls_from_the_environment_are_secret():
    assert "a b c" in secret_values({"dsn": "host=h password='a b c' dbname=x"})
    url = "http://127.0.0.1:1/?token2=URLCANARY77"
    assert url in secret_values({"url": url}, {"url": "${SB_URL}"})
    assert secret_values({"host": "db.internal"}, {"host": "${DB_HOST}"}) == []


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:PREFIXsecret/ZZsecret9@127.0.0.1:5432/db",
        "postgresql://u:CANARY@pg3xyz@127.0.0.1:5432/db",
    ],
)
def test_a_dsn_that_does_not_parse_says_so_without_quoting_it(dsn):
    from osiris_drivers._common import StepError
    from osiris_drivers._postgres import channels

    with pytest.raises(StepError) as caught:
        channels({"pg_dsn": dsn}, {})
    text = caught.value.message + caught.value.hint
    assert "Percent-encode" in text
    assert not any(piece in text for piece in ("PREFIXsecret", "ZZsecret9", "CANARY", "pg3xyz"))


def test_a_literal_secret_never_lands_in_a_bundle_file(tmp_path):
    (tmp_path / "osiris_connections.yaml").write_text(
        "connections:\n  supabase:\n    staging: {pg_dsn: 'postgresql://u:LiteralCanary42@127.0.0.1/db'}\n"
    )
    (tmp_path / "p.yaml").write_text("""oml_version: "0.1.0"
name: lit
steps:
  - {id: a, component: duckdb.processor, mode: transform, config: {query: "SELECT 1 AS id"}}
  - id: w
    component: postgres.writer
    mode: write
    needs: [a]
    config: {connection: "@supabase.staging", table: t}
""")
    prepared = prepare(tmp_path / "p.yaml", RunOptions(), environ={})
    assert not any(b"LiteralCanary42" in data for data in prepared.bundle.files.values())
    assert "postgresql://u:LiteralCanary42@127.0.0.1/db" in prepared.env.values()
    assert prepared.redactor.redact("x LiteralCanary42 y") == "x *** y"


def test_a_workflow_expression_in_a_hint_stays_readable():
    from osiris_action.redact import Redactor

    hint = "Set it: `env: PG_PASSWORD: ${{ secrets.PG_PASSWORD }}` on the step."
    assert Redactor().redact(hint) == hint
    assert Redactor().redact("password: hunter2x") == "password: ***"


def test_other_tools_yaml_with_steps_is_not_taken_for_a_pipeline(tmp_path):
    from osiris_action.pipelines import discover

    (tmp_path / "cloudbuild.yaml").write_text(
        "steps:\n- name: gcr.io/cloud-builders/docker\n  args: [build]\n"
    )
    (tmp_path / "legacy.yaml").write_text("name: x\nsteps:\n  - id: a\n    component: duckdb.processor\n")
    (tmp_path / "p.yaml").write_text('oml_version: "0.1.0"\nname: p\nsteps: []\n')
    assert sorted(p.name for p in discover([str(tmp_path)])) == ["legacy.yaml", "p.yaml"]
