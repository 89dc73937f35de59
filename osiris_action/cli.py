"""`osiris-action validate | compile | run`: argument parsing and exit codes only.

Exit codes: 0 success, 1 the pipeline has errors or the run failed, 2 usage or unreadable input.
A YAML syntax error is a finding in a file that was read (1); a file that cannot be read as a pipeline
at all (missing, binary, empty, not UTF-8, over the size limits: OML004) is unreadable input (2).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

from osiris_action import __version__
from osiris_action.diagnostics import Diagnostic, format_json, format_sarif, format_text, has_errors, ordered
from osiris_action.errors import OsirisError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits with a usage dump; we want our one-line form
        raise UsageError(message, f"Run `{self.prog} --help`.")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="osiris-action",
        description="Validate, compile and run Osiris (OML) pipelines: on a laptop exactly as in CI.",
    )
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
    comp.add_argument("--profile", help="apply the pipeline's profiles.<NAME>.params")
    run = sub.add_parser("run", help="validate, compile and run a pipeline in a sandbox")
    plan = sub.add_parser("plan", help="check sources and targets without writing anything")
    for command in (run, plan):
        command.add_argument("pipeline", help="an OML file, or a manifest.json from `compile`")
        command.add_argument("--target", choices=["local", "e2b"], default="local")
        command.add_argument("--connections")
        command.add_argument("--out", help="run folder (default .osiris/runs/<run-id>)")
        command.add_argument(
            "--timeout", type=_seconds, default=900, help="seconds, more than 0 (default 900)"
        )
        command.add_argument("--e2b-template", help="a pre-built E2B template with our dependencies")
        command.add_argument(
            "--install-deps", action="store_true", help="pip install the pinned requirements first"
        )
        command.add_argument(
            "--download-data", action="store_true", help="also fetch data files (CSV, parquet)"
        )
        command.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
        command.add_argument("--e2b-python", help="the Python inside the E2B template (default python3)")
        command.add_argument("--profile", help="apply the pipeline's profiles.<NAME>.params")
        command.add_argument(
            "--isolate-schema",
            metavar="NAME",
            help="write every target into this schema (per-PR isolation), created on first use",
        )
        command.add_argument(
            "--diff",
            action="store_true",
            help="compare the incoming rows with each target table inside the write (data diff)",
        )

    cleanup = sub.add_parser("cleanup", help="drop a per-PR schema on every database the pipelines write to")
    cleanup.add_argument("paths", nargs="+", help="pipeline files, folders or globs")
    cleanup.add_argument("--schema", required=True)
    cleanup.add_argument("--template", default="osiris_pr_{number}", help="the isolation schema template")
    cleanup.add_argument("--connections")

    template = sub.add_parser("e2b-template", help="print (or build) an E2B template with our dependencies")
    template.add_argument("--build", metavar="NAME", help="build it in E2B under NAME (needs E2B_API_KEY)")
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


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
        from osiris_action.codes import rule_titles

        sys.stdout.write(format_sarif(diags, rule_titles(), __version__))
    elif fmt == "github":
        from osiris_action.github.annotations import Annotator
        from osiris_action.render import findings

        Annotator(sys.stdout.write).emit(findings(ordered(diags)))
    else:  # the findings are the command's output, on stdout; the one-line summary goes to stderr
        sys.stdout.write(format_text(diags))


def _exit_code(diags: list[Diagnostic]) -> int:
    from osiris_action.codes import INPUT_CODES

    if any(d.code in INPUT_CODES for d in diags):
        return 2
    return 1 if has_errors(diags) else 0


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
    diags = ordered(diags + checker.connection_diagnostics)  # an aliased value is reported once
    _print_diagnostics(diags, args.format)
    if args.format == "text":
        errors = sum(d.severity == "error" for d in diags)
        warnings = sum(d.severity == "warning" for d in diags)
        print(f"{len(files)} pipeline(s) checked: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return _exit_code(diags)


def cmd_compile(args) -> int:
    from osiris_action.pipelines import Checker

    checked = Checker(args.connections).compile(Path(args.pipeline), _params(args.param), args.profile)
    diags = checked.diagnostics
    if diags:
        sys.stderr.write(format_text(diags))
    if checked.compiled is None:
        return _exit_code(diags) or 1
    # The name is the user's: never let `name: ../../x` choose where the file goes.
    folder = re.sub(r"[^A-Za-z0-9_.-]+", "_", checked.compiled.manifest["pipeline"]["id"]).lstrip(".")
    out = Path(args.out) / (folder or "pipeline")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot write to {out}: {exc.strerror}", "Pass --out a folder you can write to."
        ) from exc
    (out / "manifest.json").write_bytes(checked.compiled.data)
    print(f"{out / 'manifest.json'}  {checked.compiled.fingerprint}")
    return 0


def cmd_run(args) -> int:
    from osiris_action.render import text
    from osiris_action.run import RunOptions, run_pipeline

    if not Path(args.pipeline).is_file():
        raise UsageError(
            f"no such file: {args.pipeline}", "Pass an OML pipeline file or a compiled manifest.json."
        )

    options = RunOptions(
        target=args.target,
        connections=args.connections,
        out=Path(args.out) if args.out else None,
        timeout=args.timeout,
        e2b_template=args.e2b_template,
        install_deps=args.install_deps,
        params=_params(args.param),
        download_data=args.download_data or None,
        python=args.e2b_python,
        plan=args.command == "plan",
        profile=args.profile,
        isolate_schema=args.isolate_schema,
        diff=args.diff,
    )
    console = _Console(sys.stdout)
    report, out = run_pipeline(
        Path(args.pipeline),
        options,
        on_progress=console.line,
        on_status=console.status if sys.stdout.isatty() else None,
    )
    print()
    print(text(report), end="")
    print(f"  outputs: {out}")
    return {"success": 0, "cancelled": 130}.get(report.status, 1)


class _Console:
    """Progress on a terminal: ordinary lines, and one status line that updates in place below them."""

    def __init__(self, stream):
        self.stream = stream
        self.showing = False

    def line(self, text: str) -> None:
        if self.showing:
            self.stream.write("\r\x1b[K")
            self.showing = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def status(self, text: str) -> None:
        import shutil

        width = shutil.get_terminal_size().columns - 1
        self.stream.write("\r\x1b[K" + text[:width])
        self.stream.flush()
        self.showing = True


def cmd_e2b_template(args) -> int:
    import os

    from osiris_action.sandbox import template
    from osiris_action.sandbox.base import SandboxError

    if not args.build:
        print(template.render_dockerfile(), end="")
        return 0
    try:
        template.build(args.build, os.environ.get("E2B_API_KEY"), on_log=print)
    except SandboxError as exc:
        raise OsirisError(exc.message, exc.hint) from exc
    print(f"built E2B template {args.build}; run with --e2b-template {args.build}")
    return 0


def cmd_cleanup(args) -> int:
    import os

    from osiris_action.isolation import cleanup
    from osiris_action.pipelines import discover

    for line in cleanup(discover(args.paths), args.schema, args.template, args.connections, os.environ):
        print(f"dropped {line}")
    return 0


COMMANDS = {
    "validate": cmd_validate,
    "compile": cmd_compile,
    "run": cmd_run,
    "e2b-template": cmd_e2b_template,
    "plan": cmd_run,
    "cleanup": cmd_cleanup,
}


def main(argv: list[str] | None = None) -> int:
    from osiris_action.sandbox.local import protect_process

    protect_process()  # before any secret is read: a worker must not read them from /proc
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        args = _parser().parse_args(argv)
        if args.command in ("validate", "compile", "run", "plan"):
            from osiris_action.oml import sql

            sql.start()  # DuckDB's start-up in its own process, beside this one's imports
        if args.command in ("run", "plan") and args.target == "local":
            from osiris_action.sandbox.local import start_warm

            start_warm()  # the worker's interpreter imports its libraries meanwhile
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
