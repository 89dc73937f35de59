"""supabase.extractor: read a Postgres/Supabase table into Arrow (SQL channel, or REST with paging)."""

from __future__ import annotations

SPEC = {
    "name": "supabase.extractor",
    "families": ["supabase", "postgres"],
    "modes": ["extract", "discover"],
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
            "select": {"type": "string", "minLength": 1, "default": "*"},
            "filter": {"type": "object"},
            "order": {"type": "string"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000},
            "offset": {"type": "integer", "minimum": 0, "default": 0},
            "timeout": {"type": "integer", "minimum": 1, "default": 30},
            "retries": {"type": "integer", "minimum": 0, "default": 3},
            "tables": {"type": "array", "items": {"type": "string"}},
        },
    },
    "constraints": [],
    "requires": ["pyarrow", "adbc_driver_postgresql", "psycopg", "httpx"],
    "helpers": ["_postgres.py"],
}
