"""Where the filesystem drivers may read and write: inside one base directory, never outside it.

A pipeline runs in a pull request, so its paths are untrusted input: `../../etc/passwd`, an absolute
path or a symlink planted in the repository must not reach files beyond the pipeline's own data. Every
path is therefore resolved (symlinks followed) before it is checked, and the check compares resolved
paths, so `data/../../x`, `/etc/passwd` and `data/link-to-etc/passwd` are all refused alike.

The base directory is the filesystem connection's `base_dir` (relative to the pipeline's folder, as a
relative path in the pipeline itself would be) or, without one, the pipeline's folder. The connection
file is configuration the repository owner chose, so its `base_dir` may point anywhere; the step's
`path` may not leave it.
"""

from __future__ import annotations

from pathlib import Path

from osiris_drivers._common import StepContext, StepError


def base_dir(ctx: StepContext) -> Path:
    """The resolved directory every path of the step is confined to."""
    configured = (ctx.connection or {}).get("base_dir")
    root = Path(ctx.base_dir) / str(configured) if configured else Path(ctx.base_dir)
    return root.resolve()


def describe_base(ctx: StepContext) -> str:
    """How messages name the base directory: as the user configured it, not as an absolute path."""
    configured = (ctx.connection or {}).get("base_dir")
    return f"base_dir '{configured}'" if configured else "the pipeline's folder"


def resolve(path: str, ctx: StepContext) -> tuple[Path, str]:
    """The absolute target of `path`, and the same path relative to the base directory for messages
    and events. Raises StepError when the resolved target lies outside the base directory."""
    root = base_dir(ctx)
    target = (root / path).resolve()
    if not target.is_relative_to(root):
        raise StepError(
            f"Path '{path}' points outside {describe_base(ctx)}, where this step's files must stay.",
            hint="Use a path relative to the base directory, without '..' leading out of it and without "
            "symlinks to elsewhere; to use another folder, set base_dir on the filesystem connection.",
        )
    return target, target.relative_to(root).as_posix()
