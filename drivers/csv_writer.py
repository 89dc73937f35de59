"""filesystem.csv_writer: write an Arrow table to CSV, keeping the column order of the data."""

from __future__ import annotations

SPEC = {
    "name": "filesystem.csv_writer",
    "families": ["filesystem"],
    "modes": ["write"],
    "connection": {"base_dir": "allowed"},
    "secrets": [],
    "config": {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": {"type": "string", "minLength": 1},
            "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ","},
            "header": {"type": "boolean", "default": True},
            "encoding": {"enum": ["utf-8", "utf-16", "ascii", "latin-1"], "default": "utf-8"},
            "newline": {"enum": ["lf", "crlf"], "default": "lf"},
            "quoting": {"enum": ["minimal", "all", "nonnumeric"], "default": "minimal"},
            "chunk_size": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1000},
            "create_dirs": {"type": "boolean", "default": True},
        },
    },
    "constraints": [{"when": {"delimiter": ["\t"]}, "require_value": {"quoting": ["minimal"]}}],
    "requires": ["pyarrow"],
    "helpers": ["_files.py"],
}
