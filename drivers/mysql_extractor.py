"""mysql.extractor: read a MySQL/MariaDB table or query into Arrow, in batches, with exact types."""

from __future__ import annotations

_CONNECTION = {
    "host": {"type": "string", "minLength": 1},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "database": {"type": "string", "minLength": 1},
    "user": {"type": "string", "minLength": 1},
    "password": {"type": "string"},
}

SPEC = {
    "name": "mysql.extractor",
    "families": ["mysql"],
    "modes": ["extract", "discover"],
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
        "properties": {
            **_CONNECTION,
            "table": {"type": "string", "minLength": 1},
            "schema": {"type": ["string", "null"]},
            "query": {"type": "string", "minLength": 1},
            "columns": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "limit": {"type": "integer", "minimum": 1},
            "offset": {"type": "integer", "minimum": 0, "default": 0},
            "batch_size": {"type": "integer", "minimum": 100, "maximum": 100000, "default": 10000},
            "pool_size": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
            "pool_recycle": {"type": "integer", "minimum": 60, "default": 3600},
            "echo": {"type": "boolean", "default": False},
        },
    },
    "constraints": [{"one_of": ["table", "query"]}],
    "requires": ["connectorx", "pyarrow", "pymysql"],
    "helpers": ["_mysql.py"],
}
