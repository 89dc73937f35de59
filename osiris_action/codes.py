"""Every diagnostic code in one table: its title, its usual severity and the Osiris rule it stands for.

The SARIF rule list and the CLI's exit code read this table, and a test holds docs/diagnostics.md and
the codes the source emits to it, so a code cannot exist in one place and be missing from another.
Codes are stable: a retired code is never reused.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    title: str
    severity: str  # the usual severity; "warning or error" where the value decides
    osiris: str = ""  # Osiris's `type` name for the same check; "" where Osiris has no such check


CODES: dict[str, Code] = {
    # Reading the file
    "OML001": Code("YAML syntax error", "error", "yaml_parse_error"),
    "OML002": Code("Duplicate mapping key", "error"),
    "OML003": Code("YAML structure not accepted", "error", "yaml_parse_error"),
    "OML004": Code("File cannot be read as a pipeline", "error", "file_not_found / read_error"),
    # Top level
    "OML010": Code("Pipeline is not a mapping", "error", "invalid_type"),
    "OML011": Code("Missing top-level key", "error", "missing_required_key"),
    "OML012": Code("Forbidden top-level key", "error", "forbidden_key"),
    "OML013": Code("oml_version is not a string", "error", "invalid_version_type"),
    "OML014": Code("Unsupported OML version", "warning or error", "unsupported_version"),
    "OML015": Code("Invalid pipeline name", "error", "invalid_name_type / empty_name"),
    "OML016": Code("Pipeline name convention", "warning", "naming_convention"),
    "OML017": Code("steps is not a non-empty list", "error", "invalid_steps_type / empty_steps"),
    "OML018": Code("Unknown top-level key", "warning", "unknown_key"),
    # Steps
    "OML020": Code("Step is not a mapping", "error", "invalid_step_type"),
    "OML021": Code("Step misses a required field", "error", "missing_step_field"),
    "OML022": Code("Invalid step id", "error", "invalid_id_type"),
    "OML023": Code("Duplicate step id", "error", "duplicate_id"),
    "OML024": Code("component is not a string", "error", "invalid_component_type"),
    "OML025": Code("Unknown component", "error", "unknown_component"),
    "OML026": Code("mode is not a string", "error", "invalid_mode_type"),
    "OML027": Code("Invalid mode", "error", "invalid_mode"),
    "OML028": Code("Mode not supported by the component", "error", "incompatible_mode"),
    "OML029": Code("Unknown step key", "warning"),
    # Dependencies
    "OML030": Code("needs is not a list", "error", "invalid_needs_type"),
    "OML031": Code("Dependency is not a string", "error", "invalid_dependency_type"),
    "OML032": Code("Unknown dependency", "error", "unknown_dependency"),
    "OML033": Code("Step needs itself", "error"),
    "OML034": Code("Dependency cycle", "error"),
    # Config
    "OML040": Code("config is not a mapping", "error", "invalid_config_type"),
    "OML041": Code("Unknown config key", "error", "unknown_config_key"),
    "OML042": Code("Config value does not fit the component's schema", "error", "invalid_config_value"),
    "OML043": Code("Missing required config key", "error", "missing_config_key / missing_config_field"),
    "OML044": Code("Exactly one of two config keys", "error"),
    "OML045": Code("A setting required by another is missing", "error", "missing_required_field"),
    "OML046": Code("Config overrides a connection field", "error", "forbidden_override"),
    "OML047": Code("Config overrides a connection field (allowed)", "warning", "override_warning"),
    "OML048": Code("Secret in the pipeline file", "error"),
    "OML049": Code("Config value not allowed with another setting", "error"),
    # Connections
    "OML050": Code("Invalid connection reference", "error", "invalid_connection_ref"),
    "OML051": Code("Connection family does not fit the component", "error"),
    "OML052": Code("Connection not defined", "error"),
    "OML053": Code("No connection to resolve", "error"),
    # SQL
    "OML060": Code("DuckDB SQL syntax error", "error"),
    "OML061": Code("Query reads a table no upstream step provides", "warning"),
    "OML062": Code("Query is not a SELECT", "warning"),
    "OML063": Code("Query reaches outside its inputs", "error"),
    # Compilation
    "OML070": Code("Unresolved parameter", "error"),
    # Accepted for compatibility with Osiris
    "OML080": Code("Config key has no effect here", "warning"),
    "OML090": Code("Implicit dependency on the previous step", "notice"),
    # Connections file
    "CON001": Code("Malformed connections file", "error"),
    "CON002": Code("Literal secret in the connections file", "warning"),
    "CON003": Code("Connection reads a variable of the runner", "error"),
}

# The file could not be read as input at all: the CLI exits 2 (usage or unreadable input), not 1.
INPUT_CODES = frozenset({"OML004"})


def rule_titles() -> dict[str, str]:
    return {code: entry.title for code, entry in CODES.items()}
