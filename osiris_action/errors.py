"""One exception family for every failure a user can cause: a message, a hint, and where it happened."""

from __future__ import annotations


class OsirisError(Exception):
    """Printed as one readable line plus the hint; a traceback only with --debug."""

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        file: str | None = None,
        line: int | None = None,
        step: str | None = None,
        exit_code: int = 1,
    ):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.file = file
        self.line = line
        self.step = step
        self.exit_code = exit_code

    def render(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        step = f"step '{self.step}': " if self.step else ""
        text = f"error: {where}{step}{self.message}"
        return text + (f"\n  hint: {self.hint}" if self.hint else "")


class UsageError(OsirisError):
    def __init__(self, message: str, hint: str = ""):
        super().__init__(message, hint, exit_code=2)
