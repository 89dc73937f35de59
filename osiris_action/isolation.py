"""Per-pull-request staging schemas: their names, and dropping them when the pull request closes.

Every writer of a pull request's run writes into a schema of its own (`osiris_pr_<number>` by
default), so many pull requests can share one staging database. Cleanup drops that schema and
everything in it, and refuses any name the template could not have produced: it can never drop a
schema that is not a pull request's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from osiris_action import components
from osiris_action.bundle import _connection_key
from osiris_action.connections import secret_values
from osiris_action.errors import OsirisError
from osiris_action.pipelines import Checker
from osiris_action.redact import Redactor

DEFAULT_TEMPLATE = "osiris_pr_{number}"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def schema_for(template: str, number: int | str) -> str:
    if template.count("{number}") != 1:
        raise OsirisError(
            f"the schema template {template!r} must contain {{number}} exactly once",
            f"Use something like {DEFAULT_TEMPLATE!r}.",
            exit_code=2,
        )
    name = template.replace("{number}", str(int(number)))
    if not _IDENTIFIER.match(name):
        raise OsirisError(
            f"the schema name {name!r} is not a plain lowercase identifier",
            "Use lowercase letters, digits and underscores in the template.",
            exit_code=2,
        )
    return name


def matches_template(template: str, schema: str) -> bool:
    pattern = "^" + re.escape(template).replace(re.escape("{number}"), "[0-9]+") + "$"
    return bool(re.match(pattern, schema)) and bool(_IDENTIFIER.match(schema))


def cleanup(
    pipelines: list[Path], schema: str, template: str, connections_arg: str | None, environ: Mapping[str, str]
) -> list[str]:
    """Drop `schema` on every database a writer of these pipelines writes to; returns what was dropped."""
    if not matches_template(template, schema):
        raise OsirisError(
            f"refusing to drop schema {schema!r}: it does not match the template {template!r}",
            "Cleanup only drops schemas that per-PR isolation created.",
            exit_code=2,
        )
    checker = Checker(connections_arg)
    done: dict[str, str] = {}
    for path in pipelines:
        checked = checker.compile(path)
        if checked.compiled is None:
            raise OsirisError(
                "the pipeline has errors; cannot tell which databases it writes to",
                "Fix the pipeline, or drop the schema by hand.",
                file=checked.document.file,
            )
        for step in checked.compiled.manifest["steps"]:
            component = components.get(step["component"])
            if step["mode"] != "write" or "schema" not in component.properties:
                continue
            key = _connection_key(step, checked.connections)
            if key is None:
                continue
            connection = checked.connections.resolve(*key, env=environ)
            label = f"@{key[0]}.{key[1] or 'default'}"
            if label not in done:
                _drop(key[0], connection, step["config"], schema)
                done[label] = schema
    return [f"{label}: {name}" for label, name in sorted(done.items())]


def _drop(family: str, connection: dict, config: dict, schema: str) -> None:
    from osiris_drivers._common import StepError

    try:
        if family == "mysql":
            from osiris_drivers._mysql import connect, connection_params, quote_ident

            conn = connect(connection_params(config, connection))
            try:
                with conn.cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(schema)}")
            finally:
                conn.close()
            return
        from osiris_drivers._postgres import channels, connect, quote

        sql, _ = channels(connection, config)
        if sql is None:
            raise OsirisError(
                f"@{family}: no SQL channel to drop schema {schema!r} with",
                "Add pg_dsn to the connection; REST cannot drop schemas.",
            )
        conn = connect(sql)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE")
            conn.commit()
        finally:
            conn.close()
    except StepError as exc:  # the message may quote the DSN the driver could not use
        redactor = Redactor(secret_values(connection))
        raise OsirisError(redactor.redact(exc.message), redactor.redact(exc.hint)) from exc
