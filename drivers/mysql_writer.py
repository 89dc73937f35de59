"""mysql.writer: write an Arrow table into MySQL/MariaDB (append, replace, upsert), in one transaction."""

from __future__ import annotations

from osiris_drivers.mysql_extractor import _CONNECTION

SPEC = {
    "name": "mysql.writer",
    "families": ["mysql"],
    "modes": ["write", "discover"],
    "connection": {
        "host": "allowed",
        "port": "allowed",
        "database": "forbidden",
        "user": "forbidden",
        "password": "forbidden",
        "schema": "allowed",
    },
    "secrets": ["password"],
    "config": {
        "type": "object",
        "additionalProperties": False,
        "required": ["table"],
        "properties": {
            **_CONNECTION,
            "table": {"type": "string", "minLength": 1},
            "schema": {"type": ["string", "null"]},
            "mode": {"enum": ["append", "replace", "upsert"], "default": "append"},
            "upsert_keys": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
            "batch_size": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1000},
            "create_table": {"type": "boolean", "default": False},
            "truncate_before": {"type": "boolean", "default": False},
            "pool_size": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
            "pool_recycle": {"type": "integer", "minimum": 60, "default": 3600},
            "echo": {"type": "boolean", "default": False},
        },
    },
    "constraints": [{"when": {"mode": ["upsert"]}, "require": "upsert_keys"}],
    "requires": ["pyarrow", "pymysql"],
    "helpers": ["_mysql.py", "mysql_extractor.py"],
}
