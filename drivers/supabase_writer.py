"""supabase.writer (also postgres.writer): write an Arrow table into Postgres.

SQL channel: binary COPY into a staging table, then one transaction for append, replace or upsert.
REST channel (PostgREST, when the connection gives only a URL and a key): JSON batches, not atomic.
"""

from __future__ import annotations

SPEC = {
    "name": "supabase.writer",
    "aliases": ["postgres.writer"],
    "families": ["supabase", "postgres"],
    "modes": ["write", "discover"],
    "connection": {"url": "allowed", "project_id": "allowed", "key": "forbidden"},
    "secrets": ["key", "service_role_key", "anon_key", "pg_dsn", "dsn", "password"],
    "config": {
        "type": "object",
        "additionalProperties": False,
        "required": ["table"],
        "properties": {
            "url": {"type": "string", "pattern": "^https://[a-zA-Z0-9-]+\\.supabase\\.co$"},
            "key": {"type": "string", "minLength": 20},
            "project_id": {"type": "string", "pattern": "^[a-zA-Z0-9-]+$"},
            "table": {"type": "string", "minLength": 1},
            "schema": {"type": "string", "minLength": 1, "default": "public"},
            "write_mode": {"enum": ["append", "replace", "upsert"], "default": "append"},
            "primary_key": {
                "oneOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
                ]
            },
            "returning": {"type": "string", "default": "minimal"},
            "create_if_missing": {"type": "boolean", "default": True},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            "timeout": {"type": "integer", "minimum": 5, "maximum": 300, "default": 30},
            "retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3},
            "ddl_channel": {"enum": ["auto", "http_sql", "psycopg2"], "default": "auto"},
            "prefer": {
                "enum": [
                    "return=minimal",
                    "return=representation",
                    "resolution=merge-duplicates",
                    "resolution=ignore-duplicates",
                ],
                "default": "return=minimal",
            },
        },
    },
    "constraints": [{"when": {"write_mode": ["replace", "upsert"]}, "require": "primary_key"}],
    "requires": ["pyarrow", "adbc_driver_postgresql", "psycopg", "httpx"],
    "helpers": ["_postgres.py"],
}
