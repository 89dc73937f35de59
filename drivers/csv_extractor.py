"""filesystem.csv_extractor: read a CSV file into Arrow with Osiris's options."""

from __future__ import annotations

SPEC = {
    "name": "filesystem.csv_extractor",
    "families": ["filesystem"],
    "modes": ["extract", "discover"],
    "connection": {"base_dir": "allowed"},
    "secrets": [],
    "config": {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": {"type": "string", "minLength": 1},
            "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ","},
            "encoding": {"enum": ["utf-8", "utf-16", "ascii", "latin-1", "iso-8859-1"], "default": "utf-8"},
            "header": {"type": ["boolean", "integer"], "default": True},
            "columns": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "skip_rows": {"type": "integer", "minimum": 0, "default": 0},
            "limit": {"type": "integer", "minimum": 1},
            "parse_dates": {
                "oneOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}}],
                "default": False,
            },
            "dtype": {"type": "object", "additionalProperties": {"type": "string"}},
            "na_values": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "chunk_size": {"type": "integer", "minimum": 100, "maximum": 1000000, "default": 10000},
            "skip_blank_lines": {"type": "boolean", "default": True},
            "comment": {"type": "string", "minLength": 1, "maxLength": 1},
            "compression": {"enum": ["infer", "gzip", "bz2", "zip", "xz"], "default": "infer"},
        },
    },
    "constraints": [],
    "requires": ["pyarrow"],
    "helpers": ["_files.py"],
}
