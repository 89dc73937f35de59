"""duckdb.processor: run one DuckDB SQL query over the upstream Arrow tables, zero-copy in and out."""

from __future__ import annotations

SPEC = {
    "name": "duckdb.processor",
    "families": ["duckdb"],
    "modes": ["transform"],
    "connection": {},
    "secrets": [],
    "config": {
        "type": "object",
        "additionalProperties": False,
        "required": ["query"],
        "properties": {"query": {"type": "string", "minLength": 1}},
    },
    "constraints": [],
    "requires": ["duckdb", "pyarrow"],
    "helpers": [],
}
