"""Routes 3, 6, 7 and 8, attacked through the action in the simulated runner.

3. `${NAME}` in the connections file cannot name a variable of the runner or of the action.
6. A value read from the environment is a secret in whatever field it sits (`host: ${MYSQL_PASSWORD}`).
7. No mask shorter than the redactor's minimum is ever sent; every line of a multi-line secret is masked.
8. A pipeline asked to run that never started is a failure (outputs, summary, exit code).
"""

from __future__ import annotations

import json

from osiris_action.redact import MIN_SECRET_LEN
from tests.security.canary import Canaries
from tests.security.conftest import assert_step_clean

READ_MYSQL = """\
oml_version: "0.1.0"
name: {name}
steps:
  - id: read-movies
    component: mysql.extractor
    mode: read
    config:
      connection: "@mysql.{alias}"
      query: SELECT 1 AS n
"""


def _mysql_connection(alias: str, **fields: str) -> str:
    body = "".join(f"      {key}: {value}\n" for key, value in fields.items())
    return f"    {alias}:\n{body}"


def _run(world, canaries: Canaries, files: dict[str, str], **with_):
    world.setup()
    world.write(files)
    inputs = {"changed-only": "false", "pipelines": "pipelines/attack*.yaml", "comment": "always", **with_}
    inputs.setdefault("github-token", canaries.values.get("INPUT_GITHUB-TOKEN", world.token))
    return world.run("pull_request", inputs, env=canaries.env(), timeout=120)


def test_route3_connections_cannot_name_the_runners_variables(runner_world, canaries):
    names = ["GITHUB_TOKEN", "INPUT_GITHUB-TOKEN", "ACTIONS_RUNTIME_TOKEN", "E2B_API_KEY"]
    aliases = {f"steal{i}": name for i, name in enumerate(names)}
    connections = "connections:\n  mysql:\n" + "".join(
        _mysql_connection(alias, host="127.0.0.1", user="root", password="${" + name + "}")
        for alias, name in aliases.items()
    )
    files = {"pipelines/osiris_connections.yaml": connections}
    files |= {f"pipelines/attack-{a}.yaml": READ_MYSQL.format(name=a, alias=a) for a in aliases}
    for target in ("local", "e2b"):
        result = _run(runner_world, canaries, files, target=target)
        assert result.returncode == 1, result.explain()
        assert result.outputs["status"] == "failure"
        errors = [a for a in result.of_level("error") if "CON003" in (a.title or "") + a.message]
        assert {name for name in names if any(f"${{{name}}}" in a.message for a in errors)} == set(names)
        assert all(a.file == "pipelines/osiris_connections.yaml" and a.line for a in errors)
        assert "read-movies" not in result.log  # no worker ever started
        assert_step_clean(canaries, runner_world, result)


def test_route6_a_secret_in_a_non_secret_field_is_masked_everywhere(runner_world, canaries):
    connections = "connections:\n  mysql:\n" + _mysql_connection(
        "movies", host="${MYSQL_PASSWORD}", port="3306", user="root", password='""', database="x"
    )
    files = {
        "pipelines/osiris_connections.yaml": connections,
        "pipelines/attack.yaml": READ_MYSQL.format(name="attack", alias="movies"),
    }
    result = _run(runner_world, canaries, files)
    assert result.returncode == 1, result.explain()
    assert canaries["MYSQL_PASSWORD"] in result.masks  # registered with the runner before any output
    assert result.outputs["status"] == "failure"
    assert "***" in json.dumps(result.report())  # the driver's error named the host: masked
    assert_step_clean(canaries, runner_world, result)


def test_route7_masks_never_reveal_short_pieces(runner_world, canaries):
    # An unencoded password with "/", "@" and ":" is cut into pieces by URL parsers: "p", "w", "ss".
    password = f"p/w@ss:{canaries['MYSQL_PASSWORD']}"
    pem = f"-----BEGIN KEY-----\n{canaries['GITHUB_TOKEN']}\nab\n{canaries['E2B_API_KEY']}\n-----END KEY-----"
    connections = "connections:\n  mysql:\n" + _mysql_connection(
        "movies", dsn="mysql://root:${DSN_PASSWORD}@127.0.0.1:1/x", host="127.0.0.1", key="${PEM_KEY}"
    )
    files = {
        "pipelines/osiris_connections.yaml": connections,
        "pipelines/attack.yaml": READ_MYSQL.format(name="attack", alias="movies"),
    }
    canaries.values["DSN_PASSWORD"] = password
    canaries.values["PEM_KEY"] = pem
    result = _run(runner_world, canaries, files)
    assert result.masks, result.explain()
    assert all(len(mask) >= MIN_SECRET_LEN for mask in result.masks), result.masks
    for line in pem.splitlines():
        if len(line) >= MIN_SECRET_LEN:
            assert line in result.masks
    assert password in result.masks
    del canaries.values["DSN_PASSWORD"], canaries.values["PEM_KEY"]  # their pieces are not canaries
    assert_step_clean(canaries, runner_world, result)


def test_route8_a_pipeline_that_never_started_fails_the_step(runner_world, canaries):
    connections = "connections:\n  mysql:\n" + _mysql_connection(
        "movies", host="127.0.0.1", user="root", password="${NOT_SET_ANYWHERE}"
    )
    missing_input = """\
oml_version: "0.1.0"
name: attack-missing-input
steps:
  - id: read-orders
    component: filesystem.csv_extractor
    mode: read
    config: {connection: "@filesystem.local", path: no-such-file.csv}
"""
    for files in (
        {
            "pipelines/osiris_connections.yaml": connections,
            "pipelines/attack.yaml": READ_MYSQL.format(name="attack", alias="movies"),
        },
        {"pipelines/attack-missing.yaml": missing_input},
    ):
        result = _run(runner_world, canaries, files)
        assert result.returncode == 1, result.explain()
        assert result.outputs["status"] == "failure"
        assert "❌ Osiris pipelines: failure" in result.summary
        assert "not run" in result.summary
        assert_step_clean(canaries, runner_world, result)


def test_route7_each_line_of_a_multi_line_secret_is_a_secret():
    from osiris_action.redact import Redactor
    from tests.security.canary import assert_nowhere

    canaries = Canaries.make("LINE_ONE", "LINE_TWO")
    pem = f"-----BEGIN KEY-----\n{canaries['LINE_ONE']}\nab\n{canaries['LINE_TWO']}\n-----END KEY-----\n"
    redactor = Redactor([pem])
    printed = f"key line: {canaries['LINE_TWO']}; first: {canaries['LINE_ONE']!r}; short: ab"
    shown = redactor.redact(printed)
    assert_nowhere(canaries, texts={"redacted": shown})
    assert shown.endswith("short: ab")  # a line too short to be a secret is not one
