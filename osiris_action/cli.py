"""`osiris-action validate | compile | run`: argument parsing and exit codes only.

Exit codes: 0 success, 1 the pipeline has errors or the run failed, 2 usage or unreadable input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from osiris_action import __version__
from osiris_action.diagnostics import Diagnostic, format_json, format_sarif, format_text, has_errors
from osiris_action.errors import OsirisError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits with a usage dump; we want our one-line form
        raise UsageError(message, f"Run `{self.prog} --help`.")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="osiris-action", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"osiris-action {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    validate = sub.add_parser("validate", help="check pipelines and report every problem with its position")
    validate.add_argument("paths", nargs="+", help="pipeline files, folders or globs")
    validate.add_argument("--connections", help="osiris_connections.yaml (default: found as Osiris finds it)")
    validate.add_argument("--format", choices=["text", "json", "github", "sarif"], default="text")

    comp = sub.add_parser("compile", help="compile a pipeline into a deterministic manifest")
    comp.add_argument("pipeline")
    comp.add_argument("--connections")
    comp.add_argument("--out", default=".osiris/build", help="folder for <name>/manifest.json")
    comp.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    return parser


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--param needs NAME=VALUE, got {pair!r}")
        params[name] = value
    return params


def _print_diagnostics(diags: list[Diagnostic], fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(format_json(diags))
    elif fmt == "sarif":
        from osiris_action.docs import rule_titles

        sys.stdout.write(format_sarif(diags, rule_titles(), __version__))
    elif fmt == "github":
        from osiris_action.github.annotations import Annotator

        Annotator(sys.stdout.write).emit(diags)
    else:
        sys.stderr.write(format_text(diags)) if has_errors(diags) else sys.stdout.write(format_text(diags))


def cmd_validate(args) -> int:
    from osiris_action.pipelines import Checker, discover

    checker = Checker(args.connections)
    files = discover(args.paths)
    if not files:
        raise UsageError(
            "no OML pipeline files found", "Pipelines are .yaml files with `oml_version:` and `steps:`."
        )
    diags: list[Diagnostic] = []
    for path in files:
        diags += checker.check(path).diagnostics
    diags += checker.connection_diagnostics
    _print_diagnostics(diags, args.format)
    if args.format == "text":
        errors = sum(d.severity == "error" for d in diags)
        warnings = sum(d.severity == "warning" for d in diags)
        print(f"{len(files)} pipeline(s) checked: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 1 if has_errors(diags) else 0


def cmd_compile(args) -> int:
    from osiris_action.pipelines import Checker

    checked = Checker(args.connections).compile(Path(args.pipeline), _params(args.param))
    diags = checked.diagnostics
    if diags:
        sys.stderr.write(format_text(diags))
    if checked.compiled is None:
        return 1
    out = Path(args.out) / checked.compiled.manifest["pipeline"]["id"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_bytes(checked.compiled.data)
    print(f"{out / 'manifest.json'}  {checked.compiled.fingerprint}")
    return 0


COMMANDS = {"validate": cmd_validate, "compile": cmd_compile}


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        args = _parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except OsirisError as exc:
        if debug:
            raise
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
